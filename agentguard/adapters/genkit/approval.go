package genkitguard

import (
	"bytes"
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

// holds reports whether the middleware's Deferred holds the pending
// request id.
func (m *Middleware) holds(id string) bool {
	for _, r := range m.deferred.Pending() {
		if r.ID == id {
			return true
		}
	}
	return false
}

// Restart records the human's decision d on p, a tool request waiting for
// approval (see Pending), and returns the part to resume the generation
// with (ai.WithToolRestarts). The decision is kept by the middleware's
// Deferred (Deferred.Decide), never in the part: a restart part is plain
// genkit data that whoever holds the interrupted response can write, so
// it carries no decision, and a part that claims one is ignored. When
// genkit runs the restarted request, the guard asks again and the
// Deferred answers with the decision: a grant lets the call run, once; a
// refusal denies it, and the model reads why.
//
// The restarted request runs with the arguments the human was shown (the
// guard's copy of the request), and Restart refuses p if its own input
// differs from them (ErrArgumentsChanged). The approvers' names must come
// from the application (who signed in), never from the model. Resume with
// the context of the same task (agentguard.Guard.StartTask) as the
// interrupted generation, soon (the decision lapses after the Deferred's
// decision TTL): the decision binds to the exact call, task included.
//
// It returns an error wrapping ErrNoDeferred without WithApprovals,
// ErrNotPending unless Pending(p) holds, ErrArgumentsChanged, or the
// error of Deferred.Decide (approval.ErrNoApprover, approval.ErrQuorum,
// ...), after which nothing is recorded.
func (m *Middleware) Restart(p *ai.Part, d approval.Decision) (*ai.Part, error) {
	if m.deferred == nil {
		return nil, ErrNoDeferred
	}
	req, ok := m.Pending(p)
	if !ok {
		return nil, ErrNotPending
	}
	args, err := agentguard.CanonicalArgs(arguments(p.ToolRequest.Input))
	if err != nil || !bytes.Equal(args, req.Args) {
		return nil, fmt.Errorf("%w: request %s for tool %q", ErrArgumentsChanged, req.ID, req.Tool)
	}
	input, err := plainJSON(req.Args)
	if err != nil {
		return nil, fmt.Errorf("genkitguard: request %s: arguments: %w", req.ID, err)
	}
	if err := m.deferred.Decide(req.ID, d); err != nil {
		return nil, fmt.Errorf("genkitguard: request %s: %w", req.ID, err)
	}
	meta := maps.Clone(p.Metadata)
	delete(meta, "interrupt")
	delete(meta, "resumed")
	delete(meta, "replacedInput")
	// As ai.Tool.Restart does: genkit runs a tool request marked resumed
	// as a restart.
	meta["resumed"] = true
	part := ai.NewToolRequestPart(&ai.ToolRequest{
		Name:  p.ToolRequest.Name,
		Ref:   p.ToolRequest.Ref,
		Input: input,
	})
	part.Metadata = meta
	return part, nil
}

// plainJSON decodes the canonical JSON arguments b into plain JSON values,
// numbers kept as written, so that they encode to the same arguments.
func plainJSON(b json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}
