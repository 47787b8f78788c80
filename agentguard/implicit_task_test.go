package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/credentials"
)

// TestImplicitTasksNeverShareLeases: two independent calls made
// outside any task with the same (model-chosen) call ID get separate
// implicit tasks, so one ending does not revoke the other's lease.
func TestImplicitTasksNeverShareLeases(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	need := []credentials.Requirement{{Name: "token", Provider: agentguardtest.StaticProvider, Audience: "api"}}
	firstStarted := make(chan struct{})
	firstDone := make(chan struct{})
	fast := &agentguard.Tool{Name: "fast", Credentials: need, Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
		close(firstStarted)
		return &agentguard.Result{}, nil
	}}
	var midCall error
	slow := &agentguard.Tool{Name: "slow", Credentials: need, Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
		c, _ := credentials.FromContext(ctx, "token")
		<-firstDone // the other, unrelated call finishes meanwhile
		midCall = env.Provider.Check(c.LeaseID)
		return &agentguard.Result{}, nil
	}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Lease for the slow call first.
		_, _ = env.Guard.Invoke(context.Background(), slow, agentguard.Call{ID: "call_0"})
	}()
	// Give the slow call time to lease; then run the other call with the same ID.
	for env.Provider.Issued() == 0 {
		runtime.Gosched()
	}
	if _, err := env.Guard.Invoke(context.Background(), fast, agentguard.Call{ID: "call_0"}); err != nil {
		t.Fatal(err)
	}
	<-firstStarted
	close(firstDone)
	wg.Wait()
	if errors.Is(midCall, credentials.ErrRevoked) {
		t.Fatalf("slow call's lease was revoked while it ran, by an unrelated call with the same call ID (issued %d)", env.Provider.Issued())
	}
}
