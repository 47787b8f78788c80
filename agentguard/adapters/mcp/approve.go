package mcpguard

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

// ElicitationKey is the key of the approval question in a tools/call
// result's inputRequests, and of its answer in the retried call's
// inputResponses. The answer's content field "approve" (a boolean) is the
// user's decision.
const ElicitationKey = "agentguard.approval"

// ElicitationApprover prefixes the approver name recorded for an answer
// given through elicitation: "mcp-client:" and the SPIFFE ID of the caller
// whose client answered. It names a client-attested consent, never an
// operator's approval; audit readers can tell them apart by it.
const ElicitationApprover = "mcp-client:"

// Bounds of the approvals a Server waits for over the 2026-07-28
// protocol's input-required results.
const (
	// approvalStateTTL is how long a retried call can bring an answer.
	approvalStateTTL = 10 * time.Minute
	// maxApprovalStates bounds the approvals waiting at once.
	maxApprovalStates = 10000
	// MaxApprovalsPerCaller bounds the approvals waiting at once for one
	// caller: asking for one more withdraws that caller's oldest, so that
	// a caller who never answers cannot starve the others.
	MaxApprovalsPerCaller = 16
	// maxArgsShown bounds the arguments the question shows.
	maxArgsShown = 2048
)

// WithElicitation makes a Server ask, through MCP elicitation, the calling
// client to approve each call that policy marks @approval (or that
// WithRiskApproval covers). The guard must use d as its approver
// (agentguard.WithApprover(d)). Server only.
//
// The answer comes from the calling client, the very agent the server
// guards: it is the consent of the user that client acts for, at best, and
// a client that answers "yes" by itself approves its own calls. It is not a
// separation of duties; for that, give the guard an approver the server's
// operators control (approval.Queue, approval's webhook), or a quorum.
// The decision is recorded with the approver ElicitationApprover + the
// caller's SPIFFE ID ("mcp-client:spiffe://..."): who answered, as far as
// the server can know.
//
// On the 2026-07-28 protocol the call's result asks for input (an
// elicitation under ElicitationKey, with a request state), the client asks
// its user and calls again with the answer, and the guard runs the call
// again in the same task, where d answers with the decision. On older
// protocols the server sends the elicitation itself while serving the
// call. A client that cannot elicit gets the call refused.
//
// The server withdraws from d (Deferred.Withdraw)
// the requests it asked about and can no longer be answered: an
// elicitation the client could not make, a request state that expired
// (after ten minutes), one the retry brought without an answer, and a
// caller's oldest when it has MaxApprovalsPerCaller waiting. So one caller
// cannot fill d for the others.
func WithElicitation(d *approval.Deferred) Option {
	return func(c *config) { c.deferred = d }
}

// approvals is a Server's state for elicited approvals.
type approvals struct {
	d   *approval.Deferred
	now func() time.Time

	mu     sync.Mutex
	states map[string]*approvalState
}

// approvalState is what a retried call must match to bring the answer
// to a pending request: the caller, the tool and the task, which the
// guard's digest binds too.
type approvalState struct {
	req     *agentguard.ApprovalRequest
	taskID  string
	caller  spiffeid.ID
	tool    string
	created time.Time
	expires time.Time
}

func newApprovals(cfg config) *approvals {
	return &approvals{d: cfg.deferred, now: time.Now, states: map[string]*approvalState{}}
}

// call runs a tools/call whose approval may be asked of the client's user.
func (a *approvals) call(ctx context.Context, s *Server, x *execution, call agentguard.Call) (mcp.Result, error) {
	p := x.req.Params
	taskID := ""
	var answered *agentguard.ApprovalRequest
	if st, ok := a.take(ctx, p.RequestState, x.caller, p.Name); ok {
		r, ok := p.InputResponses[ElicitationKey].(*mcp.ElicitResult)
		if !ok {
			// The retry brought no answer: the question is dropped, and
			// the call asked about afresh.
			a.withdraw(st.req) // the client called again without an answer
		} else {
			if err := a.decide(x, st.req.ID, r); err != nil {
				a.withdraw(st.req) // the answer could not be recorded
				return ErrorResult(err), nil
			}
			taskID, answered = st.taskID, st.req
		}
	}
	ctx, task, err := a.task(ctx, s.g, taskID)
	if err != nil {
		return ErrorResult(err), nil
	}
	if task != nil {
		defer task.End(context.WithoutCancel(ctx))
	}
	res, err := s.invoke(ctx, x, call)
	if answered != nil {
		// The decision answers the call as it was asked about; a retry
		// with other arguments did not use it, and it must not wait for
		// a call that will not come.
		a.forget(answered)
	}
	req, pending := approval.PendingRequest(err)
	if !pending {
		if err != nil {
			return ErrorResult(err), nil
		}
		return res, nil
	}
	q := question(req)
	if newProtocol(x.req.Session) {
		taskID := ""
		if task, ok := agentguard.TaskFromContext(ctx); ok {
			taskID = task.ID()
		}
		state, err := a.keep(ctx, req, taskID, x.caller.id, p.Name)
		if err != nil {
			a.withdraw(req) // the approval cannot be kept
			return ErrorResult(err), nil
		}
		return inputRequired(q, state)
	}
	// Older protocols: the server may ask the client itself, now.
	r, eerr := x.req.Session.Elicit(ctx, q)
	if eerr != nil {
		a.withdraw(req) // the client could not ask its user
		return refused(req, "the client could not ask its user"), nil
	}
	if err := a.decide(x, req.ID, r); err != nil {
		a.withdraw(req) // the answer could not be recorded
		return ErrorResult(err), nil
	}
	out, err := s.run(ctx, x, call)
	a.forget(req)
	return out, err
}

// task returns ctx in a task the call and its retry share: the task ctx
// has, else a new one, with the ID id when the call is a retry.
func (a *approvals) task(ctx context.Context, g *agentguard.Guard, id string) (context.Context, *agentguard.Task, error) {
	if _, ok := agentguard.TaskFromContext(ctx); ok {
		return ctx, nil, nil
	}
	if id == "" {
		id = "mcp-call-" + rand.Text()
	}
	return g.StartTask(ctx, agentguard.TaskSpec{ID: id, Purpose: "MCP tools/call"})
}

// decide records the client's answer r to the pending request id, as
// given by the client of the call's caller.
func (a *approvals) decide(x *execution, id string, r *mcp.ElicitResult) error {
	if x.caller.err != nil || x.caller.id.IsZero() {
		return fmt.Errorf("mcpguard: approval %s: no verified caller answered: %w", id, agentguard.ErrApprovalRequired)
	}
	dec := approval.Decision{Approvers: []string{ElicitationApprover + x.caller.id.String()}}
	switch {
	case r == nil || r.Action != "accept":
		dec.Reason = "the client did not accept"
	case r.Content["approve"] != true:
		dec.Reason = "the client refused"
	default:
		dec.Granted, dec.Reason = true, "consent given through MCP elicitation by the calling client"
	}
	if err := a.d.Decide(id, dec); err != nil {
		return fmt.Errorf("mcpguard: approval %s: %w", id, err)
	}
	return nil
}

// withdraw takes req, pending, out of the Deferred, so that it holds no
// place the Deferred's limit counts; the call, made again, waits for a new
// decision. The last argument says why, for the reader. A request already
// decided (by another call) is left as it is.
func (a *approvals) withdraw(req *agentguard.ApprovalRequest) {
	_ = a.d.Withdraw(req.ID)
}

// forget takes out what d still holds for req (a decision its run did not
// use), so that it holds no place the Deferred's limit counts.
func (a *approvals) forget(req *agentguard.ApprovalRequest) {
	if a.d.Discard(req.ID) != nil {
		a.withdraw(req)
	}
}

// keep stores what the retry of a call must match and returns the opaque
// request state that names it. Expired states are withdrawn first; a
// caller with MaxApprovalsPerCaller states has its oldest withdrawn.
func (a *approvals) keep(ctx context.Context, req *agentguard.ApprovalRequest, taskID string, caller spiffeid.ID, tool string) (string, error) {
	if taskID == "" {
		return "", errors.New("mcpguard: approval: the call has no task")
	}
	var drop []*approvalState
	defer func() {
		for _, st := range drop {
			a.withdraw(st.req) // the approval was not answered in time
		}
	}()
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	var oldest string
	mine := 0
	for k, st := range a.states {
		if !now.Before(st.expires) {
			drop = append(drop, st)
			delete(a.states, k)
			continue
		}
		if st.caller == caller {
			mine++
			if oldest == "" || st.created.Before(a.states[oldest].created) {
				oldest = k
			}
		}
	}
	if mine >= MaxApprovalsPerCaller {
		drop = append(drop, a.states[oldest])
		delete(a.states, oldest)
	}
	if len(a.states) >= maxApprovalStates {
		return "", fmt.Errorf("mcpguard: approval %s: too many approvals waiting: %w", req.ID, agentguard.ErrApprovalRequired)
	}
	token := rand.Text()
	a.states[token] = &approvalState{req: req, taskID: taskID, caller: caller, tool: tool, created: now, expires: now.Add(approvalStateTTL)}
	return token, nil
}

// take returns and forgets the state a retried call names, if it is
// unexpired and the call is the same caller's call of the same tool; an
// expired one is withdrawn. A state that does not match is left alone:
// the call is then asked about afresh.
func (a *approvals) take(ctx context.Context, token string, c *caller, tool string) (*approvalState, bool) {
	if token == "" || c.err != nil {
		return nil, false
	}
	a.mu.Lock()
	st, ok := a.states[token]
	if !ok || st.caller != c.id || st.tool != tool {
		a.mu.Unlock()
		return nil, false
	}
	delete(a.states, token)
	live := a.now().Before(st.expires)
	a.mu.Unlock()
	if !live {
		a.withdraw(st.req) // the approval was not answered in time
	}
	return st, live
}

// newProtocol reports whether the session speaks the 2026-07-28 protocol,
// where a server may not send requests of its own while serving a call.
func newProtocol(ss *mcp.ServerSession) bool {
	p := ss.InitializeParams()
	return p != nil && p.ProtocolVersion >= "2026-07-28"
}

// question is the elicitation that asks the user about req.
func question(req *agentguard.ApprovalRequest) *mcp.ElicitParams {
	args := string(req.Args)
	if len(args) > maxArgsShown {
		args = toValidUTF8(args[:maxArgsShown]) + "…"
	}
	msg := fmt.Sprintf("Approve the call of tool %q", req.Tool)
	if req.Toolset != "" {
		msg += fmt.Sprintf(" of %q", req.Toolset)
	}
	msg += fmt.Sprintf(" with arguments %s?", args)
	if req.Reason != "" {
		msg += " Policy asks because: " + req.Reason + "."
	}
	msg += " (request " + req.ID + ")"
	return &mcp.ElicitParams{
		Mode:    "form",
		Message: msg,
		RequestedSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"approve": map[string]any{"type": "boolean", "title": "Approve", "description": "Let this call run."},
			},
			"required": []any{"approve"},
		},
	}
}

func toValidUTF8(s string) string {
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// inputRequired is a tools/call result of the 2026-07-28 protocol that
// asks the client for the answer to q and to call again with state.
// The SDK sets a result's type only for results its own tool handlers
// return, so it is built from the wire form.
func inputRequired(q *mcp.ElicitParams, state string) (*mcp.CallToolResult, error) {
	b, err := json.Marshal(map[string]any{
		"content":       []any{},
		"resultType":    "input_required",
		"inputRequests": mcp.InputRequestMap{ElicitationKey: q},
		"requestState":  state,
	})
	if err != nil {
		return nil, fmt.Errorf("mcpguard: approval: %w", err)
	}
	var res mcp.CallToolResult
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("mcpguard: approval: %w", err)
	}
	return &res, nil
}

// refused is the answer to a call whose approval could not be asked.
func refused(req *agentguard.ApprovalRequest, why string) *mcp.CallToolResult {
	return &mcp.CallToolResult{
		Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(
			"The call to tool %q needs a human's approval (request %s), and %s; the call was not made.", req.Tool, req.ID, why)}},
		IsError: true,
	}
}
