package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/policy"
)

// TestRequireTask: a call whose context lacks the task
// (a framework callback or server handler that does not derive from the task
// context) would run in a fresh implicit task with no taint, no call count
// and no tools used. With WithRequireTask the guard refuses such a call.
func TestRequireTask(t *testing.T) {
	eng, err := policy.NewCedarEngine(policy.MustParseSet("p.cedar", `
@id("all") permit(principal, action, resource);
@id("no-exfil")
forbid(principal, action == Action::"send_email", resource)
when { context.task.taint.contains("pii") };
`))
	if err != nil {
		t.Fatal(err)
	}
	env := agentguardtest.New(t, eng, "tok", agentguard.WithRequireTask())
	read := &agentguard.Tool{Name: "read_pii", OutputLabels: []string{"pii"},
		Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) { return &agentguard.Result{}, nil }}
	var sends atomic.Int64
	send := counted("send_email", &sends)
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{Purpose: "support"})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(ctx)
	if _, err := env.Guard.Invoke(ctx, read, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Guard.Invoke(ctx, send, agentguard.Call{}); err == nil {
		t.Fatal("sanity: send_email allowed in a pii-tainted task")
	}
	// Same agent, same guard, same moment; the context just lost the task.
	_, err = env.Guard.Invoke(context.Background(), send, agentguard.Call{})
	if sends.Load() != 0 || !errors.Is(err, agentguard.ErrNoTask) {
		t.Fatalf("send_email outside the tainted task: err %v, runs %d; want ErrNoTask", err, sends.Load())
	}
}
