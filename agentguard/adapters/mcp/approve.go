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

// Bounds of the approvals a Server waits for over the 2026-07-28
// protocol's input-required results.
const (
	// approvalStateTTL is how long a retried call can bring an answer.
	approvalStateTTL = 10 * time.Minute
	// maxApprovalStates bounds the approvals waiting at once.
	maxApprovalStates = 10000
	// maxArgsShown bounds the arguments the question shows.
	maxArgsShown = 2048
)

// WithElicitation makes a Server ask the calling client's user to approve
// each call that policy marks @approval (or that WithRiskApproval covers),
// through MCP elicitation: MCP's own human-in-the-loop. The guard must use
// d as its approver (agentguard.WithApprover(d)). approver names who
// answers for a request: the signed-in user behind the client, as the
// application knows it (from req.Extra.TokenInfo, say), never a name the
// answer carries; an error or "" refuses the call. Server only.
//
// On the 2026-07-28 protocol the call's result asks for input (an
// elicitation under ElicitationKey, with a request state), the client asks
// its user and calls again with the answer, and the guard runs the call
// again in the same task, where d answers with the decision. On older
// protocols the server sends the elicitation itself while serving the
// call. A client that cannot elicit gets the call refused.
//
// The answer comes from the client: use elicitation for the consent of the
// user the client acts for, not for a separation of duties, which needs an
// approver the server's operators control (approval.Queue, Webhook).
func WithElicitation(d *approval.Deferred, approver func(ctx context.Context, req *mcp.CallToolRequest) (string, error)) Option {
	return func(c *config) { c.deferred, c.approver = d, approver }
}

// approvals is a Server's state for elicited approvals.
type approvals struct {
	d        *approval.Deferred
	approver func(context.Context, *mcp.CallToolRequest) (string, error)
	now      func() time.Time

	mu     sync.Mutex
	states map[string]*approvalState
}

// approvalState is what a retried call must match to bring the answer
// to a pending request: the caller, the tool and the task, which the
// guard's digest binds too.
type approvalState struct {
	requestID string
	taskID    string
	caller    spiffeid.ID
	tool      string
	expires   time.Time
}

func newApprovals(cfg config) *approvals {
	return &approvals{d: cfg.deferred, approver: cfg.approver, now: time.Now, states: map[string]*approvalState{}}
}

// call runs a tools/call whose approval may be asked of the client's user.
func (a *approvals) call(ctx context.Context, s *Server, x *execution, call agentguard.Call) (mcp.Result, error) {
	p := x.req.Params
	taskID := ""
	if st, ok := a.take(p.RequestState, x.caller, p.Name); ok {
		if r, ok := p.InputResponses[ElicitationKey].(*mcp.ElicitResult); ok {
			if err := a.decide(ctx, x.req, st.requestID, r); err != nil {
				return ErrorResult(err), nil
			}
			taskID = st.taskID
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
	req, pending := approval.PendingRequest(err)
	if !pending {
		if err != nil {
			return ErrorResult(err), nil
		}
		return res, nil
	}
	q := question(req)
	if newProtocol(x.req.Session) {
		state, err := a.keep(ctx, req, x.caller, p.Name)
		if err != nil {
			return ErrorResult(err), nil
		}
		return inputRequired(q, state)
	}
	// Older protocols: the server may ask the client itself, now.
	r, eerr := x.req.Session.Elicit(ctx, q)
	if eerr != nil {
		return refused(req, "the client could not ask its user"), nil
	}
	if err := a.decide(ctx, x.req, req.ID, r); err != nil {
		return ErrorResult(err), nil
	}
	return s.run(ctx, x, call)
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

// decide records the user's answer r to the pending request id, in the
// name the application gives the approver.
func (a *approvals) decide(ctx context.Context, req *mcp.CallToolRequest, id string, r *mcp.ElicitResult) error {
	name := ""
	var err error
	if a.approver != nil {
		name, err = a.approver(ctx, req)
	}
	if err != nil || name == "" {
		return fmt.Errorf("mcpguard: approval %s: no approver name for the request: %w", id, errors.Join(err, agentguard.ErrApprovalRequired))
	}
	dec := approval.Decision{Approvers: []string{name}}
	switch {
	case r == nil || r.Action != "accept":
		dec.Reason = "the user did not accept"
	case r.Content["approve"] != true:
		dec.Reason = "the user refused"
	default:
		dec.Granted, dec.Reason = true, "approved through MCP elicitation"
	}
	if err := a.d.Decide(id, dec); err != nil {
		return fmt.Errorf("mcpguard: approval %s: %w", id, err)
	}
	return nil
}

// keep stores what the retry of a call must match and returns the opaque
// request state that names it.
func (a *approvals) keep(ctx context.Context, req *agentguard.ApprovalRequest, c *caller, tool string) (string, error) {
	task, ok := agentguard.TaskFromContext(ctx)
	if !ok {
		return "", errors.New("mcpguard: approval: the call has no task")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for k, st := range a.states {
		if !now.Before(st.expires) {
			delete(a.states, k)
		}
	}
	if len(a.states) >= maxApprovalStates {
		return "", fmt.Errorf("mcpguard: approval %s: too many approvals waiting: %w", req.ID, agentguard.ErrApprovalRequired)
	}
	token := rand.Text()
	a.states[token] = &approvalState{requestID: req.ID, taskID: task.ID(), caller: c.id, tool: tool, expires: now.Add(approvalStateTTL)}
	return token, nil
}

// take returns and forgets the state a retried call names, if it is
// unexpired and the call is the same caller's call of the same tool.
// A state that does not match is left alone: the call is then asked about
// afresh.
func (a *approvals) take(token string, c *caller, tool string) (*approvalState, bool) {
	if token == "" || c.err != nil {
		return nil, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st, ok := a.states[token]
	if !ok || st.caller != c.id || st.tool != tool {
		return nil, false
	}
	delete(a.states, token)
	return st, a.now().Before(st.expires)
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
