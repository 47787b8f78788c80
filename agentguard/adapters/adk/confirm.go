package adkguard

import (
	"bytes"
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

func (p ApprovalPayload) clone() ApprovalPayload {
	p.Args = slices.Clone(p.Args)
	p.Policies = slices.Clone(p.Policies)
	return p
}

// pendingKey names a call waiting for a confirmation: the confirmation
// is answered in a later invocation of the same session, where the same
// agent (on the same branch) resumes the call.
type pendingKey struct{ app, user, session, branch, agent, call string }

// pendingRequest is a confirmation the adapter asked for.
type pendingRequest struct {
	// payload is the guard's request, as the adapter asked about it: what
	// the human is shown and what an answer decides, never what an
	// event says.
	payload ApprovalPayload
	hint    string
	// confirmation is the ID of ADK's confirmation call asking for it,
	// once Confirmations has found it; only an answer to that call
	// decides the request.
	confirmation string
	expires      time.Time
}

func pendingKeyOf(ctx tool.Context) pendingKey {
	return pendingKey{app: ctx.AppName(), user: ctx.UserID(), session: ctx.SessionID(), branch: ctx.Branch(), agent: ctx.AgentName(), call: ctx.FunctionCallID()}
}

// refused returns what the model sees of a call the guard refused, and
// asks for a confirmation when the refusal is an approval waiting for a
// human. note, when not nil, says why the answer resuming the call was not
// taken: no confirmation is asked for then, since ADK shows none asked
// while it resumes calls; the request waits for the call to be made again.
func (g *Guard) refused(ctx tool.Context, err, note error) map[string]any {
	text := agentguard.Explain(err)
	if note != nil {
		return refusal(fmt.Sprintf("The confirmation answered was not taken (%v). %s", note, text))
	}
	req, ok := approval.PendingRequest(err)
	if !ok || g.cfg.deferred == nil {
		return refusal(text)
	}
	payload := ApprovalPayload{
		RequestID: req.ID, Tool: req.Tool, Toolset: req.Toolset, Args: req.Args,
		Kind: req.Kind, Reason: req.Reason, Policies: req.Policies, Task: req.TaskID, Digest: req.Digest,
	}
	hint := fmt.Sprintf("Approve the call to %s with %s (approval request %s)?", req.Tool, argsText(req.Args), req.ID)
	if req.Reason != "" {
		hint = fmt.Sprintf("Approve the call to %s with %s (approval request %s)? Policy asks because: %s.", req.Tool, argsText(req.Args), req.ID, req.Reason)
	}
	if cerr := ctx.RequestConfirmation(hint, payload.clone()); cerr != nil {
		return refusal(text + " No confirmation could be asked for.")
	}
	g.remember(pendingKeyOf(ctx), payload.clone(), hint)
	return refusal(text)
}

// argsText is a call's canonical arguments as the human reads them.
func argsText(args json.RawMessage) string {
	if len(args) == 0 {
		return "no arguments"
	}
	return string(args)
}

// remember records that the call of key waits for the answer to the
// request of payload.
func (g *Guard) remember(key pendingKey, payload ApprovalPayload, hint string) {
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
	g.pending[key] = pendingRequest{payload: payload, hint: hint, expires: now.Add(g.cfg.pendingTTL)}
}

// answer gives the human's answer to the confirmation of ctx's call to the
// Deferred approver, so that the guard, asked again, finds it. It returns
// nil, nil when the call is to be checked again (also when the adapter
// asked for no confirmation of it: the tool asked itself); a refusal the
// model sees when the answer cannot be recorded; or, with a nil refusal,
// the reason the answer was not taken: it does not answer the confirmation
// the adapter asked for (ErrConfirmationMismatch), and the call must not
// run on it.
func (g *Guard) answer(ctx tool.Context, conf *toolconfirmation.ToolConfirmation, name string, args json.RawMessage) (map[string]any, error) {
	key := pendingKeyOf(ctx)
	g.mu.Lock()
	p, ok := g.pending[key]
	if ok && !time.Now().Before(p.expires) {
		delete(g.pending, key)
		ok = false
	}
	g.mu.Unlock()
	if !ok || g.cfg.deferred == nil {
		return nil, nil
	}
	// What is decided is the stored request, and only for the call it was
	// asked about, answered through the confirmation ADK made for it.
	switch answered := answeredConfirmation(conf); {
	case p.confirmation == "" || answered != p.confirmation:
		return nil, fmt.Errorf("%w: it answers confirmation %q, not the guard's for approval request %s", ErrConfirmationMismatch, answered, p.payload.RequestID)
	case name != p.payload.Tool:
		return nil, fmt.Errorf("%w: the resumed call is of tool %q, approval request %s is for %q", ErrConfirmationMismatch, name, p.payload.RequestID, p.payload.Tool)
	case !sameArgs(args, p.payload.Args):
		return nil, fmt.Errorf("%w: the resumed call's arguments are not those of approval request %s", ErrConfirmationMismatch, p.payload.RequestID)
	}
	dec := approval.Decision{Granted: conf.Confirmed, Reason: "answered through an ADK tool confirmation"}
	if name := g.cfg.approverName(ctx); name != "" {
		dec.Approvers = []string{name}
	}
	err := g.cfg.deferred.Decide(p.payload.RequestID, dec)
	if err == nil || errors.Is(err, approval.ErrNotPending) {
		// Recorded, or lapsed: either way the guard decides again (and
		// asks again if nobody's answer stands).
		g.mu.Lock()
		if cur, ok := g.pending[key]; ok && cur.payload.RequestID == p.payload.RequestID {
			delete(g.pending, key)
		}
		g.mu.Unlock()
		return nil, nil
	}
	// The request stays pending, and so does the confirmation.
	why := fmt.Errorf("adkguard: %w", err)
	if errors.Is(err, approval.ErrQuorum) {
		return refusal(fmt.Sprintf("The call was not made: approval request %s (%s) needs more approvers than an ADK confirmation, which has one answerer, can give (%v); it waits for them through another approver.", p.payload.RequestID, p.payload.Kind, why)), nil
	}
	return refusal(fmt.Sprintf("The call was not made: the answer to approval request %s could not be recorded (%v).", p.payload.RequestID, why)), nil
}

// answeredConfirmation returns the ID of the confirmation an answer made
// with Answer names, "" for another answer.
func answeredConfirmation(conf *toolconfirmation.ToolConfirmation) string {
	m, _ := conf.Payload.(map[string]any)
	id, _ := m[answerKey].(string)
	return id
}

// sameArgs reports whether the JSON arguments args are the canonical
// arguments want.
func sameArgs(args, want json.RawMessage) bool {
	got, err := agentguard.CanonicalArgs(args)
	if err != nil {
		return false
	}
	if len(want) == 0 || string(want) == "null" {
		want = json.RawMessage("{}")
	}
	return bytes.Equal(got, want)
}

// Confirmation is a request for a human's answer that an event carries:
// an ADK tool confirmation (an adk_request_confirmation function call).
type Confirmation struct {
	// ID is the confirmation call's ID; answer it with Answer(ID, ...).
	ID string
	// CallID and Tool are the function call waiting for the answer, as
	// the event names it.
	CallID string
	Tool   string
	// Hint is the question: the adapter's own for its confirmations,
	// else the event's.
	Hint string
	// Approval is the guard's approval request, as the adapter asked
	// about it (never as the event tells it), when the confirmation is
	// the one ADK made for it and the request still waits; nil otherwise
	// (the tool asked itself, or the confirmation is not the guard's).
	// The human is to be shown this: answering yes grants exactly it.
	Approval *ApprovalPayload
}

// Confirmations returns the confirmations ev asks for, in order. Only the
// confirmation ADK itself made for a call the guard waits for carries an
// Approval, and only if the call it names is the one the guard asked
// about (same ID, tool and arguments). A model that writes an
// adk_request_confirmation call of its own gets no Approval: ADK marks
// the calls of its confirmation events as long-running, and a model's
// event holds none such. Answering a confirmation without an Approval
// approves nothing for the guard.
func (g *Guard) Confirmations(ev *session.Event) []Confirmation {
	if ev == nil || ev.Content == nil {
		return nil
	}
	// ADK's confirmation events hold nothing but confirmation calls, each
	// marked long-running.
	own := len(ev.Content.Parts) > 0
	for _, part := range ev.Content.Parts {
		if part == nil || part.FunctionCall == nil || part.FunctionCall.Name != toolconfirmation.FunctionCallName ||
			!slices.Contains(ev.LongRunningToolIDs, part.FunctionCall.ID) {
			own = false
		}
	}
	var out []Confirmation
	for _, part := range ev.Content.Parts {
		if part == nil {
			continue
		}
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
			if own && fc.ID != "" && len(tc.Payload) > 0 && json.Unmarshal(tc.Payload, &p) == nil && p.RequestID != "" {
				if stored, hint, ok := g.bind(fc.ID, orig, p.RequestID); ok {
					c.Approval, c.Hint = &stored, hint
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// bind finds the confirmation the guard waits for, of the call orig and
// approval request id, checks that orig is the call it asked about, and
// ties it to the confirmation call confirmation (once: a confirmation
// found first stays the one that decides).
func (g *Guard) bind(confirmation string, orig *genai.FunctionCall, id string) (ApprovalPayload, string, bool) {
	raw, err := callArgs(orig.Args)
	if err != nil {
		return ApprovalPayload{}, "", false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	for k, p := range g.pending {
		if k.call != orig.ID || p.payload.RequestID != id || !now.Before(p.expires) {
			continue
		}
		if p.payload.Tool != orig.Name || !sameArgs(raw, p.payload.Args) {
			return ApprovalPayload{}, "", false
		}
		switch p.confirmation {
		case "":
			p.confirmation = confirmation
			g.pending[k] = p
		case confirmation:
		default:
			return ApprovalPayload{}, "", false
		}
		return p.payload.clone(), p.hint, true
	}
	return ApprovalPayload{}, "", false
}

// answerKey is the member of an answer's payload naming the confirmation
// it answers: ADK gives a resumed call the answer's payload, not the ID of
// the confirmation it answered.
const answerKey = "adkguard_confirmation"

// Answer returns the message that answers the confirmation of that ID
// (Confirmation.ID): run it as the user's next message in the same
// session, in the same task, to resume the call. The guard takes only an
// answer made with Answer, to a confirmation Confirmations has returned.
func Answer(id string, confirmed bool) *genai.Content {
	return &genai.Content{Role: genai.RoleUser, Parts: []*genai.Part{{FunctionResponse: &genai.FunctionResponse{
		ID: id, Name: toolconfirmation.FunctionCallName,
		Response: map[string]any{"confirmed": confirmed, "payload": map[string]any{answerKey: id}},
	}}}}
}
