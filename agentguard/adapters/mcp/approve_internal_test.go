package mcpguard

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

// pendingIn makes a request pending in d, as the guard would, and returns
// it.
func pendingIn(t *testing.T, d *approval.Deferred, n int) *agentguard.ApprovalRequest {
	t.Helper()
	req := &agentguard.ApprovalRequest{ID: fmt.Sprintf("approval-%d", n), Digest: fmt.Sprintf("digest-%d", n), Tool: "delete_file"}
	if _, err := d.Approve(context.Background(), req); err == nil {
		t.Fatal("a request without a decision was not left pending")
	}
	return req
}

func pendingIDs(d *approval.Deferred) map[string]bool {
	out := map[string]bool{}
	for _, r := range d.Pending() {
		out[r.ID] = true
	}
	return out
}

// TestApprovalStatesBounded: a state not answered in time is withdrawn
// from the Deferred, and so is a caller's oldest when it has
// MaxApprovalsPerCaller waiting; another caller's are left alone.
func TestApprovalStatesBounded(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := approval.NewDeferred(approval.WithDeferredClock(func() time.Time { return now }))
	a := &approvals{d: d, now: func() time.Time { return now }, states: map[string]*approvalState{}}
	alice := spiffeid.RequireFromString("spiffe://example.org/agent/alice")
	bob := spiffeid.RequireFromString("spiffe://example.org/agent/bob")

	// Expiry: bob's state, ten minutes on, is withdrawn by the next keep,
	// and a retry naming it brings nothing.
	old := pendingIn(t, d, 0)
	token, err := a.keep(ctx, old, "task-0", bob, "delete_file")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(approvalStateTTL)
	if _, err := a.keep(ctx, pendingIn(t, d, 1), "task-1", bob, "delete_file"); err != nil {
		t.Fatal(err)
	}
	if p := pendingIDs(d); p[old.ID] || !p["approval-1"] {
		t.Errorf("pending after expiry = %v, want only approval-1", p)
	}
	if _, ok := a.take(ctx, token, &caller{id: bob}, "delete_file"); ok {
		t.Error("an expired state was taken")
	}

	// Per caller: alice's oldest makes room for her newest.
	for i := 2; i < 2+MaxApprovalsPerCaller+1; i++ {
		now = now.Add(time.Second)
		if _, err := a.keep(ctx, pendingIn(t, d, i), fmt.Sprint("task-", i), alice, "delete_file"); err != nil {
			t.Fatal(err)
		}
	}
	p := pendingIDs(d)
	if len(p) != MaxApprovalsPerCaller+1 || p["approval-2"] || !p["approval-1"] || !p[fmt.Sprint("approval-", 2+MaxApprovalsPerCaller)] {
		t.Errorf("pending = %v: want alice's oldest withdrawn and bob's kept", p)
	}
}

// TestWithdrawRaces: a request another call decided first is left alone.
func TestWithdrawRaces(t *testing.T) {
	d := approval.NewDeferred()
	a := &approvals{d: d, now: time.Now, states: map[string]*approvalState{}}
	req := pendingIn(t, d, 0)
	if err := d.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"op"}}); err != nil {
		t.Fatal(err)
	}
	a.withdraw(req)
	// The grant is still there for its call.
	got, err := d.Approve(context.Background(), req)
	if err != nil || !got.Granted {
		t.Errorf("the grant was lost: %+v, %v", got, err)
	}
	a.withdraw(pendingIn(t, d, 1))
	if n := len(d.Pending()); n != 0 {
		t.Errorf("%d pending after a withdrawal", n)
	}
}

// TestForget: a decision its call did not use (the retry came with other
// arguments) is used up; nothing is left pending either way.
func TestForget(t *testing.T) {
	ctx := context.Background()
	d := approval.NewDeferred()
	a := &approvals{d: d, now: time.Now, states: map[string]*approvalState{}}
	req := pendingIn(t, d, 0)
	if err := d.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"mcp-client:x"}}); err != nil {
		t.Fatal(err)
	}
	a.forget(req)
	if n := len(d.Pending()); n != 0 {
		t.Errorf("%d pending after forget", n)
	}
	// The grant is gone: the same call is asked about afresh.
	if _, err := d.Approve(ctx, req); err == nil {
		t.Error("the unused grant survived forget")
	}
	// Forgetting a call whose decision was used leaves nothing either.
	a.forget(pendingIn(t, d, 1))
	a.forget(req)
	if n := len(d.Pending()); n != 0 {
		t.Errorf("%d pending after forgetting used decisions", n)
	}
}
