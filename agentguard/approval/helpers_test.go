package approval_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// counted returns a tool named name that counts its runs.
func counted(name string, runs *atomic.Int64) *agentguard.Tool {
	return &agentguard.Tool{Name: name, Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
		runs.Add(1)
		return &agentguard.Result{Output: "done"}, nil
	}}
}

// guardWith builds a test guard whose policy permits "refund" with an
// approval of the given kind, and asks approver.
func guardWith(t *testing.T, kind string, approver agentguard.Approver, opts ...agentguard.Option) *agentguardtest.Env {
	t.Helper()
	rules := policytest.NewRules(policytest.Rule{ID: "refund-approval", Tool: "refund", Approval: kind})
	return agentguardtest.New(t, rules, "tok", append([]agentguard.Option{agentguard.WithApprover(approver)}, opts...)...)
}

// invoke runs call in the background and returns the channel of its error.
func invoke(ctx context.Context, g *agentguard.Guard, tool *agentguard.Tool, args string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := g.Invoke(ctx, tool, agentguard.Call{Args: json.RawMessage(args)})
		done <- err
	}()
	return done
}

// lastApproval returns the approval of the newest tool-call audit record.
func lastApproval(t *testing.T, env *agentguardtest.Env) *audit.Approval {
	t.Helper()
	calls := env.Audit.Kind(audit.KindToolCall)
	if len(calls) == 0 {
		t.Fatal("no tool_call audit record")
	}
	a := calls[len(calls)-1].Approval
	if a == nil {
		t.Fatal("last tool_call record has no approval")
	}
	return a
}

// wantApproval checks the newest tool-call record's approval.
func wantApproval(t *testing.T, env *agentguardtest.Env, status string, approvers ...string) *audit.Approval {
	t.Helper()
	a := lastApproval(t, env)
	if a.Status != status || a.Granted != (status == agentguard.ApprovalGranted) || !slices.Equal(a.Approvers, approvers) {
		t.Fatalf("audit approval = %+v, want status %q by %v", a, status, approvers)
	}
	return a
}
