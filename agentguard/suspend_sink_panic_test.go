package agentguard_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
)

// TestSuspendSinkPanics: the kill switch takes full effect even when the
// audit sink panics while recording it: the suspension stands, the tasks
// the agent acted in end and their leases are revoked, and Suspend reports
// the record that could not be written, without the panic reaching the
// caller.
func TestSuspendSinkPanics(t *testing.T) {
	rec := audittest.NewRecorder()
	sink := audit.SinkFunc(func(ctx context.Context, e audit.Event) error {
		if e.Kind == audit.KindSuspend {
			panic("sink broke")
		}
		return rec.Write(ctx, e)
	})
	env := agentguardtest.New(t, nil, "tok", agentguard.WithAudit(sink))
	g := env.Guard
	var leases sync.Map
	api := credTool(&leases)
	ctx := context.Background()
	tctx, task, err := g.StartTask(ctx, agentguard.TaskSpec{ID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Invoke(tctx, api, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	agent := spiffeid.RequireFromString(agentguardtest.AgentID)
	err = g.Suspend(ctx, agent, "compromised")
	if !errors.Is(err, agentguard.ErrAudit) {
		t.Fatalf("Suspend = %v, want ErrAudit (the record was not written)", err)
	}
	if len(g.Suspended()) != 1 {
		t.Error("the suspension is not in force")
	}
	if !isDone(task) {
		t.Error("the suspended agent's task is still open")
	}
	n := 0
	leases.Range(func(k, _ any) bool {
		n++
		if err := env.Provider.Check(k.(string)); !errors.Is(err, credentials.ErrRevoked) {
			t.Errorf("lease %v: %v, want revoked", k, err)
		}
		return true
	})
	if n == 0 {
		t.Fatal("no lease was issued")
	}
	if _, err := g.Invoke(ctx, api, agentguard.Call{}); !errors.Is(err, agentguard.ErrSuspended) {
		t.Errorf("call after Suspend: %v, want ErrSuspended", err)
	}
}
