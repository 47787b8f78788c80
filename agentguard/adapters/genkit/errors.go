package genkitguard

import "errors"

// Errors to branch on with errors.Is.
var (
	// ErrNoGuard: New was given a nil guard.
	ErrNoGuard = errors.New("genkitguard: no guard")
	// ErrNotPending: a part given to Restart is not a tool request that
	// the guard interrupted to wait for a human's approval.
	ErrNotPending = errors.New("genkitguard: not a tool request waiting for approval")
	// ErrNoDeferred: Restart was called on a middleware given no
	// approval.Deferred (WithApprovals), which would keep the decision.
	ErrNoDeferred = errors.New("genkitguard: no Deferred to record the decision in")
	// ErrArgumentsChanged: the tool request given to Restart has other
	// arguments than the request the human was asked about. Nothing is
	// recorded; restart the request as it was interrupted.
	ErrArgumentsChanged = errors.New("genkitguard: the tool request's arguments are not those awaiting approval")
	// ErrNotGuardsApprover: a call waits for approval, but the Deferred
	// given to WithApprovals does not hold its request: it is not the
	// guard's approver (agentguard.WithApprover), so Restart could never
	// record a decision. The generation fails with this error.
	ErrNotGuardsApprover = errors.New("genkitguard: the middleware's Deferred is not the guard's approver")
	// ErrStillPending: a restarted tool request still waits for a human's
	// decision: none was recorded for it (Restart records one), or the
	// one recorded was used or lapsed, or the request was restarted with
	// other arguments or in another task than the one approved. The tool
	// does not run and Generate fails, since genkit cannot interrupt a
	// restarted tool request again.
	ErrStillPending = errors.New("genkitguard: restarted call still waits for approval")
)
