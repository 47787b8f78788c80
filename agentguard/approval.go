package agentguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/internal/canonical"
)

// Approver asks a human whether a call, or a change of the agent's tools or
// prompt, may go ahead. The guard calls it when the deciding policies carry
// an @approval obligation, when the tool's risk requires one
// (WithRiskApproval), and for every change of a pinned tool definition or
// prompt. It may block until the human answers; it must honour ctx, whose
// deadline is the request's ExpiresAt (on the guard's clock; the context
// gives the same time span in real time).
//
// Only an Approval made for this very request counts: build it with
// req.Grant or req.Refuse, which bind it to req.ID and req.Digest. A
// granted Approval that names another request (a replay, or one made for
// other arguments, task or agent) is refused, as are an error, a refusal
// and an answer after ExpiresAt. Approve is called from many goroutines at
// once.
type Approver interface {
	Approve(ctx context.Context, req *ApprovalRequest) (Approval, error)
}

// ApproverFunc adapts a function to an Approver.
type ApproverFunc func(ctx context.Context, req *ApprovalRequest) (Approval, error)

// Approve calls f.
func (f ApproverFunc) Approve(ctx context.Context, req *ApprovalRequest) (Approval, error) {
	return f(ctx, req)
}

// What an approval request asks about (ApprovalRequest.Action).
const (
	// ApproveCall asks whether a tool call may run.
	ApproveCall = "call_tool"
	// ApproveToolChange asks whether a new or changed tool definition may
	// be trusted (policy's Action::"change_toolset").
	ApproveToolChange = "change_toolset"
	// ApprovePromptChange asks whether a new or changed prompt may take
	// effect (policy's Action::"change_prompt").
	ApprovePromptChange = "change_prompt"
)

// ApprovalRequest shows an approver exactly what would happen.
type ApprovalRequest struct {
	// ID identifies this request; it is new for every request, so that an
	// answer to one request never answers another.
	ID string
	// Action is ApproveCall, ApproveToolChange or ApprovePromptChange.
	Action string
	// Agent is the acting agent, with the chain of agents that delegated
	// the task to it (root first).
	Agent identity.Identity
	// TaskID is the task the call belongs to; empty for a change made
	// outside any task. Purpose, OnBehalfOf and Sensitivity are the
	// task's, for the human to judge by.
	TaskID      string
	Purpose     string
	OnBehalfOf  string
	Sensitivity Sensitivity
	// Tool is the tool called or changed; for a prompt change, the
	// prompt's name. Toolset is the tool's registry or server, and
	// Fingerprint its definition's (Tool.Fingerprint), so that the human
	// knows which of two tools of the same name would run.
	Tool        string
	Toolset     string
	Fingerprint string
	CallID      string
	// Args are the canonical JSON arguments of a call. For a change, they
	// describe it: the new definition or prompt, its fingerprint and the
	// one pinned before.
	Args json.RawMessage
	// ArgsDigest is "sha256:<hex>" of Args.
	ArgsDigest string
	// Digest binds the approval to this exact request: "sha256:<hex>" over
	// the canonical action, tool (name, toolset and fingerprint),
	// arguments, task and agent (with its chain).
	Digest string
	// Kind is the kind of approval asked for: the @approval obligations'
	// values, comma-separated, such as "two-person"; "risk-high" for a
	// tool's risk; "change_toolset" or "change_prompt" for a change.
	Kind string
	// Reason is why policy asks: the @reason of the deciding permits.
	Reason string
	// Policies are the permits that asked for approval.
	Policies []string
	// RequestedAt is when the guard asked; ExpiresAt is when the request
	// lapses: an answer after it does not count.
	RequestedAt time.Time
	ExpiresAt   time.Time
}

// Grant returns an approval of req by the named approvers, bound to req. A
// grant must name at least one approver, none blank: the record says who
// decided.
func (r *ApprovalRequest) Grant(approvers ...string) Approval {
	return Approval{Granted: true, Approvers: slices.Clone(approvers), RequestID: r.ID, Digest: r.Digest}
}

// Refuse returns a refusal of req by the named approvers, for reason.
func (r *ApprovalRequest) Refuse(reason string, approvers ...string) Approval {
	return Approval{Approvers: slices.Clone(approvers), Reason: reason, RequestID: r.ID, Digest: r.Digest}
}

// Approval is an approver's answer.
type Approval struct {
	Granted bool
	// Approvers name who decided.
	Approvers []string
	// Reason is the approver's comment.
	Reason string
	// RequestID and Digest are those of the request answered: a granted
	// approval counts only for the request it names.
	RequestID string
	Digest    string
}

// Approval statuses, as audit records and spans give them.
const (
	ApprovalGranted = "granted"
	ApprovalRefused = "refused"
	// ApprovalTimeout: no answer before the request expired.
	ApprovalTimeout = "timeout"
	// ApprovalError: the approver failed.
	ApprovalError = "error"
	// ApprovalExpired: the answer came after the request expired.
	ApprovalExpired = "expired"
	// ApprovalUnbound: the answer names another request.
	ApprovalUnbound = "unbound"
	// ApprovalUnavailable: no approver is configured.
	ApprovalUnavailable = "unavailable"
	// ApprovalPending: the approver passed the request on to a human who
	// answers later (ErrApprovalPending); the call may be made again then.
	ApprovalPending = "pending"
)

// newApprovalRequest fills in the request's ID, digests, times and, from
// task (nil outside any task), the task's description. r must hold
// Action, Agent, Tool (with its toolset and fingerprint) and Args, which
// must be canonical JSON. It fails only if they cannot be digested, and
// then no approval may be asked.
func (g *Guard) newApprovalRequest(r ApprovalRequest, task *Task) (*ApprovalRequest, error) {
	r.ID = newID("approval-")
	if task != nil {
		r.TaskID, r.Purpose, r.OnBehalfOf, r.Sensitivity = task.spec.ID, task.spec.Purpose, task.spec.OnBehalfOf, task.spec.Sensitivity
	}
	r.ArgsDigest = canonical.Digest(r.Args)
	chain := r.Agent.ChainStrings()
	if chain == nil {
		chain = []string{}
	}
	b, err := canonical.Marshal(map[string]any{
		"action": r.Action, "tool": r.Tool, "toolset": r.Toolset, "fingerprint": r.Fingerprint,
		"args": json.RawMessage(r.Args), "task": r.TaskID, "agent": r.Agent.ID.String(), "chain": chain,
	})
	if err != nil {
		return nil, fmt.Errorf("agentguard: approval request: %w", err)
	}
	r.Digest = canonical.Digest(b)
	r.RequestedAt = g.cfg.now()
	r.ExpiresAt = r.RequestedAt.Add(g.cfg.approvalTTL)
	return &r, nil
}

// askApproval asks the approver about req, bounded by req.ExpiresAt. It
// returns the answer and its status; the approval counts only when status
// is ApprovalGranted. err is the approver's error, if any.
func (g *Guard) askApproval(ctx context.Context, req *ApprovalRequest) (a Approval, status string, err error) {
	if g.cfg.approver == nil {
		return Approval{}, ApprovalUnavailable, nil
	}
	// The wait is bounded by real time, whatever the guard's clock says
	// (WithClock); the expiry check below uses the guard's clock.
	actx, cancel := context.WithTimeout(ctx, req.ExpiresAt.Sub(g.cfg.now()))
	defer cancel()
	// The approver sees a copy: what it changes is not what was asked.
	asked := *req
	asked.Agent.Chain = slices.Clone(req.Agent.Chain)
	asked.Args = slices.Clone(req.Args)
	asked.Policies = slices.Clone(req.Policies)
	a, err = g.cfg.approver.Approve(actx, &asked)
	a.Approvers = slices.Clone(a.Approvers)
	switch {
	case err != nil && (errors.Is(err, ErrApprovalTimeout) || errors.Is(err, context.DeadlineExceeded) && actx.Err() != nil && ctx.Err() == nil):
		return a, ApprovalTimeout, err
	case err != nil && errors.Is(err, ErrApprovalPending):
		return a, ApprovalPending, err
	case err != nil:
		return a, ApprovalError, err
	case !a.Granted:
		return a, ApprovalRefused, nil
	case a.RequestID != req.ID || a.Digest != req.Digest:
		return a, ApprovalUnbound, nil
	case !named(a.Approvers):
		// The record must say who decided.
		return a, ApprovalError, errAnonymous
	case !g.cfg.now().Before(req.ExpiresAt):
		return a, ApprovalExpired, nil
	}
	return a, ApprovalGranted, nil
}

// errAnonymous is the error of a grant that names no approver.
var errAnonymous = errors.New("agentguard: the approval names no approver")

// named reports whether there is at least one approver and none is blank.
func named(approvers []string) bool {
	for _, a := range approvers {
		if strings.TrimSpace(a) == "" {
			return false
		}
	}
	return len(approvers) > 0
}

// seekApproval asks the approver about req and records what came of it in
// ev (its Approval) and span. It returns the answer and, when the approval
// does not count, the denial's reason and cause (wrapping
// ErrApprovalRequired); a nil cause means granted. scrub, if not nil,
// cleans the approver's comment before it is recorded.
func (g *Guard) seekApproval(ctx context.Context, req *ApprovalRequest, ev *audit.Event, span trace.Span, scrub func(string) string) (Approval, string, error) {
	ev.Approval = &audit.Approval{Required: true, Kind: req.Kind, RequestID: req.ID, Digest: req.Digest}
	a, status, err := g.askApproval(ctx, req)
	granted := status == ApprovalGranted
	comment := a.Reason
	if scrub != nil {
		comment = scrub(comment)
	}
	ev.Approval.Granted, ev.Approval.Status = granted, status
	ev.Approval.Approvers, ev.Approval.Reason = a.Approvers, comment
	span.AddEvent(EventApprove, trace.WithAttributes(AttrApproval.Bool(granted), AttrApprovalStatus.String(status),
		AttrApprovers.StringSlice(a.Approvers), AttrApprovalDigest.String(req.Digest)))
	if granted {
		return a, "", nil
	}
	cause := ErrApprovalRequired
	if err != nil {
		cause = fmt.Errorf("%w: %w", ErrApprovalRequired, err)
	}
	// The denial's reason, which reaches the record, the span, the error
	// and the model (Explain), quotes the comment as scrubbed.
	shown := a
	shown.Reason = comment
	return a, approvalDenial(status, shown), cause
}
