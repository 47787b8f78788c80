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
	// RequestID is the guard's approval request; a Decision answering it
	// names it (Decision.RequestID).
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
	// RequestID is the ApprovalRequest.RequestID the human was shown and
	// answers. It must be the paused call's: a Decision for another
	// request, or for none, is refused (ErrWrongRequest), so that a mixed
	// up or tampered checkpoint cannot route a human's answer to another
	// call than the one they saw.
	RequestID string
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
// of that ID gets d, whose RequestID must be the one its Interrupt's
// Request shows. To answer several at once, pass each Decision to
// compose.BatchResumeWithData.
func Resume(ctx context.Context, interruptID string, d Decision) context.Context {
	return compose.ResumeWithData(ctx, interruptID, &d)
}

// interrupt pauses the call, which waits for the human's answer to req.
// The request must be pending in the toolset's Deferred: if it is not, the
// guard's approver is another one, no Decision given on resume could ever
// be recorded, and the run would pause again and again; that is an error.
func (s *Toolset) interrupt(ctx context.Context, in *compose.ToolInput, req *agentguard.ApprovalRequest) error {
	if _, ok := s.pending(req.ID); !ok {
		return fmt.Errorf("einoguard: call %s of tool %q, request %s: %w", in.CallID, in.Name, req.ID, ErrNotGuardsApprover)
	}
	r := &ApprovalRequest{
		RequestID: req.ID, Tool: req.Tool, Toolset: req.Toolset, CallID: in.CallID, Args: string(req.Args),
		Kind: req.Kind, Reason: req.Reason, Policies: slices.Clone(req.Policies),
		Agent: req.Agent.ID.String(), TaskID: req.TaskID, Purpose: req.Purpose, OnBehalfOf: req.OnBehalfOf,
	}
	return tool.StatefulInterrupt(ctx, r, &pendingState{Request: r})
}

// pending returns the toolset's Deferred's copy of the pending request id.
func (s *Toolset) pending(id string) (*agentguard.ApprovalRequest, bool) {
	if s.deferred == nil {
		return nil, false
	}
	for _, r := range s.deferred.Pending() {
		if r.ID == id {
			return r, true
		}
	}
	return nil, false
}

// resumed handles a call that eino runs again after the adapter paused it.
// It reports whether the call goes through the guard now; if not, err is
// what eino gets: the interrupt again when another call is being resumed,
// or an error when the call was resumed without an acceptable Decision.
// A call paused by something else (the tool itself) goes through the guard.
//
// The Decision is recorded only if it answers the request the checkpoint
// says the call waits for (Decision.RequestID), and only if the guard's
// own copy of that request (the Deferred's) is for this very call: the
// tool, call ID, canonical arguments and task of the call being resumed,
// and the tool and arguments the checkpoint showed the human. The
// checkpoint lives in the application's store; the guard's copy does not.
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
	if d.RequestID != st.Request.RequestID {
		return false, fmt.Errorf("einoguard: call %s of tool %q waits for request %s: %w (it answers %q)",
			in.CallID, in.Name, st.Request.RequestID, ErrWrongRequest, d.RequestID)
	}
	req, ok := s.pending(d.RequestID)
	if !ok {
		// The request expired or was forgotten (the process restarted):
		// the guard asks again, and the run pauses with a new request.
		return true, nil
	}
	if why := s.mismatch(ctx, in, st.Request, req); why != "" {
		return false, fmt.Errorf("einoguard: call %s of tool %q, request %s: %w: %s", in.CallID, in.Name, req.ID, ErrWrongRequest, why)
	}
	err = s.deferred.Decide(req.ID, approval.Decision{Granted: d.Granted, Approvers: slices.Clone(d.Approvers), Reason: d.Reason})
	switch {
	case err == nil:
	case errors.Is(err, approval.ErrNotPending):
		// Expired since: the guard asks again.
	default:
		return false, fmt.Errorf("einoguard: call %s of tool %q, request %s: %w: %w", in.CallID, in.Name, req.ID, ErrDecision, err)
	}
	return true, nil
}

// mismatch says how req, the guard's copy of a pending request, is not
// for the call in being resumed, whose checkpoint showed shown; "" when it
// is for that very call.
func (s *Toolset) mismatch(ctx context.Context, in *compose.ToolInput, shown *ApprovalRequest, req *agentguard.ApprovalRequest) string {
	args, err := agentguard.CanonicalArgs([]byte(in.Arguments))
	task, _ := agentguard.TaskFromContext(ctx)
	switch {
	case req.Tool != in.Name || req.Tool != shown.Tool:
		return "the request is for another tool"
	case req.CallID != in.CallID:
		return "the request is for another call"
	case err != nil || string(args) != string(req.Args) || shown.Args != string(req.Args):
		return "the request is for other arguments"
	case task == nil || task.ID() != req.TaskID:
		return "the request is for another task: resume in the task that paused"
	}
	return ""
}
