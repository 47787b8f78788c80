package agentguard

import (
	"errors"
	"fmt"
	"strings"
)

// Errors to branch on with errors.Is. Every refusal by the guard is a
// *DenyError, which matches ErrDenied and wraps the step's own sentinel.
var (
	// ErrDenied matches every call the guard refused, whatever the step.
	ErrDenied = errors.New("agentguard: denied")
	// ErrNoIdentity: the agent's identity could not be established.
	ErrNoIdentity = errors.New("agentguard: no identity")
	// ErrIntegrity: the tool's definition is not trusted.
	ErrIntegrity = errors.New("agentguard: tool definition not trusted")
	// ErrPolicy: the policy engine could not decide.
	ErrPolicy = errors.New("agentguard: policy could not decide")
	// ErrApprovalRequired: policy requires an approval that was not given.
	ErrApprovalRequired = errors.New("agentguard: approval required")
	// ErrCredential: a credential the tool needs could not be had.
	ErrCredential = errors.New("agentguard: credential unavailable")
	// ErrAudit: the audit record could not be written (strict mode).
	ErrAudit = errors.New("agentguard: audit record not written")
	// ErrClosed: the guard is closed.
	ErrClosed = errors.New("agentguard: guard closed")
	// ErrTaskEnded: the call's task has ended.
	ErrTaskEnded = errors.New("agentguard: task ended")
	// ErrUnknownTool: no tool of that name is registered.
	ErrUnknownTool = errors.New("agentguard: unknown tool")
	// ErrInvalidArguments: the arguments are not one JSON object.
	ErrInvalidArguments = errors.New("agentguard: invalid arguments")
	// ErrInvalidTool: the tool's description is not usable (bad or reserved
	// name, no handler, an input schema that is not one JSON object in
	// canonical JSON, text that is not UTF-8).
	ErrInvalidTool = errors.New("agentguard: invalid tool")
	// ErrNoTask: the call carries no task and the guard requires one.
	ErrNoTask = errors.New("agentguard: call outside any task")
	// ErrForeignTask: the call's task was started by another guard.
	ErrForeignTask = errors.New("agentguard: task belongs to another guard")
	// ErrInternal: a component of the guard panicked.
	ErrInternal = errors.New("agentguard: internal failure")
	// ErrDelegation: a handoff between agents was refused, or a call came
	// with a delegation that does not hold for the calling agent.
	ErrDelegation = errors.New("agentguard: delegation refused")
	// ErrObligation: policy set an obligation on the call that was not
	// fulfilled: its handler refused, or the guard has no handler for it.
	ErrObligation = errors.New("agentguard: policy obligation not fulfilled")
	// ErrApprovalTimeout: no approver answered before the request expired.
	// Approvers return it (wrapped) for a request nobody decided in time;
	// the call is denied with ErrApprovalRequired, which wraps it.
	ErrApprovalTimeout = errors.New("agentguard: approval timed out")
	// ErrApprovalPending: the approver passed the request on to a human
	// who answers later, out of band, as agent frameworks that pause a
	// run and resume it do (approval.Deferred). Approvers return it
	// (wrapped) instead of waiting; the call is denied now with
	// ErrApprovalRequired, which wraps it, and may be made again once the
	// human has answered.
	ErrApprovalPending = errors.New("agentguard: approval pending")
	// ErrSuspended: the agent, an agent up its delegation chain, or its
	// trust domain is suspended (Guard.Suspend).
	ErrSuspended = errors.New("agentguard: agent suspended")
	// ErrBudget: the task has used up a budget (Budget): its calls, its
	// calls of the tool, or its calls per minute.
	ErrBudget = errors.New("agentguard: task budget exhausted")
	// ErrPinChanged: a change of a tool definition or prompt was approved,
	// but the pin it was to replace changed while it was reviewed (another
	// change was approved first), so it was not pinned: review it again.
	ErrPinChanged = errors.New("agentguard: pin changed")
)

// Steps of the pipeline, as named in DenyError.Step, audit records and spans.
const (
	StepGuard      = "guard"
	StepLookup     = "lookup"
	StepDefinition = "definition"
	StepArguments  = "arguments"
	StepTask       = "task"
	StepIdentify   = "identify"
	StepIntegrity  = "integrity"
	StepAuthorize  = "authorize"
	StepApprove    = "approve"
	StepObligation = "obligation"
	StepCredential = "credential"
	StepExecute    = "execute"
	StepAudit      = "audit"
	// StepDelegate checks a delegation: its depth, its handoff proof.
	StepDelegate = "delegate"
	// StepSuspend refuses the calls of a suspended agent (Guard.Suspend).
	StepSuspend = "suspend"
	// StepBudget refuses a call past one of the task's budgets.
	StepBudget = "budget"
)

// DenyError is the error of a call the guard refused. The tool did not run,
// except for Step StepAudit, where it ran but its result was withheld because
// the audit record could not be written.
type DenyError struct {
	Tool   string
	CallID string
	// Step is the pipeline step that refused the call.
	Step string
	// Policies are the deciding policy IDs, for a policy denial.
	Policies []string
	// Reason says why, for people.
	Reason string
	// Err is the cause: one of this package's sentinels, wrapping any
	// underlying error. It is nil for a plain policy denial.
	Err error
}

// Error describes the denial. It never contains a credential value.
func (e *DenyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "agentguard: call to tool %q denied at %s", e.Tool, e.Step)
	writeDenial(&b, e.Reason, e.Policies, e.Err)
	return b.String()
}

// writeDenial appends the reason, deciding policies and cause of a denial.
func writeDenial(b *strings.Builder, reason string, policies []string, cause error) {
	if reason != "" {
		b.WriteString(": ")
		b.WriteString(reason)
	}
	if len(policies) > 0 {
		fmt.Fprintf(b, " (policies: %s)", strings.Join(policies, ", "))
	}
	if cause != nil {
		b.WriteString(": ")
		b.WriteString(cause.Error())
	}
}

// Is reports true for ErrDenied.
func (e *DenyError) Is(target error) bool { return target == ErrDenied }

// Unwrap returns the cause.
func (e *DenyError) Unwrap() error { return e.Err }

// ToolError is the error of a tool that ran and failed. Its message has the
// values of the call's credentials removed, since tools are apt to echo them;
// Unwrap gives the tool's own error unchanged.
type ToolError struct {
	Tool   string
	CallID string
	msg    string
	err    error
}

// Error returns the scrubbed message.
func (e *ToolError) Error() string {
	return fmt.Sprintf("agentguard: tool %q failed: %s", e.Tool, e.msg)
}

// Unwrap returns the tool's error.
func (e *ToolError) Unwrap() error { return e.err }

// DelegationError is the error of a handoff between agents that the guard
// refused: Delegate and Handoff on the delegating side, AcceptHandoff on the
// receiving side. It matches ErrDenied and its cause.
type DelegationError struct {
	// From is the delegating agent (with its own chain), when known.
	From string
	// To is the agent the task was to be handed to.
	To string
	// Step is the step that refused: identify, suspend, task, delegate,
	// authorize or audit.
	Step     string
	Policies []string
	Reason   string
	// Err is the cause: ErrDelegation, ErrPolicy, ErrNoIdentity, ... wrapping
	// any underlying error. Nil for a plain policy denial.
	Err error
}

// Error describes the denial. It never contains a token.
func (e *DelegationError) Error() string {
	var b strings.Builder
	from := e.From
	if from == "" {
		from = "an unidentified agent"
	}
	fmt.Fprintf(&b, "agentguard: delegation from %s to %s denied at %s", from, e.To, e.Step)
	writeDenial(&b, e.Reason, e.Policies, e.Err)
	return b.String()
}

// Is reports true for ErrDenied.
func (e *DelegationError) Is(target error) bool { return target == ErrDenied }

// Unwrap returns the cause.
func (e *DelegationError) Unwrap() error { return e.Err }

// ChangeError is the error of a change of a tool definition or a prompt
// that the guard refused: policy did not permit it (Action::"change_toolset",
// Action::"change_prompt") or no approver granted it. The definition or
// prompt pinned before stays in force. It matches ErrDenied and its cause.
type ChangeError struct {
	// Action is ApproveToolChange or ApprovePromptChange.
	Action string
	// Name is the tool's or the prompt's name; Toolset the tool's toolset.
	Name    string
	Toolset string
	// Fingerprint is the refused definition's or prompt's.
	Fingerprint string
	// Step is the step that refused: guard, task, identify, suspend,
	// authorize, approve, integrity (the pin changed during the review:
	// ErrPinChanged) or audit.
	Step     string
	Policies []string
	Reason   string
	// Err is the cause: ErrApprovalRequired, ErrPolicy, ErrNoIdentity, ...
	// wrapping any underlying error. Nil for a plain policy denial.
	Err error
}

// Error describes the refusal.
func (e *ChangeError) Error() string {
	var b strings.Builder
	what := "tool"
	if e.Action == ApprovePromptChange {
		what = "prompt"
	}
	fmt.Fprintf(&b, "agentguard: change of %s %q denied at %s", what, e.Name, e.Step)
	writeDenial(&b, e.Reason, e.Policies, e.Err)
	return b.String()
}

// Is reports true for ErrDenied.
func (e *ChangeError) Is(target error) bool { return target == ErrDenied }

// Unwrap returns the cause.
func (e *ChangeError) Unwrap() error { return e.Err }
