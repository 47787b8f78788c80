package einoguard

import "errors"

// Errors to branch on with errors.Is.
var (
	// ErrInvalidToolset: New was given something it cannot guard: a nil
	// guard or tool, a tool eino cannot run, a repeated name, or a Spec
	// for a tool that is not there.
	ErrInvalidToolset = errors.New("einoguard: invalid toolset")
	// ErrNoDecision: a call paused for approval was resumed without a
	// Decision addressed to it (compose.Resume without data, or data of
	// another type). The call does not run; resume it again with one.
	ErrNoDecision = errors.New("einoguard: resumed without a decision")
	// ErrDecision: the Decision a call was resumed with was not accepted
	// (it names no approver, or fewer than the request's kind needs). The
	// call does not run; the request is still pending.
	ErrDecision = errors.New("einoguard: decision not accepted")
	// ErrWrongRequest: the Decision a call was resumed with does not answer
	// the request the call waits for: it names another request, or none,
	// or the guard's copy of the request is for another call (tool, call
	// ID, arguments or task). The call does not run; the request is still
	// pending.
	ErrWrongRequest = errors.New("einoguard: decision for another request")
	// ErrNotGuardsApprover: a call waits for approval, but the Deferred
	// given to WithApprovals does not hold its request: it is not the
	// guard's approver (agentguard.WithApprover), so no Decision could
	// ever be recorded. The run ends with this error.
	ErrNotGuardsApprover = errors.New("einoguard: the toolset's Deferred is not the guard's approver")
	// ErrStreamClosed is how the audit record of a streaming call reads
	// when its reader closed the stream before its end.
	ErrStreamClosed = errors.New("einoguard: stream closed before its end")
)

// errNotInNode: the registry ran a tool outside the middleware, which
// happens only for a tool of the toolset that the ToolsNode does not hold.
var errNotInNode = errors.New("einoguard: the tool is not in the ToolsNode")
