package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/policy"
)

const bindPolicies = `
@id("refund-approval") @approval("manager") @reason("refunds need a manager")
permit(principal, action == Action::"refund", resource);
`

// replayer is an approver that grants the first request it sees and then
// answers every later request with that first approval: a replay.
type replayer struct {
	mu    sync.Mutex
	first *agentguard.Approval
	asked []*agentguard.ApprovalRequest
}

func (r *replayer) Approve(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, req)
	if r.first == nil {
		a := req.Grant("alice")
		r.first = &a
	}
	return *r.first, nil
}

func refundTool(runs *atomic.Int64) *agentguard.Tool {
	t := counted("refund", runs)
	t.InputSchema = json.RawMessage(`{"type":"object","properties":{"amount":{"type":"integer"}}}`)
	return t
}

// TestApprovalReplayRefused: an approval granted for one call authorizes
// nothing else: not the same tool with other arguments, not the same
// arguments in another task, not the same call made again.
func TestApprovalReplayRefused(t *testing.T) {
	eng, err := policy.NewCedarEngine(policy.MustParseSet("p.cedar", bindPolicies))
	if err != nil {
		t.Fatal(err)
	}
	rp := &replayer{}
	env := agentguardtest.New(t, eng, "tok", agentguard.WithApprover(rp))
	var runs atomic.Int64
	tool := refundTool(&runs)

	ctx1, task1, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	defer task1.End(context.Background())
	ctx2, task2, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t2"})
	if err != nil {
		t.Fatal(err)
	}
	defer task2.End(context.Background())

	if _, err := env.Guard.Invoke(ctx1, tool, agentguard.Call{Args: json.RawMessage(`{"amount":10}`)}); err != nil {
		t.Fatalf("first, approved call: %v", err)
	}
	if runs.Load() != 1 {
		t.Fatalf("runs = %d after the approved call, want 1", runs.Load())
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		args string
	}{
		{"other arguments", ctx1, `{"amount":10000}`},
		{"another task", ctx2, `{"amount":10}`},
		{"the same call again", ctx1, `{"amount":10}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runs.Load()
			_, err := env.Guard.Invoke(tc.ctx, tool, agentguard.Call{Args: json.RawMessage(tc.args)})
			var deny *agentguard.DenyError
			if !errors.As(err, &deny) || deny.Step != agentguard.StepApprove || !errors.Is(err, agentguard.ErrApprovalRequired) {
				t.Fatalf("replayed approval: err = %v, want a denial at approve with ErrApprovalRequired", err)
			}
			if runs.Load() != before {
				t.Fatal("the tool ran on a replayed approval")
			}
			ev, _ := env.Audit.Last()
			if ev.Approval == nil || ev.Approval.Status != agentguard.ApprovalUnbound || ev.Approval.Granted {
				t.Fatalf("audit approval = %+v, want status unbound, not granted", ev.Approval)
			}
		})
	}
	// Every request was new: its own ID, and a digest that differs with
	// the arguments and the task.
	ids, digests := map[string]bool{}, map[string]bool{}
	for _, r := range rp.asked {
		ids[r.ID] = true
		digests[r.Digest] = true
	}
	if len(ids) != 4 || len(digests) != 3 {
		t.Errorf("%d requests had %d IDs and %d digests, want 4 IDs and 3 digests (the repeated call has the same digest)", len(rp.asked), len(ids), len(digests))
	}
}

// TestApprovalRequestShowsTheCall: the approver is shown the agent, its
// chain, the task, the tool, the canonical arguments and their digest, the
// policy's reason and an expiry; and what it changes in the request
// changes nothing in what is checked.
func TestApprovalRequestShowsTheCall(t *testing.T) {
	eng, err := policy.NewCedarEngine(policy.MustParseSet("p.cedar", bindPolicies))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var got agentguard.ApprovalRequest
	env := agentguardtest.New(t, eng, "tok", agentguard.WithClock(func() time.Time { return now }),
		agentguard.WithApprovalTimeout(2*time.Minute),
		agentguard.WithApprover(agentguard.ApproverFunc(func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			got = *req
			// The guard's clock is fixed in the past; the wait is bounded in
			// real time by the same two minutes.
			if dl, ok := ctx.Deadline(); !ok || time.Until(dl) <= 0 || time.Until(dl) > 2*time.Minute {
				t.Errorf("approver's context deadline = %v, %v; want two minutes from now", dl, ok)
			}
			a := req.Grant("alice")
			req.Digest, req.ID = "sha256:forged", "forged" // changes nothing
			return a, nil
		})))
	var runs atomic.Int64
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t-show",
		Purpose: "refund order O-1", OnBehalfOf: "user:alice", Sensitivity: agentguard.Confidential})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	refund := refundTool(&runs)
	refund.Toolset = "billing"
	if _, err := env.Guard.Invoke(ctx, refund, agentguard.Call{ID: "c1", Args: json.RawMessage(`{ "amount" : 25 }`)}); err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint != refund.Fingerprint() {
		t.Errorf("fingerprint %q, want the tool's %q", got.Fingerprint, refund.Fingerprint())
	}
	if got.Action != agentguard.ApproveCall || got.Tool != "refund" || got.Toolset != "billing" || got.TaskID != "t-show" || got.CallID != "c1" {
		t.Errorf("request = %+v", got)
	}
	if got.Purpose != "refund order O-1" || got.OnBehalfOf != "user:alice" || got.Sensitivity != agentguard.Confidential || !got.RequestedAt.Equal(now) {
		t.Errorf("task description: %q %q %v asked at %v", got.Purpose, got.OnBehalfOf, got.Sensitivity, got.RequestedAt)
	}
	if got.Agent.ID.String() != agentguardtest.AgentID {
		t.Errorf("agent = %v", got.Agent)
	}
	if string(got.Args) != `{"amount":25}` || !strings.HasPrefix(got.ArgsDigest, "sha256:") || !strings.HasPrefix(got.Digest, "sha256:") || got.Digest == got.ArgsDigest {
		t.Errorf("args %s, args digest %q, digest %q: want canonical arguments and two distinct digests", got.Args, got.ArgsDigest, got.Digest)
	}
	if got.Kind != "manager" || got.Reason != "refunds need a manager" || len(got.Policies) != 1 || got.Policies[0] != "refund-approval" {
		t.Errorf("kind %q reason %q policies %v", got.Kind, got.Reason, got.Policies)
	}
	if !got.ExpiresAt.Equal(now.Add(2 * time.Minute)) {
		t.Errorf("expires %v, want %v", got.ExpiresAt, now.Add(2*time.Minute))
	}
	ev := env.Audit.Kind(audit.KindToolCall)[0]
	if a := ev.Approval; a == nil || !a.Granted || a.Status != agentguard.ApprovalGranted || a.Digest != got.Digest || a.RequestID != got.ID || a.Kind != "manager" || len(a.Approvers) != 1 || a.Approvers[0] != "alice" {
		t.Errorf("audit approval = %+v", ev.Approval)
	}
}

// TestApprovalOutcomes: refusal, approver error, timeout, a missing
// approver and a grant that does not say who decided each deny, audited
// with their status and who decided.
func TestApprovalOutcomes(t *testing.T) {
	boom := errors.New("approval service down")
	for _, tc := range []struct {
		name      string
		approver  agentguard.Approver
		status    string
		approvers []string
		wantErr   error
	}{
		{"refused", agentguard.ApproverFunc(func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			return req.Refuse("too much", "bob"), nil
		}), agentguard.ApprovalRefused, []string{"bob"}, nil},
		{"approver error", agentguard.ApproverFunc(func(context.Context, *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			return agentguard.Approval{}, boom
		}), agentguard.ApprovalError, nil, boom},
		{"timeout", agentguard.ApproverFunc(func(ctx context.Context, _ *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			<-ctx.Done() // nobody answers
			return agentguard.Approval{}, ctx.Err()
		}), agentguard.ApprovalTimeout, nil, context.DeadlineExceeded},
		{"unbound grant", agentguard.ApproverFunc(func(context.Context, *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			return agentguard.Approval{Granted: true, Approvers: []string{"mallory"}}, nil
		}), agentguard.ApprovalUnbound, []string{"mallory"}, nil},
		{"no approver", nil, agentguard.ApprovalUnavailable, nil, nil},
		{"grant naming nobody", agentguard.ApproverFunc(func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			return req.Grant(), nil
		}), agentguard.ApprovalError, nil, nil},
		{"grant naming a blank approver", agentguard.ApproverFunc(func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			return req.Grant("alice", " "), nil
		}), agentguard.ApprovalError, []string{"alice", " "}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng, err := policy.NewCedarEngine(policy.MustParseSet("p.cedar", bindPolicies))
			if err != nil {
				t.Fatal(err)
			}
			opts := []agentguard.Option{agentguard.WithApprovalTimeout(50 * time.Millisecond)}
			if tc.approver != nil {
				opts = append(opts, agentguard.WithApprover(tc.approver))
			}
			env := agentguardtest.New(t, eng, "tok", opts...)
			var runs atomic.Int64
			_, err = env.Guard.Invoke(context.Background(), refundTool(&runs), agentguard.Call{Args: json.RawMessage(`{"amount":1}`)})
			if !errors.Is(err, agentguard.ErrApprovalRequired) || runs.Load() != 0 {
				t.Fatalf("err = %v, runs = %d; want ErrApprovalRequired and no run", err, runs.Load())
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want it to wrap %v", err, tc.wantErr)
			}
			ev, _ := env.Audit.Last()
			if ev.Outcome != audit.OutcomeDenied || ev.Step != agentguard.StepApprove || ev.Approval == nil ||
				ev.Approval.Status != tc.status || ev.Approval.Granted || strings.Join(ev.Approval.Approvers, ",") != strings.Join(tc.approvers, ",") {
				t.Errorf("audit = outcome %s step %s approval %+v; want denied at approve with status %s by %v", ev.Outcome, ev.Step, ev.Approval, tc.status, tc.approvers)
			}
		})
	}
}

// TestRiskApproval: WithRiskApproval asks the approver for every call of a
// tool at or above the risk, even where policy does not ask, and never lets
// approval allow what policy denies.
func TestRiskApproval(t *testing.T) {
	eng, err := policy.NewCedarEngine(policy.MustParseSet("p.cedar", `
@id("all") permit(principal, action, resource);
@id("no-wipe") forbid(principal, action == Action::"wipe", resource);
`))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	var mu sync.Mutex
	env := agentguardtest.New(t, eng, "tok", agentguard.WithRiskApproval(agentguard.RiskHigh),
		agentguard.WithApprover(agentguard.ApproverFunc(func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			mu.Lock()
			kinds = append(kinds, req.Tool+":"+req.Kind)
			mu.Unlock()
			return req.Grant("alice"), nil
		})))
	var runs atomic.Int64
	low, high, crit, wipe := counted("low", &runs), counted("high", &runs), counted("crit", &runs), counted("wipe", &runs)
	high.Risk, crit.Risk, wipe.Risk = agentguard.RiskHigh, agentguard.RiskCritical, agentguard.RiskCritical
	for _, tl := range []*agentguard.Tool{low, high, crit} {
		if _, err := env.Guard.Invoke(context.Background(), tl, agentguard.Call{}); err != nil {
			t.Fatalf("%s: %v", tl.Name, err)
		}
	}
	if _, err := env.Guard.Invoke(context.Background(), wipe, agentguard.Call{}); !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("wipe: err = %v, want a policy denial", err)
	}
	if got := strings.Join(kinds, " "); got != "high:risk-high crit:risk-critical" {
		t.Errorf("approvals asked: %q, want high:risk-high crit:risk-critical", got)
	}
	if runs.Load() != 3 {
		t.Errorf("runs = %d, want 3", runs.Load())
	}
}
