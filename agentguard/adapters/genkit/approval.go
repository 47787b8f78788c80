package genkitguard

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/firebase/genkit/go/ai"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

// Metadata keys the middleware uses on genkit parts.
const (
	// InterruptKey is the key, in the interrupt metadata of a tool request
	// waiting for a human's approval (part.Metadata["interrupt"]), of the
	// approval request: its id, tool, toolset, callId, task, agent, args,
	// kind, reason and policies. Read it with Middleware.Pending, which
	// checks it against the guard's approver.
	InterruptKey = "agentguardApproval"
	// DecisionKey is the key, in the resumed metadata of a restarted tool
	// request, of the human's decision that Middleware.Restart puts there.
	DecisionKey = "agentguardDecision"
	// MetadataKey is the key, in the metadata of the tool response that
	// replaces the result of a refused call, of {"denied": true, "step":
	// "<the step that refused>"}.
	MetadataKey = "agentguard"
)

// pendingValue is what InterruptKey holds.
type pendingValue struct {
	ID       string          `json:"id"`
	Tool     string          `json:"tool"`
	Toolset  string          `json:"toolset,omitempty"`
	CallID   string          `json:"callId,omitempty"`
	Task     string          `json:"task,omitempty"`
	Agent    string          `json:"agent,omitempty"`
	Args     json.RawMessage `json:"args,omitempty"`
	Kind     string          `json:"kind,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	Policies []string        `json:"policies,omitempty"`
}

// decisionValue is what DecisionKey holds.
type decisionValue struct {
	Request   string   `json:"request"`
	Granted   bool     `json:"granted"`
	Approvers []string `json:"approvers"`
	Reason    string   `json:"reason,omitempty"`
}

// interruptValue is the interrupt metadata of a call waiting for req,
// in the plain JSON values genkit copies parts with.
func interruptValue(req *agentguard.ApprovalRequest) map[string]any {
	v := pendingValue{
		ID: req.ID, Tool: req.Tool, Toolset: req.Toolset, CallID: req.CallID, Task: req.TaskID,
		Args: req.Args, Kind: req.Kind, Reason: req.Reason, Policies: req.Policies,
	}
	if !req.Agent.ID.IsZero() {
		v.Agent = req.Agent.ID.String()
	}
	return toMap(v)
}

// toMap turns v into a map of plain JSON values.
func toMap(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// fromJSON decodes a plain JSON value into out.
func fromJSON(v any, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// pendingID returns the approval request ID that interrupted tool request
// p carries.
func pendingID(p *ai.Part) (string, bool) {
	if !p.IsInterrupt() {
		return "", false
	}
	meta, ok := p.Metadata["interrupt"].(map[string]any)
	if !ok {
		return "", false
	}
	var v pendingValue
	if fromJSON(meta[InterruptKey], &v) != nil || v.ID == "" {
		return "", false
	}
	return v.ID, true
}

// Pending returns the approval request that p, a tool request of an
// interrupted generation (ModelResponse.Interrupts), waits for: what to
// show the human. It is the guard's own copy of the request, as the
// middleware's Deferred (WithApprovals) holds it, not what p's metadata
// says, and only if that request is for p's tool and call; so that a part
// a model made up to look interrupted cannot show the human another call
// than the one the decision will apply to. It returns false for anything
// else: a part that is not waiting for approval, a request that was
// decided or expired, or a middleware without a Deferred.
func (m *Middleware) Pending(p *ai.Part) (*agentguard.ApprovalRequest, bool) {
	id, ok := pendingID(p)
	if !ok || m.deferred == nil {
		return nil, false
	}
	for _, req := range m.deferred.Pending() {
		if req.ID == id && req.Tool == p.ToolRequest.Name && req.CallID == p.ToolRequest.Ref {
			return req, true
		}
	}
	return nil, false
}

// Restart returns the part to resume the generation with
// (ai.WithToolRestarts): p, a tool request waiting for approval (see
// Pending), restarted with the human's decision in its resumed metadata
// (DecisionKey). When genkit runs it, the middleware records the decision
// in its Deferred (Deferred.Decide), and the guard asks again: a grant
// lets the call run, once; a refusal denies it, and the model reads why.
// The approvers' names must come from the application (who signed in),
// never from the model. Resume with the context of the same task
// (agentguard.Guard.StartTask) as the interrupted generation: the
// decision binds to the exact call, task included.
//
// It returns an error wrapping ErrNotPending unless Pending(p) holds,
// and approval.ErrNoApprover when d names no approver.
func (m *Middleware) Restart(p *ai.Part, d approval.Decision) (*ai.Part, error) {
	req, ok := m.Pending(p)
	if !ok {
		return nil, ErrNotPending
	}
	if len(d.Approvers) == 0 {
		return nil, fmt.Errorf("genkitguard: request %s: %w", req.ID, approval.ErrNoApprover)
	}
	meta := maps.Clone(p.Metadata)
	delete(meta, "interrupt")
	// As ai.Tool.Restart does: genkit hands "resumed" to the restarted
	// call's context, where the middleware finds the decision.
	meta["resumed"] = map[string]any{DecisionKey: toMap(decisionValue{
		Request: req.ID, Granted: d.Granted, Approvers: d.Approvers, Reason: d.Reason,
	})}
	part := ai.NewToolRequestPart(&ai.ToolRequest{
		Name:  p.ToolRequest.Name,
		Ref:   p.ToolRequest.Ref,
		Input: p.ToolRequest.Input,
	})
	part.Metadata = meta
	return part, nil
}

// recordDecision records the decision a restarted call carries, if any,
// in the middleware's Deferred. Its error says why a decision carried was
// not recorded; the call then goes to the guard all the same, which keeps
// it pending unless a decision was recorded otherwise.
func (m *Middleware) recordDecision(ctx context.Context) error {
	raw, ok := ai.ResumedValue[any](ctx, DecisionKey)
	if !ok {
		return nil
	}
	var v decisionValue
	if err := fromJSON(raw, &v); err != nil || v.Request == "" {
		return ErrBadDecision
	}
	if m.deferred == nil {
		return ErrNoDeferred
	}
	return m.deferred.Decide(v.Request, approval.Decision{Granted: v.Granted, Approvers: v.Approvers, Reason: v.Reason})
}
