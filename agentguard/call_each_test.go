package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// TestCallEach: outcomes come back in the calls' order, in order when run
// one by one, and all at once when concurrency allows (the tools wait for
// each other, so the test passes only if they overlap).
func TestCallEach(t *testing.T) {
	env := agentguardtest.New(t, policytest.NewRules(policytest.Rule{ID: "ok", Tool: "echo"}), "tok")
	reg := env.Guard.NewRegistry("t")
	var (
		mu    sync.Mutex
		order []string
		meet  sync.WaitGroup
		wait  bool
	)
	echo := &agentguard.Tool{Name: "echo", Handler: func(_ context.Context, args json.RawMessage) (*agentguard.Result, error) {
		if wait {
			meet.Done()
			meet.Wait()
		}
		mu.Lock()
		order = append(order, string(args))
		mu.Unlock()
		return &agentguard.Result{Output: string(args)}, nil
	}}
	if err := reg.Register(echo); err != nil {
		t.Fatal(err)
	}
	calls := []agentguard.Call{
		{ID: "1", Name: "echo", Args: json.RawMessage(`{"n":1}`)},
		{ID: "2", Name: "nope"},
		{ID: "3", Name: "echo", Args: json.RawMessage(`{"n":3}`)},
	}
	out := reg.CallEach(context.Background(), calls, 1)
	if fmt.Sprint(order) != `[{"n":1} {"n":3}]` || out[0].Result.Output != `{"n":1}` || !errors.Is(out[1].Err, agentguard.ErrUnknownTool) || out[2].Result.Output != `{"n":3}` {
		t.Fatalf("in order: %v, %+v", order, out)
	}
	wait = true
	meet.Add(2)
	out = reg.CallEach(context.Background(), []agentguard.Call{calls[0], calls[2]}, 2)
	if out[0].Err != nil || out[1].Err != nil || out[0].Result.Output != `{"n":1}` || out[1].Result.Output != `{"n":3}` {
		t.Fatalf("concurrent: %+v", out)
	}
}
