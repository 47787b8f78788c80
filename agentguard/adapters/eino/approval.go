package einoguard

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

// ApprovalRequest is the info of the eino interrupt that pauses a call
// waiting for a human's approval (InterruptCtx.Info): what the human is
// asked to decide. It shows the guard's request, bound to this exact call.
type ApprovalRequest struct {
	// RequestID is the guard's approval request; the Decision answers it.
	RequestID string
	// Tool, Toolset and CallID name the call; Args are its canonical JSON
	// arguments, as policy saw them.
	Tool    string
	Toolset string
	CallID  string
	Args    string
	// Kind is the kind of approval asked for, such as "two-person";
	// Reason why policy asks, and Policies the permits that asked.
	Kind     string
	Reason   string
	Policies []string
	// Agent is the acting agent's SPIFFE ID; TaskID, Purpose and
	// OnBehalfOf are the task's.
	Agent      string
	TaskID     string
	Purpose    string
	OnBehalfOf string
}

// Decision is a human's answer to an ApprovalRequest: the data to resume
// the paused call with (Resume, or compose.ResumeWithData with a Decision
// or a *Decision). The application builds it from who is signed in; the
// model has no say in it.
type Decision struct {
	// Granted lets the call go ahead; otherwise the model is told the
	// approval was refused, and the tool does not run.
	Granted bool
	// Approvers name who decided: at least one, and as many as the
	// request's kind needs for a grant (approval.WithDeferredQuorum).
	Approvers []string
	// Reason is the approvers' comment, recorded with the decision.
	Reason string
}

// Interrupt is one call of a run that waits for a human's approval.
type Interrupt struct {
	// ID is eino's interrupt ID, to resume the call with (Resume).
	ID string
	// Request is what the human is asked.
	Request *ApprovalRequest
}

// pendingState is what a paused call keeps in eino's checkpoint, to be
// shown again and answered on resume.
type pendingState struct {
	Request *ApprovalRequest
}

func init() {
	schema.RegisterName[*ApprovalRequest]("_agentguard_einoguard_approval_request")
	schema.RegisterName[*pendingState]("_agentguard_einoguard_pending")
}

// Interrupts returns the calls an eino run's error says wait for a human's
// approval, in eino's order; none when err is not such an interrupt.
func Interrupts(err error) []Interrupt {
	info, ok := compose.ExtractInterruptInfo(err)
	if !ok || info == nil {
		return nil
	}
	var out []Interrupt
	for _, ic := range info.InterruptContexts {
		if req, ok := ic.Info.(*ApprovalRequest); ok && ic.IsRootCause {
			out = append(out, Interrupt{ID: ic.ID, Request: req})
		}
	}
	return out
}

// Resume returns the context to run the graph again with (with the same
// checkpoint ID and the same task) so that the call paused by the interrupt
// of that ID gets d. To answer several at once, pass each Decision to
// compose.BatchResumeWithData.
func Resume(ctx context.Context, interruptID string, d Decision) context.Context {
	return compose.ResumeWithData(ctx, interruptID, &d)
}

// interrupt pauses the call, which waits for the human's answer to req.
func (s *Toolset) interrupt(ctx context.Context, in *compose.ToolInput, req *agentguard.ApprovalRequest) error {
	r := &ApprovalRequest{
		RequestID: req.ID, Tool: req.Tool, Toolset: req.Toolset, CallID: in.CallID, Args: string(req.Args),
		Kind: req.Kind, Reason: req.Reason, Policies: slices.Clone(req.Policies),
		Agent: req.Agent.ID.String(), TaskID: req.TaskID, Purpose: req.Purpose, OnBehalfOf: req.OnBehalfOf,
	}
	return tool.StatefulInterrupt(ctx, r, &pendingState{Request: r})
}

// resumed handles a call that eino runs again after the adapter paused it.
// It reports whether the call goes through the guard now; if not, err is
// what eino gets: the interrupt again when another call is being resumed,
// or an error when the call was resumed without an acceptable Decision.
// A call paused by something else (the tool itself) goes through the guard.
func (s *Toolset) resumed(ctx context.Context, in *compose.ToolInput) (proceed bool, err error) {
	was, has, st := tool.GetInterruptState[*pendingState](ctx)
	if !was || !has || st == nil || st.Request == nil {
		return true, nil
	}
	target, hasData, data := tool.GetResumeContext[any](ctx)
	if !target {
		return false, tool.StatefulInterrupt(ctx, st.Request, st)
	}
	var d *Decision
	switch v := data.(type) {
	case Decision:
		d = &v
	case *Decision:
		d = v
	}
	if !hasData || d == nil {
		return false, fmt.Errorf("einoguard: call %s of tool %q, request %s: %w", in.CallID, in.Name, st.Request.RequestID, ErrNoDecision)
	}
	if s.deferred == nil {
		return false, fmt.Errorf("einoguard: call %s of tool %q: %w: the toolset has no approvals (WithApprovals)", in.CallID, in.Name, ErrDecision)
	}
	err = s.deferred.Decide(st.Request.RequestID, approval.Decision{Granted: d.Granted, Approvers: slices.Clone(d.Approvers), Reason: d.Reason})
	switch {
	case err == nil:
	case errors.Is(err, approval.ErrNotPending):
		// The request expired or was forgotten (the process restarted):
		// the guard asks again, and the run pauses with a new request.
	default:
		return false, fmt.Errorf("einoguard: call %s of tool %q, request %s: %w: %w", in.CallID, in.Name, st.Request.RequestID, ErrDecision, err)
	}
	return true, nil
}
