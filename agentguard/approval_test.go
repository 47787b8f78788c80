package agentguard_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

const approvalPolicies = `
@id("send-with-approval") @approval("one")
permit(principal, action == Action::"send_email", resource);
@id("read") permit(principal, action == Action::"read_pii", resource);
@id("no-exfil")
forbid(principal, action == Action::"send_email", resource)
when { context.task.taint.contains("pii") };
`

// TestApprovalAfterExpiryRefused: the guard tells the approver the
// request lapses after the approval timeout, and refuses a grant that arrives later.
func TestApprovalAfterExpiryRefused(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	eng, err := policy.NewCedarEngine(policy.MustParseSet("p.cedar", approvalPolicies))
	if err != nil {
		t.Fatal(err)
	}
	var expires time.Time
	env := agentguardtest.New(t, eng, "tok", agentguard.WithClock(clock),
		agentguard.WithApprover(agentguard.ApproverFunc(func(_ context.Context, r *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			expires = r.ExpiresAt
			mu.Lock()
			now = now.Add(time.Hour) // the human answers an hour later
			mu.Unlock()
			return r.Grant("alice"), nil
		})))
	var runs atomic.Int64
	_, err = env.Guard.Invoke(context.Background(), counted("send_email", &runs), agentguard.Call{})
	if runs.Load() != 0 {
		t.Fatalf("tool ran on an approval granted at %v for a request that lapsed at %v (err %v)", clock(), expires, err)
	}
}

// TestApprovalDecidesAgain: policy decides again after the
// (possibly long) approval wait. A result tainting the task with "pii" while
// the human deliberates stops the call that a forbid on taint now refuses.
func TestApprovalDecidesAgain(t *testing.T) {
	eng, err := policy.NewCedarEngine(policy.MustParseSet("p.cedar", approvalPolicies))
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	release := make(chan struct{})
	env := agentguardtest.New(t, eng, "tok",
		agentguard.WithApprover(agentguard.ApproverFunc(func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			close(waiting)
			<-release
			return req.Grant("alice"), nil
		})))
	var sends atomic.Int64
	send := counted("send_email", &sends)
	read := &agentguard.Tool{Name: "read_pii", OutputLabels: []string{"pii"},
		Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) { return &agentguard.Result{}, nil }}
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	done := make(chan error)
	go func() {
		_, err := env.Guard.Invoke(ctx, send, agentguard.Call{})
		done <- err
	}()
	<-waiting
	if _, err := env.Guard.Invoke(ctx, read, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	// Sanity: right now policy forbids send_email in this task.
	if _, err := env.Guard.Invoke(ctx, counted("send_email", new(atomic.Int64)), agentguard.Call{}); err == nil {
		t.Fatal("sanity: send_email allowed with pii taint")
	}
	close(release)
	err = <-done
	if sends.Load() != 0 {
		t.Fatalf("send_email ran although the task is tainted with %v and policy now forbids it (err %v)", task.Taint(), err)
	}
}

// TestApprovalReachesPolicy: the decision after a granted approval sees it
// as context.approval.
func TestApprovalReachesPolicy(t *testing.T) {
	rules := policytest.NewRules(policytest.Rule{ID: "send", Tool: "send_email", Approval: "one"})
	env := agentguardtest.New(t, rules, "tok", agentguard.WithApprover(agentguard.ApproverFunc(
		func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			return req.Grant("alice"), nil
		})))
	var runs atomic.Int64
	if _, err := env.Guard.Invoke(context.Background(), counted("send_email", &runs), agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	calls := rules.Calls()
	if len(calls) != 2 || calls[0].Approval.Granted || !calls[1].Approval.Granted ||
		len(calls[1].Approval.Approvers) != 1 || calls[1].Approval.Approvers[0] != "alice" {
		t.Fatalf("policy saw approvals %+v", calls)
	}
	if e, _ := env.Audit.Last(); e.Approval == nil || !e.Approval.Granted || e.Approval.Approvers[0] != "alice" {
		t.Errorf("audit approval = %+v", e.Approval)
	}
}
