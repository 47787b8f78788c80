package agentguard_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/credentials"
)

// TestCloseWithDoneContextRevokes: the usual shutdown,
// g.Close(ctx) with the signal context that just got cancelled, still
// revokes every lease.
func TestCloseWithDoneContextRevokes(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	var leases sync.Map
	tool := credTool(&leases)
	tctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Guard.Invoke(tctx, tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	sigctx, stop := context.WithCancel(context.Background())
	stop() // SIGTERM arrived
	closeErr := env.Guard.Close(sigctx)
	// Try hard to clean up afterwards.
	_ = task.End(context.Background())
	_ = env.Guard.Close(context.Background())
	leases.Range(func(k, _ any) bool {
		if err := env.Provider.Check(k.(string)); !errors.Is(err, credentials.ErrRevoked) {
			t.Errorf("lease %s never revoked (Close error: %v); retrying End/Close cannot revoke it", k, closeErr)
		}
		return true
	})
}

// TestEndWithTaskContextAfterDeadline: the idiom `defer task.End(ctx)`
// with the task's own context, after that context is done, still revokes
// every lease, whichever of End and the end-on-done callback runs first.
func TestEndWithTaskContextAfterDeadline(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	var leases sync.Map
	tool := credTool(&leases)
	for range 20 {
		parent, cancel := context.WithCancel(context.Background())
		tctx, task, err := env.Guard.StartTask(parent, agentguard.TaskSpec{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Guard.Invoke(tctx, tool, agentguard.Call{}); err != nil {
			t.Fatal(err)
		}
		cancel()           // deadline passed / client went away
		_ = task.End(tctx) // the deferred End, error ignored as defers do
	}
	n := 0
	leases.Range(func(k, _ any) bool {
		if !errors.Is(env.Provider.Check(k.(string)), credentials.ErrRevoked) {
			n++
		}
		return true
	})
	if n > 0 {
		t.Fatalf("%d of 20 leases never revoked after their tasks ended", n)
	}
}
