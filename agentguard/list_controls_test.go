package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/policy"
)

func listNames(t *testing.T, ctx context.Context, r *agentguard.Registry) []string {
	t.Helper()
	tools, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools {
		names = append(names, tl.Name)
	}
	return names
}

// TestListAttenuatedByChain: a sub-agent's listing shows only the tools
// every agent up its chain may call, as its calls are decided.
func TestListAttenuatedByChain(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
	reg := researcher.guard.NewRegistry("tools")
	if err := reg.Register(echoTool("search"), echoTool("refund")); err != nil {
		t.Fatal(err)
	}
	if got := listNames(t, context.Background(), reg); !slices.Equal(got, []string{"search", "refund"}) {
		t.Fatalf("researcher alone lists %v, want search and refund", got)
	}
	dctx, err := planner.guard.Delegate(context.Background(), researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got := listNames(t, dctx, reg); !slices.Equal(got, []string{"search"}) {
		t.Fatalf("researcher working for the planner lists %v, want only search (the planner may not refund)", got)
	}
}

// TestListHidesByToolCalls: policy sees each tool's own call count when
// listing, so a per-tool limit in policy hides the tool once reached.
func TestListHidesByToolCalls(t *testing.T) {
	eng, err := policy.NewCedarEngine(policy.MustParseSet("p.cedar", `
@id("all") permit(principal, action, resource);
@id("once") forbid(principal, action == Action::"lookup", resource) when { context.task.tool_calls >= 1 };
`))
	if err != nil {
		t.Fatal(err)
	}
	env := agentguardtest.New(t, eng, "tok")
	reg := env.Guard.NewRegistry("tools")
	if err := reg.Register(echoTool("lookup"), echoTool("search")); err != nil {
		t.Fatal(err)
	}
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	if got := listNames(t, ctx, reg); !slices.Equal(got, []string{"lookup", "search"}) {
		t.Fatalf("before any call: %v", got)
	}
	if _, err := reg.Call(ctx, agentguard.Call{Name: "lookup", Args: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if got := listNames(t, ctx, reg); !slices.Equal(got, []string{"search"}) {
		t.Fatalf("after one lookup: %v, want only search", got)
	}
	if _, err := reg.Call(ctx, agentguard.Call{Name: "lookup", Args: json.RawMessage(`{}`)}); !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("second lookup: err = %v, want denied", err)
	}
}
