package agentguard

import (
	"errors"
	"fmt"
	"strings"
)

// PendingError is the error an Approver returns when it has passed a
// request on to a human who will answer later, out of band, instead of
// waiting for the answer (see approval.Deferred). It matches
// ErrApprovalPending. A call denied for it wraps it, so that an
// agent-framework adapter can find the request with errors.As and pause
// the run in the framework's own way until the human has answered.
type PendingError struct {
	// Request is the request the human is asked about.
	Request *ApprovalRequest
}

// Error names the request and its tool, never its arguments.
func (e *PendingError) Error() string {
	if e.Request == nil {
		return ErrApprovalPending.Error()
	}
	return fmt.Sprintf("%s: request %s for tool %q waits for a human's decision", ErrApprovalPending, e.Request.ID, e.Request.Tool)
}

// Is reports true for ErrApprovalPending.
func (e *PendingError) Is(target error) bool { return target == ErrApprovalPending }

// Explain returns the text to give a model in place of a tool's result
// when a guarded call returned err, for adapters whose framework hands the
// model a message rather than stopping the run: which tool was refused, at
// which step and why; that a call waits for a human's approval, with the
// request's ID; or a tool's own failure, as its scrubbed message. It holds
// no credential value, no policy text and no internal error detail beyond
// what a denial's reason says: an error the guard did not make is
// reported only as a failure. It returns "" for a nil err.
func Explain(err error) string {
	if err == nil {
		return ""
	}
	var (
		deny   *DenyError
		tool   *ToolError
		change *ChangeError
		wait   *PendingError
	)
	switch {
	case errors.As(err, &wait) && wait.Request != nil:
		return fmt.Sprintf("The call to tool %q needs a human's approval (%s). The request %s has been sent; the call was not made.",
			wait.Request.Tool, kindText(wait.Request.Kind), wait.Request.ID)
	case errors.As(err, &deny):
		return explainDenial(deny)
	case errors.As(err, &tool):
		return fmt.Sprintf("The tool %q failed: %s", tool.Tool, tool.msg)
	case errors.As(err, &change):
		return fmt.Sprintf("The change of %q was refused at %s: %s.", change.Name, change.Step, reasonText(change.Reason, change.Err))
	case errors.Is(err, ErrClosed):
		return "The call was not made: the guard is closed."
	}
	return "The call was not made: the tool could not be run."
}

// explainDenial is Explain for a denial.
func explainDenial(e *DenyError) string {
	var b strings.Builder
	if e.Step == StepAudit {
		// The tool ran; its result was withheld.
		fmt.Fprintf(&b, "The result of tool %q was withheld: the audit record could not be written.", e.Tool)
		return b.String()
	}
	fmt.Fprintf(&b, "The call to tool %q was denied (%s): %s.", e.Tool, e.Step, reasonText(e.Reason, e.Err))
	switch {
	case errors.Is(e.Err, ErrInvalidArguments):
		b.WriteString(" Fix the arguments and call it again.")
	case errors.Is(e.Err, ErrApprovalTimeout):
		b.WriteString(" Nobody approved it in time.")
	case errors.Is(e.Err, ErrIntegrity):
		b.WriteString(" The tool's definition is not trusted until it is reviewed.")
	case e.Err == nil && e.Step == StepAuthorize:
		b.WriteString(" Policy does not allow it; do not retry it with the same arguments.")
	}
	return b.String()
}

// reasonText is a denial's reason, or a generic one.
func reasonText(reason string, cause error) string {
	switch {
	case reason != "":
		return reason
	case cause == nil:
		return "not permitted by policy"
	}
	return "it could not be checked"
}

// kindText describes the kind of approval asked for.
func kindText(kind string) string {
	if kind == "" {
		return "approval"
	}
	return "approval: " + kind
}
