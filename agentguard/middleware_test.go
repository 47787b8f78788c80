package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// TestMiddleware guards a framework's own execution: next runs only when
// the guard allows, with the canonical arguments and the credentials.
func TestMiddleware(t *testing.T) {
	env := agentguardtest.New(t, policytest.NewRules(policytest.Rule{ID: "search-ok", Tool: "search"}), "tok")
	var ran []string
	next := func(ctx context.Context, tool *agentguard.Tool, call agentguard.Call) (*agentguard.Result, error) {
		c, ok := credentials.FromContext(ctx, "api")
		if !ok || c.Secret.Reveal() != "tok" {
			t.Errorf("next: credential = %v, %v", c, ok)
		}
		ran = append(ran, tool.Name+" "+string(call.Args))
		return &agentguard.Result{Output: "r"}, nil
	}
	guarded := env.Guard.Middleware()(next)
	need := []credentials.Requirement{{Name: "api", Provider: agentguardtest.StaticProvider}}
	search := &agentguard.Tool{Name: "search", Credentials: need} // no Handler: the framework runs it
	drop := &agentguard.Tool{Name: "drop_table", Credentials: need}

	if _, err := guarded(context.Background(), search, agentguard.Call{ID: "1", Args: json.RawMessage(`{ "q" : "x" }`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := guarded(context.Background(), drop, agentguard.Call{ID: "2"}); !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("drop_table: %v, want ErrDenied", err)
	}
	if _, err := guarded(context.Background(), &agentguard.Tool{Name: "delegate"}, agentguard.Call{}); !errors.Is(err, agentguard.ErrInvalidTool) || !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("a tool with a reserved name: err = %v, want an ErrInvalidTool denial", err)
	}
	if !slices.Equal(ran, []string{`search {"q":"x"}`}) {
		t.Errorf("next ran for %v", ran)
	}
	evs := env.Audit.Kind(audit.KindToolCall)
	if len(evs) != 3 || evs[0].Decision != audit.Allow || evs[1].Decision != audit.Deny ||
		evs[2].Step != agentguard.StepDefinition || evs[2].Tool != "delegate" {
		t.Errorf("audit = %+v", evs)
	}
}

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) agentguard.Middleware {
		return func(next agentguard.Next) agentguard.Next {
			return func(ctx context.Context, tool *agentguard.Tool, call agentguard.Call) (*agentguard.Result, error) {
				order = append(order, name+" in")
				r, err := next(ctx, tool, call)
				order = append(order, name+" out")
				return r, err
			}
		}
	}
	h := agentguard.Chain(mw("a"), mw("b"))(func(context.Context, *agentguard.Tool, agentguard.Call) (*agentguard.Result, error) {
		order = append(order, "tool")
		return nil, nil
	})
	_, _ = h(context.Background(), &agentguard.Tool{Name: "t"}, agentguard.Call{})
	if want := []string{"a in", "b in", "tool", "b out", "a out"}; !slices.Equal(order, want) {
		t.Errorf("order = %v, want %v (first is outermost)", order, want)
	}
}
