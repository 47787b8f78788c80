package genkitguard

import "errors"

// Errors to branch on with errors.Is.
var (
	// ErrNoGuard: New was given a nil guard.
	ErrNoGuard = errors.New("genkitguard: no guard")
	// ErrNotPending: a part given to Restart is not a tool request that
	// the guard interrupted to wait for a human's approval.
	ErrNotPending = errors.New("genkitguard: not a tool request waiting for approval")
	// ErrNoDeferred: a restarted tool request carries a human's decision
	// but the middleware was given no approval.Deferred to record it in
	// (WithApprovals). The tool does not run.
	ErrNoDeferred = errors.New("genkitguard: decision without a Deferred to record it")
	// ErrBadDecision: the decision a restarted tool request carries is
	// malformed. The tool does not run.
	ErrBadDecision = errors.New("genkitguard: malformed decision")
	// ErrStillPending: a restarted tool request still waits for a human's
	// decision: the decision it carried could not be recorded (the error
	// says why), or it carried none and none was recorded otherwise. The
	// tool does not run and Generate fails, since genkit cannot interrupt
	// a restarted tool request again.
	ErrStillPending = errors.New("genkitguard: restarted call still waits for approval")
)
