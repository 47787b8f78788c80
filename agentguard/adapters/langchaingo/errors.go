package langchainguard

import "errors"

// Errors of New and Definitions, to branch on with errors.Is.
var (
	// ErrNilGuard: New was given no guard.
	ErrNilGuard = errors.New("langchainguard: nil guard")
	// ErrNilTool: a tool in the slice given to New is nil.
	ErrNilTool = errors.New("langchainguard: nil tool")
	// ErrDuplicateTool: two tools have names that langchaingo's executor
	// cannot tell apart (it looks tools up without regard to case).
	ErrDuplicateTool = errors.New("langchainguard: duplicate tool name")
	// ErrUnknownSpec: WithSpec names a tool that is not in the slice.
	ErrUnknownSpec = errors.New("langchainguard: spec for a tool not given")
	// ErrInvalidSpec: a Spec cannot describe the tool (an input schema
	// that is not a JSON object).
	ErrInvalidSpec = errors.New("langchainguard: invalid spec")
)
