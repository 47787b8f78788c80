package adkguard

import "errors"

// Errors to branch on with errors.Is. The guard's own refusals are
// *agentguard.DenyError values; these are the adapter's.
var (
	// ErrUnguarded: a tool wrapped by Guard.Tools or Guard.Toolset was run
	// without the guard's before-tool callback having allowed the call:
	// the callbacks are not installed (Guard.Configure, Guard.Plugin), or
	// a callback ahead of them answered for the tool. The tool does not run.
	ErrUnguarded = errors.New("adkguard: tool called without the guard's before-tool callback")
	// ErrArgsChanged: the call's arguments were changed after the guard
	// checked them (by a before-tool callback that runs after the guard's).
	// A wrapped tool does not run; for another tool the call is recorded as
	// failed.
	ErrArgsChanged = errors.New("adkguard: arguments changed after the guard checked them")
	// ErrUnfinished: no callback reported the outcome of a call the guard
	// allowed for a tool that is not wrapped (a callback ahead of the
	// guard's answered, or the run stopped), so its outcome is unknown;
	// it is recorded as failed when the agent asks its model again, its
	// run ends, or its context ends and its task too.
	ErrUnfinished = errors.New("adkguard: tool call ended without the guard's after-tool callback")
	// ErrConfirmationMismatch: a call resumed by the answer to a
	// confirmation is not the one the guard asked about, or the answer is
	// not to the confirmation ADK made for it (a confirmation the model
	// wrote, say). Nothing is decided and the call does not run.
	ErrConfirmationMismatch = errors.New("adkguard: the answer is not to the guard's confirmation of this call")
	// ErrUnguardedAgent: an agent run as a tool (agenttool) is not known
	// to be guarded. ADK runs it in a runner of its own, without the
	// guard's plugin, so its tools would run unguarded: build it with
	// Guard.Agent and make the tool with Guard.AgentTool. The tool does
	// not run.
	ErrUnguardedAgent = errors.New("adkguard: agent tool of an agent the guard did not build")
	// ErrDuplicateCall: the model sent two calls with the same function-call
	// ID at once in one invocation; the second does not run.
	ErrDuplicateCall = errors.New("adkguard: function-call ID already in use")
	// ErrNotDescribable: the tool's definition could not be read (its
	// declaration's schema is not JSON). The tool does not run.
	ErrNotDescribable = errors.New("adkguard: tool definition unreadable")
	// ErrNotRunnable: a wrapped tool is not one ADK can run (it has no
	// Run method, or cannot be added to a model request).
	ErrNotRunnable = errors.New("adkguard: tool cannot be run")
)
