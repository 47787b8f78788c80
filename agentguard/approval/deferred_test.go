package approval_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// callPending makes a call that must wait for a human and returns its
// pending request.
func callPending(t *testing.T, ctx context.Context, g *agentguard.Guard, tool *agentguard.Tool, args string) *agentguard.ApprovalRequest {
	t.Helper()
	_, err := g.Invoke(ctx, tool, agentguard.Call{Args: json.RawMessage(args)})
	if !errors.Is(err, agentguard.ErrApprovalPending) || !errors.Is(err, agentguard.ErrApprovalRequired) || !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("err = %v, want a denial matching ErrApprovalPending and ErrApprovalRequired", err)
	}
	req, ok := approval.PendingRequest(err)
	if !ok {
		t.Fatalf("PendingRequest(%v) found none", err)
	}
	return req
}

func TestDeferredGrantRunsTheSameCallOnce(t *testing.T) {
	d := approval.NewDeferred()
	env := guardWith(t, "manager", d)
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(ctx)
	var runs atomic.Int64
	refund := counted("refund", &runs)

	req := callPending(t, ctx, env.Guard, refund, `{"amount":5}`)
	if runs.Load() != 0 {
		t.Fatal("the tool ran before anyone approved")
	}
	wantApproval(t, env, agentguard.ApprovalPending)
	if req.Tool != "refund" || req.Kind != "manager" || string(req.Args) != `{"amount":5}` || req.TaskID != "t-1" {
		t.Fatalf("pending request = %+v", req)
	}
	if p := d.Pending(); len(p) != 1 || p[0].ID != req.ID {
		t.Fatalf("Pending() = %v, want the request", p)
	}
	// The same call asked again before anyone answered waits on the same
	// request.
	_, err = env.Guard.Invoke(ctx, refund, agentguard.Call{Args: json.RawMessage(`{"amount":5}`)})
	if msg := agentguard.Explain(err); !strings.Contains(msg, "needs a human's approval") || !strings.Contains(msg, req.ID) {
		t.Fatalf("Explain = %q", msg)
	}
	if again, _ := approval.PendingRequest(err); again == nil || again.ID != req.ID || len(d.Pending()) != 1 {
		t.Fatalf("asked again: request %+v, %d pending; want the first request", again, len(d.Pending()))
	}

	if err := d.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"alice"}, Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	if len(d.Pending()) != 0 {
		t.Fatal("a decided request is still pending")
	}
	// Other arguments are another call: the decision does not count for it.
	callPending(t, ctx, env.Guard, refund, `{"amount":500}`)
	if runs.Load() != 0 {
		t.Fatal("a grant for 5 ran a call for 500")
	}
	// The same call again: granted, once.
	if _, err := env.Guard.Invoke(ctx, refund, agentguard.Call{Args: json.RawMessage(`{"amount":5}`)}); err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 1 {
		t.Fatalf("runs = %d, want 1", runs.Load())
	}
	wantApproval(t, env, agentguard.ApprovalGranted, "alice")
	callPending(t, ctx, env.Guard, refund, `{"amount":5}`)
	if runs.Load() != 1 {
		t.Fatal("a decision was used twice")
	}
}

func TestDeferredRefusal(t *testing.T) {
	d := approval.NewDeferred()
	env := guardWith(t, "manager", d)
	ctx, task, _ := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t-1"})
	defer task.End(ctx)
	var runs atomic.Int64
	refund := counted("refund", &runs)
	req := callPending(t, ctx, env.Guard, refund, `{}`)
	if err := d.Decide(req.ID, approval.Decision{Approvers: []string{"bob"}, Reason: "no"}); err != nil {
		t.Fatal(err)
	}
	_, err := env.Guard.Invoke(ctx, refund, agentguard.Call{Args: json.RawMessage(`{}`)})
	if !errors.Is(err, agentguard.ErrApprovalRequired) || errors.Is(err, agentguard.ErrApprovalPending) || runs.Load() != 0 {
		t.Fatalf("err = %v, runs = %d: want a refusal", err, runs.Load())
	}
	wantApproval(t, env, agentguard.ApprovalRefused, "bob")
	if msg := agentguard.Explain(err); !strings.Contains(msg, "approval refused by bob: no") {
		t.Fatalf("Explain = %q", msg)
	}
}

func TestDeferredAnotherTaskOrAgentDoesNotMatch(t *testing.T) {
	d := approval.NewDeferred()
	env := guardWith(t, "manager", d)
	var runs atomic.Int64
	refund := counted("refund", &runs)
	ctx1, t1, _ := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t-1"})
	defer t1.End(ctx1)
	ctx2, t2, _ := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t-2"})
	defer t2.End(ctx2)
	req := callPending(t, ctx1, env.Guard, refund, `{}`)
	if err := d.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	callPending(t, ctx2, env.Guard, refund, `{}`)
	// A call outside any task has a task of its own each time: it can
	// never be approved this way, and never runs.
	callPending(t, context.Background(), env.Guard, refund, `{}`)
	if runs.Load() != 0 {
		t.Fatal("a decision for task t-1 ran a call of another task")
	}
}

func TestDeferredDecideErrors(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	d := approval.NewDeferred(approval.WithDeferredQuorum("Two-Person", 2), approval.WithDeferredTTL(time.Hour), approval.WithDeferredClock(clock))
	env := guardWith(t, "two-person", d)
	ctx, task, _ := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t-1"})
	defer task.End(ctx)
	var runs atomic.Int64
	refund := counted("refund", &runs)
	req := callPending(t, ctx, env.Guard, refund, `{}`)

	if err := d.Decide("approval-unknown", approval.Decision{Granted: true, Approvers: []string{"a"}}); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("unknown ID: err = %v", err)
	}
	if err := d.Decide(req.ID, approval.Decision{Granted: true}); !errors.Is(err, approval.ErrNoApprover) {
		t.Fatalf("no approver: err = %v", err)
	}
	if err := d.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"alice", " "}}); !errors.Is(err, approval.ErrNoApprover) {
		t.Fatalf("blank approver: err = %v", err)
	}
	if err := d.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"alice", "Alice "}}); !errors.Is(err, approval.ErrQuorum) {
		t.Fatalf("one person twice: err = %v", err)
	}
	if len(d.Pending()) != 1 {
		t.Fatal("a refused decision should leave the request pending")
	}
	now = now.Add(time.Hour)
	if err := d.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"alice", "bob"}}); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("expired: err = %v", err)
	}
	req = callPending(t, ctx, env.Guard, refund, `{}`)
	if err := d.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"alice", "bob"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"alice", "bob"}}); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("decided twice: err = %v", err)
	}
	// A decision not used within the TTL lapses.
	now = now.Add(time.Hour)
	callPending(t, ctx, env.Guard, refund, `{}`)
	if runs.Load() != 0 {
		t.Fatal("a lapsed decision ran the call")
	}
}

func TestDeferredLimit(t *testing.T) {
	d := approval.NewDeferred(approval.WithDeferredLimit(2))
	env := guardWith(t, "manager", d)
	ctx, task, _ := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t-1"})
	defer task.End(ctx)
	var runs atomic.Int64
	refund := counted("refund", &runs)
	callPending(t, ctx, env.Guard, refund, `{"n":1}`)
	callPending(t, ctx, env.Guard, refund, `{"n":2}`)
	_, err := env.Guard.Invoke(ctx, refund, agentguard.Call{Args: json.RawMessage(`{"n":3}`)})
	if !errors.Is(err, approval.ErrFull) || !errors.Is(err, agentguard.ErrApprovalRequired) || errors.Is(err, agentguard.ErrApprovalPending) {
		t.Fatalf("err = %v, want ErrFull", err)
	}
	wantApproval(t, env, agentguard.ApprovalError)
}

// TestDeferredDecisionCoversItsKindOnly: a decision made for one kind of
// approval does not answer the same call when it now needs another kind,
// or a larger quorum (policy changed while the run was paused).
func TestDeferredDecisionCoversItsKindOnly(t *testing.T) {
	kind := "manager"
	rules := policytest.Func(func(r *policy.Request) policy.Decision {
		return policy.Decision{Allowed: true, Policies: []string{"p"},
			Obligations: []policy.Obligation{{Name: "approval", Value: kind, PolicyID: "p"}}}
	})
	d := approval.NewDeferred(approval.WithDeferredQuorum("two-person", 2))
	env := agentguardtest.New(t, rules, "tok", agentguard.WithApprover(d))
	ctx, task, _ := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t-1"})
	defer task.End(ctx)
	var runs atomic.Int64
	refund := counted("refund", &runs)
	req := callPending(t, ctx, env.Guard, refund, `{"amount":5000}`)
	if err := d.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	kind = "two-person"
	again := callPending(t, ctx, env.Guard, refund, `{"amount":5000}`)
	if runs.Load() != 0 || again.Kind != "two-person" || again.ID == req.ID {
		t.Fatalf("runs = %d, request %+v: a manager's grant answered a two-person approval", runs.Load(), again)
	}
	if err := d.Decide(again.ID, approval.Decision{Granted: true, Approvers: []string{"alice", "bob"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Guard.Invoke(ctx, refund, agentguard.Call{Args: json.RawMessage(`{"amount":5000}`)}); err != nil || runs.Load() != 1 {
		t.Fatalf("after a two-person grant: %v, runs %d", err, runs.Load())
	}
}

// TestDeferredAgentLimit: one agent cannot fill the approvals of others.
func TestDeferredAgentLimit(t *testing.T) {
	d := approval.NewDeferred(approval.WithDeferredAgentLimit(2))
	env := guardWith(t, "manager", d)
	ctx, task, _ := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t-1"})
	defer task.End(ctx)
	var runs atomic.Int64
	refund := counted("refund", &runs)
	callPending(t, ctx, env.Guard, refund, `{"n":1}`)
	callPending(t, ctx, env.Guard, refund, `{"n":2}`)
	if _, err := env.Guard.Invoke(ctx, refund, agentguard.Call{Args: json.RawMessage(`{"n":3}`)}); !errors.Is(err, approval.ErrFull) {
		t.Fatalf("third request of one agent: %v, want ErrFull", err)
	}
	other := agentguardtest.New(t, policytest.NewRules(policytest.Rule{ID: "r", Tool: "refund", Approval: "manager"}), "tok",
		agentguard.WithApprover(d), agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/other"))))
	octx, otask, _ := other.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t-2"})
	defer otask.End(octx)
	callPending(t, octx, other.Guard, refund, `{"n":1}`)
}

// TestDeferredWithdraw: a withdrawn request or a discarded decision is gone,
// and its call waits for a new decision; one refusal answers a request
// whose kind needs a quorum.
func TestDeferredWithdraw(t *testing.T) {
	d := approval.NewDeferred(approval.WithDeferredQuorum("manager", 2))
	env := guardWith(t, "manager", d)
	ctx, task, _ := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t-1"})
	defer task.End(ctx)
	var runs atomic.Int64
	refund := counted("refund", &runs)
	req := callPending(t, ctx, env.Guard, refund, `{}`)
	if err := d.Withdraw(req.ID); err != nil || len(d.Pending()) != 0 {
		t.Fatalf("Withdraw = %v, %d pending", err, len(d.Pending()))
	}
	if err := d.Withdraw(req.ID); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("second Withdraw = %v", err)
	}
	req = callPending(t, ctx, env.Guard, refund, `{}`)
	if err := d.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"alice", "bob"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Withdraw(req.ID); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("Withdraw of a decided request = %v, want ErrNotPending", err)
	}
	if err := d.Discard(req.ID); err != nil {
		t.Fatalf("Discard of a decided request = %v", err)
	}
	if err := d.Discard(req.ID); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("second Discard = %v", err)
	}
	req = callPending(t, ctx, env.Guard, refund, `{}`) // the grant is gone
	if err := d.Decide(req.ID, approval.Decision{Approvers: []string{"carol"}, Reason: "no"}); err != nil {
		t.Fatal(err)
	}
	_, err := env.Guard.Invoke(ctx, refund, agentguard.Call{Args: json.RawMessage(`{}`)})
	if !errors.Is(err, agentguard.ErrApprovalRequired) || errors.Is(err, agentguard.ErrApprovalPending) || runs.Load() != 0 {
		t.Fatalf("a refusal by one of a quorum of two: %v", err)
	}
}
