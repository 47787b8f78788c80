package einoguard_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/components/tool/utils"
	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"

	"github.com/agentguard/go-sdk/agentguard"
	einoguard "github.com/agentguard/go-sdk/agentguard/adapters/eino"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// approvalRun is a run of the shop agent whose refunds wait for a
// manager, paused and resumed through eino's interrupts and checkpoints.
type approvalRun struct {
	e     *env
	shop  *shop
	model *scriptedModel
	agent compose.Runnable[[]*schema.Message, *schema.Message]
	ctx   context.Context // the task's, across the pause
	id    compose.Option  // the run's checkpoint
}

func newApprovalRun(t *testing.T, d *approval.Deferred, calls ...string) *approvalRun {
	t.Helper()
	e := newEnv(t, shopRules(), agentguard.WithApprover(d))
	s := newShop(t)
	ts := newShopToolset(t, e, s, einoguard.WithApprovals(d))
	var tc []schema.ToolCall
	for i, args := range calls {
		tc = append(tc, toolCall("call-"+string(rune('1'+i)), "refund", args))
	}
	m := newModel(callTools(tc...), answer("done"))
	return &approvalRun{
		e: e, shop: s, model: m, agent: newAgent(t, m, ts.NodeConfig()),
		ctx: e.task(t), id: compose.WithCheckPointID("run-1"),
	}
}

func (r *approvalRun) invoke(ctx context.Context) (*schema.Message, error) {
	return r.agent.Invoke(ctx, []*schema.Message{schema.UserMessage("refund O-1")}, r.id)
}

// pause runs the agent until it pauses and returns the calls waiting.
func (r *approvalRun) pause(t *testing.T) []einoguard.Interrupt {
	t.Helper()
	_, err := r.invoke(r.ctx)
	waiting := einoguard.Interrupts(err)
	if len(waiting) == 0 {
		t.Fatalf("the run did not pause for approval: %v", err)
	}
	return waiting
}

func TestApprovalGrantedThroughInterruptAndResume(t *testing.T) {
	r := newApprovalRun(t, approval.NewDeferred(), `{"order":"O-1","amount":40}`)
	waiting := r.pause(t)
	if len(waiting) != 1 {
		t.Fatalf("%d interrupts, want 1", len(waiting))
	}
	req := waiting[0].Request
	if req.Tool != "refund" || req.Toolset != "shop" || req.CallID != "call-1" || req.Kind != "manager" ||
		req.RequestID == "" || !strings.Contains(req.Args, `"amount":40`) || req.Agent != agentguardtest.AgentID || req.TaskID == "" {
		t.Fatalf("interrupt info %+v", req)
	}
	if n := r.shop.refund.runs.Load(); n != 0 {
		t.Fatalf("refund ran %d times before approval", n)
	}
	audittest.ExpectCount(t, r.e.calls(), audittest.Want{CallID: "call-1", Decision: audit.Deny, Step: agentguard.StepApprove, Approval: agentguard.ApprovalPending}, 1)

	out, err := r.invoke(einoguard.Resume(r.ctx, waiting[0].ID, einoguard.Decision{RequestID: req.RequestID, Granted: true, Approvers: []string{"alice"}, Reason: "checked"}))
	if err != nil {
		t.Fatal(err)
	}
	if out.Content != "done" {
		t.Fatalf("answer %q", out.Content)
	}
	if n := r.shop.refund.runs.Load(); n != 1 {
		t.Fatalf("refund ran %d times, want 1", n)
	}
	r.shop.refund.sawCanary(t)
	if got := r.model.toolResult(t, "call-1"); got != "refunded 40 on O-1" {
		t.Fatalf("the model got %q", got)
	}
	granted := audittest.ExpectCount(t, r.e.calls(), audittest.Want{CallID: "call-1", Decision: audit.Allow, Outcome: audit.OutcomeOK, Approval: agentguard.ApprovalGranted}, 1)
	if a := granted[0].Approval; len(a.Approvers) != 1 || a.Approvers[0] != "alice" {
		t.Fatalf("approval %+v", a)
	}
	// One record and one span per pass through the guard: the pause and
	// the resumed call.
	if n := len(r.e.calls()); n != 2 {
		t.Fatalf("%d tool-call records, want 2:\n%s", n, audittest.List(r.e.calls()))
	}
	if n := len(r.e.toolSpans()); n != 2 {
		t.Fatalf("%d spans, want 2", n)
	}
	r.e.noCanary(t, r.model)
}

func TestApprovalRefusedThroughInterruptAndResume(t *testing.T) {
	r := newApprovalRun(t, approval.NewDeferred(), `{"order":"O-1","amount":40}`)
	waiting := r.pause(t)

	out, err := r.invoke(compose.ResumeWithData(r.ctx, waiting[0].ID, einoguard.Decision{RequestID: waiting[0].Request.RequestID, Approvers: []string{"bob"}, Reason: "not this one"}))
	if err != nil {
		t.Fatalf("a refusal ended the run: %v", err)
	}
	if out.Content != "done" {
		t.Fatalf("answer %q", out.Content)
	}
	if n := r.shop.refund.runs.Load(); n != 0 {
		t.Fatalf("refund ran %d times", n)
	}
	got := r.model.toolResult(t, "call-1")
	if !strings.Contains(got, `"refund"`) || !strings.Contains(got, "refused") || !strings.Contains(got, "bob") {
		t.Fatalf("the model got %q", got)
	}
	audittest.ExpectCount(t, r.e.calls(), audittest.Want{CallID: "call-1", Decision: audit.Deny, Step: agentguard.StepApprove, Approval: agentguard.ApprovalRefused}, 1)
	r.e.noCanary(t, r.model)
}

// Resuming one of two paused calls leaves the other paused, without asking
// the guard again; it is answered on the next resume.
func TestApprovalOfOneCallLeavesTheOtherPaused(t *testing.T) {
	r := newApprovalRun(t, approval.NewDeferred(), `{"order":"O-1","amount":40}`, `{"order":"O-2","amount":50}`)
	waiting := r.pause(t)
	if len(waiting) != 2 {
		t.Fatalf("%d interrupts, want 2", len(waiting))
	}
	byCall := map[string]einoguard.Interrupt{}
	for _, w := range waiting {
		byCall[w.Request.CallID] = w
	}

	_, err := r.invoke(einoguard.Resume(r.ctx, byCall["call-1"].ID, einoguard.Decision{RequestID: byCall["call-1"].Request.RequestID, Granted: true, Approvers: []string{"alice"}}))
	still := einoguard.Interrupts(err)
	if len(still) != 1 || still[0].Request.CallID != "call-2" || still[0].Request.RequestID != byCall["call-2"].Request.RequestID {
		t.Fatalf("after the first resume: %v (%v)", still, err)
	}
	if n := r.shop.refund.runs.Load(); n != 1 {
		t.Fatalf("refund ran %d times, want 1", n)
	}
	// call-2 went through the guard once so far: its pause.
	audittest.ExpectCount(t, r.e.calls(), audittest.Want{CallID: "call-2"}, 1)

	out, err := r.invoke(einoguard.Resume(r.ctx, still[0].ID, einoguard.Decision{RequestID: still[0].Request.RequestID, Granted: true, Approvers: []string{"alice"}}))
	if err != nil {
		t.Fatal(err)
	}
	if out.Content != "done" || r.shop.refund.runs.Load() != 2 {
		t.Fatalf("answer %q, %d runs", out.Content, r.shop.refund.runs.Load())
	}
	if got := r.model.toolResult(t, "call-2"); got != "refunded 50 on O-2" {
		t.Fatalf("the model got %q", got)
	}
}

// A resume that carries no acceptable decision does not run the call; the
// run can be resumed again properly from its checkpoint.
func TestResumeWithoutAnAcceptableDecision(t *testing.T) {
	d := approval.NewDeferred(approval.WithDeferredQuorum("manager", 2))
	r := newApprovalRun(t, d, `{"order":"O-1","amount":40}`)
	waiting := r.pause(t)
	id, rid := waiting[0].ID, waiting[0].Request.RequestID

	_, err := r.invoke(compose.Resume(r.ctx, id))
	if !errors.Is(err, einoguard.ErrNoDecision) {
		t.Fatalf("resume without data: %v", err)
	}
	_, err = r.invoke(compose.ResumeWithData(r.ctx, id, "yes"))
	if !errors.Is(err, einoguard.ErrNoDecision) {
		t.Fatalf("resume with a string: %v", err)
	}
	_, err = r.invoke(einoguard.Resume(r.ctx, id, einoguard.Decision{RequestID: rid, Granted: true, Approvers: []string{"alice"}}))
	if !errors.Is(err, einoguard.ErrDecision) || !errors.Is(err, approval.ErrQuorum) {
		t.Fatalf("resume short of the quorum: %v", err)
	}
	_, err = r.invoke(einoguard.Resume(r.ctx, id, einoguard.Decision{RequestID: rid, Granted: true}))
	if !errors.Is(err, einoguard.ErrDecision) || !errors.Is(err, approval.ErrNoApprover) {
		t.Fatalf("resume naming nobody: %v", err)
	}
	if n := r.shop.refund.runs.Load(); n != 0 {
		t.Fatalf("refund ran %d times", n)
	}
	out, err := r.invoke(einoguard.Resume(r.ctx, id, einoguard.Decision{RequestID: rid, Granted: true, Approvers: []string{"alice", "carol"}}))
	if err != nil {
		t.Fatal(err)
	}
	if out.Content != "done" || r.shop.refund.runs.Load() != 1 {
		t.Fatalf("answer %q, %d runs", out.Content, r.shop.refund.runs.Load())
	}
	// The pause and the approved call: the failed resumes never reached
	// the guard.
	if n := len(r.e.calls()); n != 2 {
		t.Fatalf("%d tool-call records, want 2:\n%s", n, audittest.List(r.e.calls()))
	}
}

// A decision must answer the request the human saw, for the very call
// being resumed: one naming no request or another request, or resumed in
// another task than the one that paused, is refused before it is
// recorded, and the request stays pending for the proper answer.
func TestDecisionIsBoundToTheRequestAndTask(t *testing.T) {
	d := approval.NewDeferred()
	r := newApprovalRun(t, d, `{"order":"O-1","amount":40}`)
	waiting := r.pause(t)
	id, rid := waiting[0].ID, waiting[0].Request.RequestID
	other, task, err := r.e.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "another-task"})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())

	for name, c := range map[string]struct {
		ctx context.Context
		rid string
	}{
		"no request":      {r.ctx, ""},
		"another request": {r.ctx, "approval-made-up"},
		"another task":    {other, rid},
	} {
		_, err = r.invoke(einoguard.Resume(c.ctx, id, einoguard.Decision{RequestID: c.rid, Granted: true, Approvers: []string{"alice"}}))
		if !errors.Is(err, einoguard.ErrWrongRequest) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if n := r.shop.refund.runs.Load(); n != 0 {
		t.Fatalf("refund ran %d times", n)
	}
	if p := d.Pending(); len(p) != 1 || p[0].ID != rid {
		t.Fatalf("pending %v, want the request still pending", p)
	}
	out, err := r.invoke(einoguard.Resume(r.ctx, id, einoguard.Decision{RequestID: rid, Granted: true, Approvers: []string{"alice"}}))
	if err != nil || out.Content != "done" || r.shop.refund.runs.Load() != 1 {
		t.Fatalf("the proper answer: %v, %d runs", err, r.shop.refund.runs.Load())
	}
}

// A checkpoint whose stored request was changed (the store is the
// application's) cannot route the human's grant to it: the guard's own
// copy of the request must be for the call the checkpoint resumes.
func TestTamperedCheckpointIsRefused(t *testing.T) {
	d := approval.NewDeferred()
	e := newEnv(t, shopRules(), agentguard.WithApprover(d))
	s := newShop(t)
	ts := newShopToolset(t, e, s, einoguard.WithApprovals(d))
	m := newModel(callTools(
		toolCall("call-1", "refund", `{"order":"O-1","amount":40}`),
		toolCall("call-2", "refund", `{"order":"O-2","amount":90}`),
	), answer("done"))
	store := &memStore{}
	agent := newAgentWithStore(t, m, ts.NodeConfig(), store)
	ctx := e.task(t)
	in := []*schema.Message{schema.UserMessage("refund")}
	cp := compose.WithCheckPointID("run-1")
	_, err := agent.Invoke(ctx, in, cp)
	waiting := einoguard.Interrupts(err)
	if len(waiting) != 2 {
		t.Fatalf("%d interrupts", len(waiting))
	}
	byCall := map[string]einoguard.Interrupt{}
	for _, w := range waiting {
		byCall[w.Request.CallID] = w
	}
	// The checkpoint now says call-1 waits for call-2's request, which
	// the human is shown and grants.
	one, two := byCall["call-1"].Request.RequestID, byCall["call-2"].Request.RequestID
	store.replace(t, "run-1", one, two)
	_, err = agent.Invoke(einoguard.Resume(ctx, byCall["call-1"].ID,
		einoguard.Decision{RequestID: two, Granted: true, Approvers: []string{"alice"}}), in, cp)
	if !errors.Is(err, einoguard.ErrWrongRequest) {
		t.Fatalf("resume of the tampered checkpoint: %v", err)
	}
	if n := s.refund.runs.Load(); n != 0 {
		t.Fatalf("refund ran %d times", n)
	}
	if len(d.Pending()) != 2 {
		t.Fatalf("%d requests pending, want both", len(d.Pending()))
	}
}

// Without WithApprovals, a call waiting for approval is answered with the
// guard's explanation and the run goes on.
func TestPendingApprovalWithoutInterrupts(t *testing.T) {
	d := approval.NewDeferred()
	e := newEnv(t, shopRules(), agentguard.WithApprover(d))
	s := newShop(t)
	ts := newShopToolset(t, e, s)
	m := newModel(callTools(toolCall("call-1", "refund", `{"order":"O-1","amount":40}`)), answer("waiting for a manager"))
	ctx := e.task(t)
	out, err := newAgent(t, m, ts.NodeConfig()).Invoke(ctx, []*schema.Message{schema.UserMessage("refund O-1")})
	if err != nil {
		t.Fatal(err)
	}
	if out.Content != "waiting for a manager" || s.refund.runs.Load() != 0 {
		t.Fatalf("answer %q, %d runs", out.Content, s.refund.runs.Load())
	}
	pending := d.Pending()
	if len(pending) != 1 {
		t.Fatalf("%d pending requests", len(pending))
	}
	if got := m.toolResult(t, "call-1"); !strings.Contains(got, "approval") || !strings.Contains(got, pending[0].ID) {
		t.Fatalf("the model got %q", got)
	}
}

// A streaming tool's call pauses and resumes the same way when the graph
// runs in stream mode.
func TestApprovalOfAStreamingToolInStreamMode(t *testing.T) {
	d := approval.NewDeferred()
	e := newEnv(t, policytest.NewRules(policytest.Rule{ID: "lookups", Effect: policytest.Allow, Tool: "lookup", Approval: "manager"}),
		agentguard.WithApprover(d))
	var c counter
	ts, err := einoguard.New(context.Background(), e.Guard, "shop", []tool.BaseTool{kinds["streamable"](t, &c)}, lookupSpec, einoguard.WithApprovals(d))
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(callTools(toolCall("call-1", "lookup", `{"order":"O-1"}`)), answer("done"))
	agent := newAgent(t, m, ts.NodeConfig())
	ctx := e.task(t)
	in := []*schema.Message{schema.UserMessage("where is O-1?")}
	id := compose.WithCheckPointID("stream-run")

	_, err = agent.Stream(ctx, in, id)
	waiting := einoguard.Interrupts(err)
	if len(waiting) != 1 || waiting[0].Request.Tool != "lookup" {
		t.Fatalf("the run did not pause: %v", err)
	}
	if c.runs.Load() != 0 {
		t.Fatal("the tool ran before approval")
	}
	sr, err := agent.Stream(einoguard.Resume(ctx, waiting[0].ID, einoguard.Decision{RequestID: waiting[0].Request.RequestID, Granted: true, Approvers: []string{"alice"}}), in, id)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, sr); got != "done" {
		t.Fatalf("answer %q", got)
	}
	if c.runs.Load() != 1 {
		t.Fatalf("the tool ran %d times", c.runs.Load())
	}
	c.sawCanary(t)
	if got := m.toolResult(t, "call-1"); got != "order O-1: shipped" {
		t.Fatalf("the model got %q", got)
	}
	audittest.ExpectCount(t, e.calls(), audittest.Want{CallID: "call-1", Decision: audit.Allow, Outcome: audit.OutcomeOK, Approval: agentguard.ApprovalGranted}, 1)
}

// A tool that pauses the run with eino's own interrupt still runs only
// through the guard: the resumed call is decided again, and the tool finds
// its own interrupt state.
func TestToolsOwnInterruptPassesThrough(t *testing.T) {
	e := newEnv(t, shopRules())
	var c counter
	pausing, err := utils.InferTool("lookup_order", "Look an order up.", func(ctx context.Context, a orderArgs) (string, error) {
		_ = c.ran(ctx)
		if was, _, _ := tool.GetInterruptState[any](ctx); !was {
			return "", tool.Interrupt(ctx, "which warehouse?")
		}
		_, _, where := tool.GetResumeContext[string](ctx)
		return "order " + a.Order + " at " + where, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := einoguard.New(context.Background(), e.Guard, "shop", []tool.BaseTool{pausing}, shopSpecs("lookup_order")...)
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(callTools(toolCall("call-1", "lookup_order", `{"order":"O-1"}`)), answer("done"))
	agent := newAgent(t, m, ts.NodeConfig())
	ctx := e.task(t)
	in := []*schema.Message{schema.UserMessage("where is O-1?")}
	id := compose.WithCheckPointID("own-interrupt")

	_, err = agent.Invoke(ctx, in, id)
	info, ok := compose.ExtractInterruptInfo(err)
	if !ok || len(info.InterruptContexts) != 1 || info.InterruptContexts[0].Info != "which warehouse?" {
		t.Fatalf("the tool's interrupt did not pause the run: %v", err)
	}
	if len(einoguard.Interrupts(err)) != 0 {
		t.Fatal("the tool's own interrupt was taken for an approval")
	}
	out, err := agent.Invoke(compose.ResumeWithData(ctx, info.InterruptContexts[0].ID, "Berlin"), in, id)
	if err != nil {
		t.Fatal(err)
	}
	if out.Content != "done" || m.toolResult(t, "call-1") != "order O-1 at Berlin" {
		t.Fatalf("answer %q, tool result %q", out.Content, m.toolResult(t, "call-1"))
	}
	// Both runs of the tool passed the guard; the first is recorded as
	// ending in error (the interrupt), the second as ok.
	audittest.ExpectCount(t, e.calls(), audittest.Want{CallID: "call-1", Decision: audit.Allow, Outcome: audit.OutcomeError}, 1)
	audittest.ExpectCount(t, e.calls(), audittest.Want{CallID: "call-1", Decision: audit.Allow, Outcome: audit.OutcomeOK}, 1)
	if c.runs.Load() != 2 {
		t.Fatalf("the tool ran %d times", c.runs.Load())
	}
}

// A toolset whose Deferred is not the guard's approver could never record
// a decision: the run ends with an error saying so, rather than pausing
// again on every resume.
func TestApprovalsWithAnotherDeferredFail(t *testing.T) {
	guards := approval.NewDeferred()
	e := newEnv(t, shopRules(), agentguard.WithApprover(guards))
	s := newShop(t)
	ts := newShopToolset(t, e, s, einoguard.WithApprovals(approval.NewDeferred()))
	m := newModel(callTools(toolCall("call-1", "refund", `{"order":"O-1","amount":40}`)), answer("done"))
	_, err := newAgent(t, m, ts.NodeConfig()).Invoke(e.task(t), []*schema.Message{schema.UserMessage("refund O-1")}, compose.WithCheckPointID("run-1"))
	if !errors.Is(err, einoguard.ErrNotGuardsApprover) || len(einoguard.Interrupts(err)) != 0 {
		t.Fatalf("err = %v", err)
	}
	if s.refund.runs.Load() != 0 {
		t.Fatal("the refund ran")
	}
}
