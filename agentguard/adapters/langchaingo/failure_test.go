package langchainguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tmc/langchaingo/agents"
	"github.com/tmc/langchaingo/chains"
	"github.com/tmc/langchaingo/tools"

	"github.com/agentguard/go-sdk/agentguard"
	langchainguard "github.com/agentguard/go-sdk/agentguard/adapters/langchaingo"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// leakyLookup is a lookup tool that fails, or answers, with its credential
// in the text.
func leakyLookup(fail bool) *fakeTool {
	return &fakeTool{name: "lookup", desc: "Looks up an order by its ID.", cred: "orders",
		run: func(ctx context.Context, input string) (string, error) {
			c, _ := credentials.FromContext(ctx, "orders")
			if fail {
				return "", fmt.Errorf("orders API refused token %s for %s", c.Secret.Reveal(), input)
			}
			return "order " + input + " shipped (token " + c.Secret.Reveal() + ")", nil
		}}
}

// TestToolErrorEndsRun: by default a tool's error ends the run, as
// langchaingo does unguarded, with the credential scrubbed from the error.
func TestToolErrorEndsRun(t *testing.T) {
	e := newEnv(t, supportRules())
	lookup := leakyLookup(true)
	_, refund := supportTools()
	set := newSupportSet(t, e, lookup, refund)
	ctx := e.task(t)
	model := newModel(action("lookup", "O-1"), text("Final Answer: unreachable"))
	_, err := chains.Run(ctx, agents.NewExecutor(set.Agent(agents.NewOneShotAgent(model, set.Tools()))), "Where is O-1?")
	var toolErr *agentguard.ToolError
	if !errors.As(err, &toolErr) || toolErr.Tool != "lookup" {
		t.Fatalf("run error %v, want a *agentguard.ToolError of lookup", err)
	}
	if !strings.HasPrefix(err.Error(), "langchainguard: ") || !strings.Contains(err.Error(), "orders API refused token "+credentials.Redacted) {
		t.Errorf("error %q: want the tool's scrubbed message, prefixed", err)
	}
	expectNoCanary(t, "the error", err.Error())
	if n := len(model.Prompts()); n != 1 {
		t.Errorf("model asked %d times after the failure, want 1 (the run ends)", n)
	}
	audittest.ExpectCount(t, e.toolCalls(), audittest.Want{Tool: "lookup", Decision: audit.Allow, Outcome: audit.OutcomeError}, 1)
	audittest.ExpectNoSecret(t, e.Audit.Events(), canary)
	e.expectNoCanaryInSpans(t)
}

// TestToolErrorAsObservation: WithToolErrorsAsObservations gives the model
// the failure, scrubbed, and the run goes on; an output that echoes the
// credential reaches the model with the value removed.
func TestToolErrorAsObservation(t *testing.T) {
	for _, fail := range []bool{true, false} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			e := newEnv(t, supportRules())
			lookup := leakyLookup(fail)
			_, refund := supportTools()
			set := newSupportSet(t, e, lookup, refund, langchainguard.WithToolErrorsAsObservations())
			ctx := e.task(t)
			model := newModel(action("lookup", "O-1"), text("Final Answer: done"))
			out, err := chains.Run(ctx, agents.NewExecutor(set.Agent(agents.NewOneShotAgent(model, set.Tools()))), "Where is O-1?")
			if err != nil || out != "done" {
				t.Fatalf("run: %q, %v", out, err)
			}
			prompts := model.Prompts()
			want := "Observation: order O-1 shipped (token " + credentials.Redacted + ")"
			outcome := audit.OutcomeOK
			if fail {
				want = `Observation: The tool "lookup" failed: orders API refused token ` + credentials.Redacted + " for O-1"
				outcome = audit.OutcomeError
			}
			if !strings.Contains(prompts[1], want) {
				t.Errorf("second prompt lacks %q:\n%s", want, prompts[1])
			}
			expectNoCanary(t, "a prompt", prompts...)
			audittest.ExpectCount(t, e.toolCalls(), audittest.Want{Tool: "lookup", Outcome: outcome}, 1)
			audittest.ExpectNoSecret(t, e.Audit.Events(), canary)
			e.expectNoCanaryInSpans(t)
		})
	}
}

// TestJSONInput: a tool whose Spec gives an input schema takes a JSON
// object that policy reads field by field; input that is no JSON object is
// denied at the arguments step, and the model is told to fix it.
func TestJSONInput(t *testing.T) {
	rules := policytest.NewRules(
		policytest.Rule{ID: "transfer-limit", Effect: policytest.Deny, Tool: "transfer", Reason: "transfers over 100 need a human",
			When: func(r *policy.Request) bool {
				var a struct{ Amount float64 }
				return json.Unmarshal(r.Args, &a) != nil || a.Amount > 100
			}},
		policytest.Rule{ID: "transfers", Effect: policytest.Allow, Tool: "transfer"},
	)
	e := newEnv(t, rules)
	transfer := &fakeTool{name: "transfer", desc: `Transfers money. Input: {"amount": <number>, "to": "<account>"}.`}
	set, err := langchainguard.New(e.Guard, "bank", []tools.Tool{transfer}, langchainguard.WithSpec("transfer", langchainguard.Spec{
		InputSchema: json.RawMessage(`{"type":"object","properties":{"amount":{"type":"number"},"to":{"type":"string"}},"required":["amount","to"]}`),
		Risk:        agentguard.RiskMedium,
	}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := e.task(t)
	model := newModel(
		action("transfer", `{ "to": "acct-1", "amount": 50 }`),
		action("transfer", `{"amount": 500, "to": "acct-1"}`),
		action("transfer", "fifty to acct-1"),
		text("Final Answer: sent 50"),
	)
	if _, err := chains.Run(ctx, agents.NewExecutor(set.Agent(agents.NewOneShotAgent(model, set.Tools()))), "Send 550 to acct-1"); err != nil {
		t.Fatalf("run: %v", err)
	}
	// The tool ran once, with the canonical arguments policy saw.
	if got := transfer.Inputs(); !slices.Equal(got, []string{`{"amount":50,"to":"acct-1"}`}) {
		t.Errorf("transfer inputs %q", got)
	}
	prompts := model.Prompts()
	if want := `Observation: The call to tool "transfer" was denied (authorize): transfers over 100 need a human.`; !strings.Contains(prompts[2], want) {
		t.Errorf("third prompt lacks %q:\n%s", want, prompts[2])
	}
	if want := `Observation: The call to tool "transfer" was denied (arguments): arguments are not valid JSON. Fix the arguments and call it again.`; !strings.Contains(prompts[3], want) {
		t.Errorf("fourth prompt lacks %q:\n%s", want, prompts[3])
	}
	calls := e.toolCalls()
	audittest.ExpectCount(t, calls, audittest.Want{Tool: "transfer", Decision: audit.Allow, Outcome: audit.OutcomeOK}, 1)
	audittest.ExpectCount(t, calls, audittest.Want{Tool: "transfer", Decision: audit.Deny, Policies: []string{"transfer-limit"}}, 1)
	audittest.ExpectCount(t, calls, audittest.Want{Tool: "transfer", Decision: audit.Deny, Step: agentguard.StepArguments}, 1)
	if len(calls) != 3 || e.executeSpans()["transfer"] != 3 {
		t.Errorf("%d records and %v spans, want 3 of each", len(calls), e.executeSpans())
	}
}

// TestUnguardedToolNeverRuns: a tool the agent holds that the toolset was
// not given, whatever its name, is never run through Toolset.Agent: its
// call is denied, audited and traced, and the model reads the denial.
func TestUnguardedToolNeverRuns(t *testing.T) {
	for _, name := range []string{"rogue", "LOOKUP", "lookup"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, policytest.AllowAll())
			lookup, refund := supportTools()
			set := newSupportSet(t, e, lookup, refund)
			ctx := e.task(t)
			rogue := &fakeTool{name: name, desc: "Not given to the guard."}
			// The rogue tool comes last, so the executor dispatches its
			// name (without regard to case) to it.
			model := newModel(action(name, "x"), text("Final Answer: done"))
			agent := agents.NewOneShotAgent(model, append(set.Tools(), rogue))
			if _, err := chains.Run(ctx, agents.NewExecutor(set.Agent(agent)), "go"); err != nil {
				t.Fatalf("run: %v", err)
			}
			if n := len(rogue.Inputs()) + len(lookup.Inputs()); n != 0 {
				t.Errorf("%d tool calls ran", n)
			}
			want := fmt.Sprintf(`Observation: The call to tool %q was denied (lookup)`, name)
			if p := model.Prompts()[1]; !strings.Contains(p, want) {
				t.Errorf("second prompt lacks %q:\n%s", want, p)
			}
			calls := e.toolCalls()
			if len(calls) != 1 || e.executeSpans()[name] != 1 {
				t.Fatalf("records %s, spans %v: want one of each", audittest.List(calls), e.executeSpans())
			}
			audittest.Expect(t, calls, audittest.Want{Tool: name, Toolset: "support", Decision: audit.Deny, Step: agentguard.StepLookup})
		})
	}
}

// TestToolOfAnotherGuardNeverRuns: a tool guarded by another Guard (a
// permissive one, say) that the agent holds is not this guard's to pass
// on: Toolset.Agent refuses its calls as it does an unguarded tool's.
func TestToolOfAnotherGuardNeverRuns(t *testing.T) {
	e := newEnv(t, supportRules())
	lookup, refund := supportTools()
	set := newSupportSet(t, e, lookup, refund)
	lax := newEnv(t, policytest.AllowAll())
	wire := &fakeTool{name: "wire", desc: "Wires money."}
	other, err := langchainguard.New(lax.Guard, "lax", []tools.Tool{wire})
	if err != nil {
		t.Fatal(err)
	}
	ctx := e.task(t)
	model := newModel(action("wire", "100 to acct-9"), text("Final Answer: done"))
	agent := agents.NewOneShotAgent(model, append(set.Tools(), other.Tools()...))
	if _, err := chains.Run(ctx, agents.NewExecutor(set.Agent(agent)), "go"); err != nil {
		t.Fatalf("run: %v", err)
	}
	if n := len(wire.Inputs()); n != 0 {
		t.Fatalf("the other guard's tool ran %d times", n)
	}
	if want := `Observation: The call to tool "wire" was denied (lookup)`; !strings.Contains(model.Prompts()[1], want) {
		t.Errorf("second prompt lacks %q:\n%s", want, model.Prompts()[1])
	}
	audittest.Expect(t, e.toolCalls(), audittest.Want{Tool: "wire", Toolset: "support", Decision: audit.Deny, Step: agentguard.StepLookup})
	if n := len(lax.toolCalls()); n != 0 {
		t.Fatalf("the other guard saw %d calls", n)
	}
}

// TestHiddenToolCallIsAudited: a tool of the toolset that Allowed left out
// of the agent's prompt, which the model calls anyway, is decided by the
// guard and audited (here denied by policy), never run; a name that is no
// tool at all is still the executor's to refuse.
func TestHiddenToolCallIsAudited(t *testing.T) {
	e := newEnv(t, supportRules())
	lookup, refund := supportTools()
	set := newSupportSet(t, e, lookup, refund)
	ctx := e.task(t)
	allowed, err := set.Allowed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	model := newModel(action("refund", "O-1"), action("format_disk", "now"), text("Final Answer: done"))
	if _, err := chains.Run(ctx, agents.NewExecutor(set.Agent(agents.NewOneShotAgent(model, allowed))), "go"); err != nil {
		t.Fatalf("run: %v", err)
	}
	if strings.Contains(model.Prompts()[0], "refund") {
		t.Fatalf("the prompt shows the hidden tool:\n%s", model.Prompts()[0])
	}
	if n := len(refund.Inputs()); n != 0 {
		t.Fatalf("the hidden tool ran %d times", n)
	}
	if want := `Observation: The call to tool "refund" was denied (authorize): refunds need a human.`; !strings.Contains(model.Prompts()[1], want) {
		t.Errorf("second prompt lacks %q:\n%s", want, model.Prompts()[1])
	}
	if want := "format_disk is not a valid tool"; !strings.Contains(model.Prompts()[2], want) {
		t.Errorf("third prompt lacks %q:\n%s", want, model.Prompts()[2])
	}
	calls := e.toolCalls()
	if len(calls) != 1 {
		t.Fatalf("records:\n%s", audittest.List(calls))
	}
	audittest.Expect(t, calls, audittest.Want{Tool: "refund", Decision: audit.Deny, Policies: []string{"no-refunds"}})
}
