package adkguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/adk/session"
	"google.golang.org/adk/tool"
	"google.golang.org/adk/tool/toolconfirmation"
	"google.golang.org/genai"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

// ApprovalPayload is the payload of the confirmation the adapter asks for
// when a call needs a human's approval: what the human approves. It is the
// guard's approval request, bound (by Digest) to this exact call.
type ApprovalPayload struct {
	// RequestID is the approval request's ID.
	RequestID string `json:"request_id"`
	Tool      string `json:"tool"`
	Toolset   string `json:"toolset,omitempty"`
	// Args are the call's canonical JSON arguments.
	Args json.RawMessage `json:"args,omitempty"`
	// Kind is the kind of approval asked for (policy's @approval value);
	// Reason and Policies are why policy asks.
	Kind     string   `json:"kind,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Policies []string `json:"policies,omitempty"`
	// Task is the task the call belongs to; the answer counts only in it.
	Task   string `json:"task,omitempty"`
	Digest string `json:"digest"`
}

// pendingKey names a call waiting for a confirmation: the confirmation
// is answered in a later invocation of the same session.
type pendingKey struct{ app, user, session, call string }

type pendingRequest struct {
	id      string
	expires time.Time
}

func pendingKeyOf(ctx tool.Context) pendingKey {
	return pendingKey{app: ctx.AppName(), user: ctx.UserID(), session: ctx.SessionID(), call: ctx.FunctionCallID()}
}

// refused returns what the model sees of a call the guard refused, and
// asks for a confirmation when the refusal is an approval waiting for a
// human.
func (g *Guard) refused(ctx tool.Context, err error) map[string]any {
	req, ok := approval.PendingRequest(err)
	if !ok || g.cfg.deferred == nil {
		return refusal(agentguard.Explain(err))
	}
	payload := ApprovalPayload{
		RequestID: req.ID, Tool: req.Tool, Toolset: req.Toolset, Args: req.Args,
		Kind: req.Kind, Reason: req.Reason, Policies: req.Policies, Task: req.TaskID, Digest: req.Digest,
	}
	hint := fmt.Sprintf("Approve the call to %s (approval request %s)?", req.Tool, req.ID)
	if req.Reason != "" {
		hint = fmt.Sprintf("Approve the call to %s (approval request %s)? Policy asks because: %s.", req.Tool, req.ID, req.Reason)
	}
	if cerr := ctx.RequestConfirmation(hint, payload); cerr != nil {
		return refusal(agentguard.Explain(err) + " No confirmation could be asked for.")
	}
	g.remember(pendingKeyOf(ctx), req.ID)
	return refusal(agentguard.Explain(err))
}

// remember records that the call of key waits for the answer to request id.
func (g *Guard) remember(key pendingKey, id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	for k, p := range g.pending {
		if !now.Before(p.expires) {
			delete(g.pending, k)
		}
	}
	if _, ok := g.pending[key]; !ok && len(g.pending) >= g.cfg.pendingLimit {
		oldest, first := pendingKey{}, true
		for k, p := range g.pending {
			if first || p.expires.Before(g.pending[oldest].expires) {
				oldest, first = k, false
			}
		}
		delete(g.pending, oldest)
	}
	g.pending[key] = pendingRequest{id: id, expires: now.Add(g.cfg.pendingTTL)}
}

// answer gives the human's answer to the confirmation of ctx's call to the
// Deferred approver, so that the guard, asked again, finds it. It returns
// nil when the call is to be checked again (also when the adapter asked for
// no confirmation of it: the tool asked itself), or the refusal the model
// sees when the answer cannot be recorded.
func (g *Guard) answer(ctx tool.Context, confirmed bool) map[string]any {
	key := pendingKeyOf(ctx)
	g.mu.Lock()
	p, ok := g.pending[key]
	delete(g.pending, key)
	g.mu.Unlock()
	if !ok || g.cfg.deferred == nil || !time.Now().Before(p.expires) {
		return nil
	}
	dec := approval.Decision{Granted: confirmed, Reason: "answered through an ADK tool confirmation"}
	if name := g.cfg.approverName(ctx); name != "" {
		dec.Approvers = []string{name}
	}
	err := g.cfg.deferred.Decide(p.id, dec)
	if err == nil || errors.Is(err, approval.ErrNotPending) {
		// Recorded, or lapsed: either way the guard decides again (and
		// asks again if nobody's answer stands).
		return nil
	}
	return refusal(fmt.Sprintf("The call was not made: the answer to approval request %s could not be recorded (%v).", p.id, fmt.Errorf("adkguard: %w", err)))
}

// Confirmation is a request for a human's answer that an event carries:
// an ADK tool confirmation (an adk_request_confirmation function call).
type Confirmation struct {
	// ID is the confirmation call's ID; answer it with Answer(ID, ...).
	ID string
	// CallID and Tool are the function call waiting for the answer.
	CallID string
	Tool   string
	Hint   string
	// Approval is the guard's approval request when this guard asked for
	// the confirmation and it is still pending; nil otherwise (the tool
	// asked itself, or the request is not this guard's).
	Approval *ApprovalPayload
}

// Confirmations returns the confirmations ev asks for, in order. Only one
// this guard asked for, and still waits for, carries an Approval: a model
// that writes an adk_request_confirmation call of its own cannot pass it
// off as the guard's.
func (g *Guard) Confirmations(ev *session.Event) []Confirmation {
	if ev == nil || ev.Content == nil {
		return nil
	}
	var out []Confirmation
	for _, part := range ev.Content.Parts {
		fc := part.FunctionCall
		if fc == nil || fc.Name != toolconfirmation.FunctionCallName {
			continue
		}
		orig, err := toolconfirmation.OriginalCallFrom(fc)
		if err != nil {
			continue
		}
		c := Confirmation{ID: fc.ID, CallID: orig.ID, Tool: orig.Name}
		var tc struct {
			Hint    string          `json:"hint"`
			Payload json.RawMessage `json:"payload"`
		}
		if raw, err := json.Marshal(fc.Args["toolConfirmation"]); err == nil && json.Unmarshal(raw, &tc) == nil {
			c.Hint = tc.Hint
			var p ApprovalPayload
			if len(tc.Payload) > 0 && json.Unmarshal(tc.Payload, &p) == nil && p.RequestID != "" && g.waiting(orig.ID, p.RequestID) {
				p.Policies = slices.Clone(p.Policies)
				c.Approval = &p
			}
		}
		out = append(out, c)
	}
	return out
}

// waiting reports whether the call of that ID waits for the answer to
// approval request id.
func (g *Guard) waiting(call, id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, p := range g.pending {
		if k.call == call && p.id == id {
			return true
		}
	}
	return false
}

// Answer returns the message that answers the confirmation of that ID
// (Confirmation.ID): run it as the user's next message in the same
// session, in the same task, to resume the call.
func Answer(id string, confirmed bool) *genai.Content {
	return &genai.Content{Role: genai.RoleUser, Parts: []*genai.Part{{FunctionResponse: &genai.FunctionResponse{
		ID: id, Name: toolconfirmation.FunctionCallName, Response: map[string]any{"confirmed": confirmed},
	}}}}
}
