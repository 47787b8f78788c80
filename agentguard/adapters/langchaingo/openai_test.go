package langchainguard_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tmc/langchaingo/agents"
	"github.com/tmc/langchaingo/chains"
	"github.com/tmc/langchaingo/tools"

	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// TestOpenAIFunctionsAgent runs langchaingo's OpenAI functions agent over
// the tools Allowed lists: the model is declared only the tools policy
// lets the agent call, the guard records the model's tool-call IDs, a
// denial comes back as the tool result of its call ID, and a call of a
// tool of the toolset the agent was not given (the model was never shown
// it) is decided by the guard all the same, and audited: it never runs.
func TestOpenAIFunctionsAgent(t *testing.T) {
	rules := policytest.NewRules(
		policytest.Rule{ID: "no-refunds", Effect: policytest.Deny, Tool: "refund", Reason: "refunds need a human"},
		policytest.Rule{ID: "no-o9", Effect: policytest.Deny, Tool: "lookup", Reason: "order O-9 is sealed",
			When: func(r *policy.Request) bool { return strings.Contains(string(r.Args), "O-9") }},
		policytest.Rule{ID: "support", Effect: policytest.Allow},
	)
	e := newEnv(t, rules)
	lookup, refund := supportTools()
	set := newSupportSet(t, e, lookup, refund)
	ctx := e.task(t)

	allowed, err := set.Allowed(ctx)
	if err != nil {
		t.Fatalf("Allowed: %v", err)
	}
	if got := names(allowed); !slices.Equal(got, []string{"lookup"}) {
		t.Fatalf("Allowed %q, want [lookup]", got)
	}
	// Listing is a question to policy, with the agent's identity.
	var listed int
	for _, r := range rules.Requests() {
		if r.Listing && r.Agent.ID.String() == agentguardtest.AgentID {
			listed++
		}
	}
	if listed != 2 {
		t.Errorf("policy asked %d listing questions for the agent, want 2", listed)
	}

	model := newModel(
		toolCall("call_1", "lookup", `{"__arg1":"O-1"}`),
		toolCall("call_2", "lookup", `{"__arg1":"O-9"}`),
		toolCall("call_3", "refund", `{"__arg1":"O-1"}`),
		text("O-1 shipped; O-9 is sealed; no refund"),
	)
	agent := agents.NewOpenAIFunctionsAgent(model, allowed)
	executor := agents.NewExecutor(set.Agent(agent), agents.WithCallbacksHandler(set.Callbacks()))
	out, err := chains.Run(ctx, executor, "Check O-1 and O-9, refund O-1.")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if out != "O-1 shipped; O-9 is sealed; no refund" {
		t.Errorf("output %q", out)
	}

	// (c) every request declared only the listed tool.
	for i, fns := range model.Functions() {
		if !slices.Equal(fns, []string{"lookup"}) {
			t.Errorf("request %d declared functions %q, want [lookup]", i, fns)
		}
	}
	prompts := model.Prompts()
	if len(prompts) != 4 {
		t.Fatalf("model asked %d times, want 4", len(prompts))
	}
	for i, want := range map[int]string{
		1: "[tool result call_1 lookup done: O-1]",
		2: `[tool result call_2 The call to tool "lookup" was denied (authorize): order O-9 is sealed.`,
		3: `[tool result call_3 The call to tool "refund" was denied (authorize): refunds need a human.`,
	} {
		if !strings.Contains(prompts[i], want) {
			t.Errorf("request %d lacks %q:\n%s", i, want, prompts[i])
		}
	}
	if got := lookup.Inputs(); !slices.Equal(got, []string{"O-1"}) {
		t.Errorf("lookup inputs %q, want [O-1]", got)
	}
	if lookup.CredOK() != 1 || len(refund.Inputs()) != 0 {
		t.Errorf("lookup found its credential %d times, refund ran %d times; want 1, 0", lookup.CredOK(), len(refund.Inputs()))
	}

	// The records carry the model's call IDs; the call of the tool the
	// agent was not given is one of them, denied by policy.
	calls := e.toolCalls()
	if len(calls) != 3 {
		t.Fatalf("tool call records:\n%s", audittest.List(calls))
	}
	audittest.Expect(t, calls, audittest.Want{CallID: "call_1", Tool: "lookup", Decision: audit.Allow, Outcome: audit.OutcomeOK})
	audittest.Expect(t, calls, audittest.Want{CallID: "call_2", Tool: "lookup", Decision: audit.Deny, Policies: []string{"no-o9"}})
	audittest.Expect(t, calls, audittest.Want{CallID: "call_3", Tool: "refund", Decision: audit.Deny, Policies: []string{"no-refunds"}})
	if got := e.executeSpans(); got["lookup"] != 2 || got["refund"] != 1 || len(got) != 2 {
		t.Errorf("execute_tool spans %v, want 2 of lookup, 1 of refund", got)
	}
	expectNoCanary(t, "a prompt", prompts...)
	audittest.ExpectNoSecret(t, e.Audit.Events(), canary)
	e.expectNoCanaryInSpans(t)
}

// TestOneShotPromptListsAllowed checks that the one-shot agent built from
// Allowed names only the allowed tools in its prompt.
func TestOneShotPromptListsAllowed(t *testing.T) {
	e := newEnv(t, supportRules())
	lookup, refund := supportTools()
	set := newSupportSet(t, e, lookup, refund)
	ctx := e.task(t)
	allowed, err := set.Allowed(ctx)
	if err != nil {
		t.Fatalf("Allowed: %v", err)
	}
	model := newModel(text("Final Answer: nothing to do"))
	if _, err := chains.Run(ctx, agents.NewExecutor(agents.NewOneShotAgent(model, allowed)), "hello"); err != nil {
		t.Fatalf("run: %v", err)
	}
	prompt := model.Prompts()[0]
	if !strings.Contains(prompt, "- lookup: Looks up an order by its ID.") || strings.Contains(prompt, "refund") {
		t.Errorf("prompt does not list exactly the allowed tools:\n%s", prompt)
	}
	if len(e.toolCalls()) != 0 {
		t.Errorf("records of tool calls: %s", audittest.List(e.toolCalls()))
	}
}

func names(ts []tools.Tool) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name()
	}
	return out
}
