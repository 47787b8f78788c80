package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/credentials"
)

// TestTaskOfAnotherGuardRefused: a call through guard g1 with a
// context that carries a task started by guard g2 is denied: g1 could not
// revoke what it leased when the task ends.
func TestTaskOfAnotherGuardRefused(t *testing.T) {
	env1 := agentguardtest.New(t, nil, "tok1")
	env2 := agentguardtest.New(t, nil, "tok2")
	var lease string
	tool := &agentguard.Tool{Name: "api",
		Credentials: []credentials.Requirement{{Name: "token", Provider: agentguardtest.StaticProvider, Audience: "api"}},
		Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
			c, _ := credentials.FromContext(ctx, "token")
			lease = c.LeaseID
			return &agentguard.Result{}, nil
		}}
	ctx, task, err := env2.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = env1.Guard.Invoke(ctx, tool, agentguard.Call{})
	if err != nil {
		return // refusing a foreign task is fine
	}
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := env1.Guard.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := env1.Provider.Check(lease); !errors.Is(err, credentials.ErrRevoked) {
		t.Fatalf("lease %s from g1's broker still valid after its task ended and g1 closed", lease)
	}
}
