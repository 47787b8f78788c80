package langchainguard_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tmc/langchaingo/agents"
	"github.com/tmc/langchaingo/chains"
	"github.com/tmc/langchaingo/tools"

	"github.com/agentguard/go-sdk/agentguard"
	langchainguard "github.com/agentguard/go-sdk/agentguard/adapters/langchaingo"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// supportRules allow every call but refunds.
func supportRules() *policytest.Rules {
	return policytest.NewRules(
		policytest.Rule{ID: "no-refunds", Effect: policytest.Deny, Tool: "refund", Reason: "refunds need a human"},
		policytest.Rule{ID: "support", Effect: policytest.Allow},
	)
}

func supportTools() (lookup, refund *fakeTool) {
	lookup = &fakeTool{name: "lookup", desc: "Looks up an order by its ID.", cred: "orders"}
	refund = &fakeTool{name: "refund", desc: "Refunds an order."}
	return lookup, refund
}

func newSupportSet(t *testing.T, e *env, lookup, refund tools.Tool, opts ...langchainguard.Option) *langchainguard.Toolset {
	t.Helper()
	opts = append([]langchainguard.Option{
		langchainguard.WithSpec("lookup", langchainguard.Spec{
			Annotations: agentguard.Annotations{ReadOnly: true},
			Credentials: []credentials.Requirement{orders},
		}),
	}, opts...)
	set, err := langchainguard.New(e.Guard, "support", []tools.Tool{lookup, refund}, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return set
}

// TestOneShotAgent runs langchaingo's one-shot (MRKL) agent and executor
// over guarded tools: the allowed call runs with the task's credential and
// the agent's identity, the denied one never reaches its tool and comes
// back as the observation of the next prompt, and the run finishes.
func TestOneShotAgent(t *testing.T) {
	rules := supportRules()
	e := newEnv(t, rules)
	lookup, refund := supportTools()
	set := newSupportSet(t, e, lookup, refund)
	ctx := e.task(t)

	model := newModel(
		action("lookup", "O-1"),
		action("refund", "O-1"),
		text("Thought: I now know the final answer\nFinal Answer: order O-1 shipped; no refund"),
	)
	// Every tool, the refused one too: the denial happens at call time.
	agent := agents.NewOneShotAgent(model, set.Tools())
	executor := agents.NewExecutor(set.Agent(agent), agents.WithCallbacksHandler(set.Callbacks()))
	out, err := chains.Run(ctx, executor, "Where is order O-1? Refund it.")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if out != "order O-1 shipped; no refund" {
		t.Errorf("output %q", out)
	}

	// (a) the allowed call ran once, with its input as the model gave it
	// and the task's credential; policy saw the agent's identity.
	if got := lookup.Inputs(); !slices.Equal(got, []string{"O-1"}) {
		t.Errorf("lookup inputs %q, want [O-1]", got)
	}
	if lookup.CredOK() != 1 {
		t.Errorf("lookup found the task credential in %d calls, want 1", lookup.CredOK())
	}
	var asked []string
	for _, r := range rules.Requests() {
		if r.Agent.ID.String() != agentguardtest.AgentID {
			t.Errorf("policy asked about agent %s, want %s", r.Agent.ID, agentguardtest.AgentID)
		}
		if r.Listing {
			continue
		}
		asked = append(asked, r.Tool.Name+" "+string(r.Args))
		if r.Tool.Toolset != "support" {
			t.Errorf("policy saw toolset %q, want support", r.Tool.Toolset)
		}
	}
	if want := []string{`lookup {"input":"O-1"}`, `refund {"input":"O-1"}`}; !slices.Equal(asked, want) {
		t.Errorf("policy asked %q, want %q", asked, want)
	}

	// (b) the denied call never reached its tool; the model read the
	// denial as the refund's observation and went on.
	if n := len(refund.Inputs()); n != 0 {
		t.Errorf("refund ran %d times", n)
	}
	prompts := model.Prompts()
	if len(prompts) != 3 {
		t.Fatalf("model asked %d times, want 3", len(prompts))
	}
	if !strings.Contains(prompts[1], "Observation: lookup done: O-1") {
		t.Errorf("second prompt lacks the lookup's observation:\n%s", prompts[1])
	}
	want := `Observation: The call to tool "refund" was denied (authorize): refunds need a human.`
	if !strings.Contains(prompts[2], want) {
		t.Errorf("third prompt lacks the denial %q:\n%s", want, prompts[2])
	}

	// (e) one span and one audit record per call, allowed and denied.
	if got := e.executeSpans(); got["lookup"] != 1 || got["refund"] != 1 || len(got) != 2 {
		t.Errorf("execute_tool spans %v, want one per tool", got)
	}
	calls := e.toolCalls()
	if len(calls) != 2 {
		t.Fatalf("tool call records:\n%s", audittest.List(calls))
	}
	audittest.ExpectCount(t, calls, audittest.Want{Tool: "lookup", Agent: agentguardtest.AgentID, Toolset: "support", Decision: audit.Allow, Outcome: "ok"}, 1)
	audittest.ExpectCount(t, calls, audittest.Want{Tool: "refund", Agent: agentguardtest.AgentID, Decision: audit.Deny, Policies: []string{"no-refunds"}}, 1)

	// (f) the credential value reached nothing the model, the caller, the
	// audit log or the spans see.
	expectNoCanary(t, "a prompt", prompts...)
	expectNoCanary(t, "the output", out)
	audittest.ExpectNoSecret(t, e.Audit.Events(), canary)
	e.expectNoCanaryInSpans(t)
}
