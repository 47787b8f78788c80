package mcpgoguard

import "errors"

// Errors to branch on with errors.Is. Refusals by the guard itself are
// agentguard errors (*agentguard.DenyError, matching agentguard.ErrDenied),
// passed on wrapped.
var (
	// ErrDefinition: an MCP tool's definition could not be turned into the
	// guard's description of it, so the tool is not offered and not run.
	ErrDefinition = errors.New("mcpgoguard: tool definition not usable")
	// ErrNoCaller: the MCP request carries no verified caller, so the guard
	// has no identity for it (see Callers).
	ErrNoCaller = errors.New("mcpgoguard: no verified caller")
	// ErrToolReported: the tool returned a result marked isError. The guard
	// records the call as failed; the error's text is the tool's message.
	ErrToolReported = errors.New("mcpgoguard: tool reported an error")
	// ErrListing: the server's tools could not be listed. Tools and
	// Refresh return it; after a tools/list_changed notification, CallTool
	// refuses calls with it until a listing succeeds.
	ErrListing = errors.New("mcpgoguard: list tools")
	// ErrTooManyTools: the server listed more tools, or more pages, than a
	// Client accepts (WithMaxTools); the listing fails with ErrListing
	// too.
	ErrTooManyTools = errors.New("mcpgoguard: too many tools listed")
)

// Limits on one listing of a server's tools by a Client, so that a server
// cannot keep a refresh going for ever or fill the agent's memory.
const (
	// DefaultMaxTools is how many tools one listing may hold, unless
	// WithMaxTools says otherwise.
	DefaultMaxTools = 10000
	// MaxListPages is how many pages one listing may take.
	MaxListPages = 1000
)
