package agentguard_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/credentials"
)

// TestNestedToolSeesOnlyItsCredentials: a tool that declares no
// credential, called (through the guard) from inside a tool that holds one,
// does not find the outer tool's credential in its context.
func TestNestedToolSeesOnlyItsCredentials(t *testing.T) {
	env := agentguardtest.New(t, nil, "db-password")
	var leaked string
	thirdParty := &agentguard.Tool{Name: "summarize", Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
		if c, ok := credentials.FromContext(ctx, "db"); ok {
			leaked = c.Secret.Reveal()
		}
		return &agentguard.Result{}, nil
	}}
	query := &agentguard.Tool{Name: "query",
		Credentials: []credentials.Requirement{{Name: "db", Provider: agentguardtest.StaticProvider, Audience: "db"}},
		Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
			// e.g. a sub-agent step run with the tool's context
			return env.Guard.Invoke(ctx, thirdParty, agentguard.Call{})
		}}
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	if _, err := env.Guard.Invoke(ctx, query, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	if leaked != "" {
		t.Fatalf("tool %q declared no credential but received %q leased to another tool", thirdParty.Name, leaked)
	}
}
