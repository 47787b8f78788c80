package agentguard

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
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
	// Only the guard's own error counts: a tool's error may wrap errors of
	// other guards (a sub-agent used as a tool), whose text was never
	// scrubbed of this call's credentials.
	switch e := guardError(err).(type) {
	case *PendingError:
		return explainPending(e)
	case *DenyError:
		var wait *PendingError
		if errors.As(e.Err, &wait) && wait.Request != nil {
			return explainPending(wait)
		}
		return explainDenial(e)
	case *ToolError:
		return fmt.Sprintf("The tool %q failed: %s", e.Tool, clipText(e.msg, maxExplained))
	case *ChangeError:
		var wait *PendingError
		if errors.As(e.Err, &wait) && wait.Request != nil {
			return explainPending(wait)
		}
		return fmt.Sprintf("The change of %q was refused at %s: %s.", e.Name, e.Step, reasonText(e.Reason, e.Err))
	}
	if errors.Is(err, ErrClosed) {
		return "The call was not made: the guard is closed."
	}
	return "The call was not made: the tool could not be run."
}

// PendingApproval returns the request of a call (or change) that the
// guard refused because its approval waits for a human
// (ErrApprovalPending), from the error Invoke, Registry.Call, Middleware,
// Begin or Review returned. It looks only at the guard's own error, never
// inside the error of a tool that ran (which may hold another guard's
// pending request, as an agent used as a tool would).
func PendingApproval(err error) (*ApprovalRequest, bool) {
	var wait *PendingError
	switch e := guardError(err).(type) {
	case *PendingError:
		wait = e
	case *DenyError:
		if !errors.As(e.Err, &wait) {
			return nil, false
		}
	case *ChangeError:
		if !errors.As(e.Err, &wait) {
			return nil, false
		}
	default:
		return nil, false
	}
	if wait.Request == nil {
		return nil, false
	}
	return wait.Request, true
}

// guardError is the outermost of the guard's errors in err's chain (a
// *DenyError, *ToolError, *ChangeError or *PendingError), or nil.
func guardError(err error) error {
	for err != nil {
		switch err.(type) {
		case *DenyError, *ToolError, *ChangeError, *PendingError:
			return err
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if g := guardError(e); g != nil {
					return g
				}
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}

// maxExplained bounds the part of a tool's error text a model is given.
const maxExplained = 2048

// clipText cuts s to at most n bytes, at a rune boundary, marking the cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + " [...]"
}

// explainPending is Explain for a request that waits for a human.
func explainPending(e *PendingError) string {
	r := e.Request
	if r.Action != ApproveCall && r.Action != "" {
		return fmt.Sprintf("The change of %q needs a human's approval (%s). The request %s has been sent; the change has not been made.",
			r.Tool, kindText(r.Kind), r.ID)
	}
	return fmt.Sprintf("The call to tool %q needs a human's approval (%s). The request %s has been sent; the call was not made.",
		r.Tool, kindText(r.Kind), r.ID)
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
