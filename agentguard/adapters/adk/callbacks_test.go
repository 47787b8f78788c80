package adkguard_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/agent/workflowagents/parallelagent"

	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
)

// An allowed call runs through ADK's real runner with the agent's
// identity and the task's credential, once, with one span and one record.
func TestAllowedCall(t *testing.T) {
	rules := shopRules()
	h := newHarness(t, rules, nil)
	log := newToolLog()
	m := &scriptedModel{steps: []step{
		calls(call("call-1", "lookup_order", map[string]any{"order": "A-1"})),
		text("Your order A-1 has shipped."),
	}}
	r := h.runner(t, h.agent(t, m, shopTools(t, log)))
	ctx, task := h.task(t)
	evs := run(t, ctx, r, h.session(t), userText("Where is my order A-1?"))

	if n := log.ran("lookup_order"); n != 1 {
		t.Fatalf("lookup_order ran %d times, want 1", n)
	}
	if n := log.sawCredential("lookup_order"); n != 1 {
		t.Errorf("lookup_order saw the task credential in %d runs, want 1", n)
	}
	if got := response(t, evs, "call-1"); got["status"] != "shipped" {
		t.Errorf("the model got %v, want the tool's result", got)
	}
	calls := rules.Calls()
	if len(calls) != 1 || calls[0].Tool.Name != "lookup_order" || calls[0].Agent.ID.String() != agentguardtest.AgentID {
		t.Fatalf("policy was asked %+v, want one call of lookup_order by %s", calls, agentguardtest.AgentID)
	}
	if calls[0].CallID != "call-1" || calls[0].Tool.Toolset != "adk" {
		t.Errorf("policy saw call %q of toolset %q, want call-1 of adk", calls[0].CallID, calls[0].Tool.Toolset)
	}
	ev := h.expectOnce(t, "call-1", audittest.Want{Decision: audit.Allow, Tool: "lookup_order", Agent: agentguardtest.AgentID, Task: task.ID()})
	if len(ev.Leases) != 1 {
		t.Errorf("the record names leases %v, want the call's one", ev.Leases)
	}
	if got := m.requests(); len(got) != 2 || got[1].responses["call-1"]["status"] != "shipped" {
		t.Errorf("the model's second request did not carry the tool's result: %+v", got)
	}
	if h.ag.InFlight() != 0 {
		t.Errorf("%d calls still in flight", h.ag.InFlight())
	}
	h.expectNoCanary(t, m, evs)
}

// A call policy refuses never reaches the tool; the model gets the refusal
// as the tool's result and the run goes on.
func TestDeniedCall(t *testing.T) {
	h := newHarness(t, shopRules(), nil)
	log := newToolLog()
	m := &scriptedModel{steps: []step{
		calls(call("call-big", "refund", map[string]any{"order": "A-1", "amount": 5000})),
		text("I cannot refund that much."),
	}}
	r := h.runner(t, h.agent(t, m, shopTools(t, log)))
	ctx, _ := h.task(t)
	evs := run(t, ctx, r, h.session(t), userText("Refund 5000 on A-1."))

	if n := log.ran("refund"); n != 0 {
		t.Fatalf("refund ran %d times, want 0", n)
	}
	msg := errorText(t, response(t, evs, "call-big"))
	if !strings.Contains(msg, `"refund"`) || !strings.Contains(msg, "refunds over 1000 are never made by an agent") {
		t.Errorf("refusal %q does not say which tool and why", msg)
	}
	h.expectOnce(t, "call-big", audittest.Want{Decision: audit.Deny, Tool: "refund", Step: "authorize", Policies: []string{"refund-limit"}})
	reqs := m.requests()
	if len(reqs) != 2 || errorText(t, reqs[1].responses["call-big"]) != msg {
		t.Errorf("the model did not get the refusal and go on: %+v", reqs)
	}
	if last := evs[len(evs)-1]; last.Content == nil || last.Content.Parts[0].Text != "I cannot refund that much." {
		t.Errorf("the run did not end with the model's answer")
	}
	h.expectNoCanary(t, m, evs)
}

// The model is offered only the tools policy lists; a tool it calls
// anyway is one ADK does not know: nothing runs, and the guard records the
// call as a lookup denial.
func TestListingFiltered(t *testing.T) {
	rules := shopRules()
	h := newHarness(t, rules, nil)
	log := newToolLog()
	m := &scriptedModel{steps: []step{
		calls(call("call-del", "delete_account", map[string]any{"order": "A-1"})),
		text("I cannot do that."),
	}}
	r := h.runner(t, h.agent(t, m, shopTools(t, log)))
	ctx, _ := h.task(t)
	evs := run(t, ctx, r, h.session(t), userText("Delete my account."))

	first := m.requests()[0]
	slices.Sort(first.declared)
	slices.Sort(first.tools)
	want := []string{"lookup_order", "refund"}
	if !slices.Equal(first.declared, want) || !slices.Equal(first.tools, want) {
		t.Errorf("the model was offered declarations %v and tools %v, want %v", first.declared, first.tools, want)
	}
	if n := log.ran("delete_account"); n != 0 {
		t.Fatalf("delete_account ran %d times", n)
	}
	if msg := errorText(t, response(t, evs, "call-del")); !strings.Contains(msg, `"delete_account" was denied (lookup)`) {
		t.Errorf("the model got %q, want the guard's lookup denial", msg)
	}
	// The same decision as the registry's listing.
	allowed, err := h.ag.Allowed(ctx, shopTools(t, newToolLog()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range allowed {
		names = append(names, tl.Name())
	}
	if !slices.Equal(names, want) {
		t.Errorf("Allowed = %v, want %v", names, want)
	}
	h.expectOnce(t, "call-del", audittest.Want{Decision: audit.Deny, Step: "lookup", Tool: "delete_account", Agent: agentguardtest.AgentID})
	h.expectNoCanary(t, m, evs)
}

// Every call of a turn that makes several at once is guarded once, its
// span and record paired by the function-call ID.
func TestParallelCallsOnceEach(t *testing.T) {
	h := newHarness(t, shopRules(), nil)
	log := newToolLog()
	m := &scriptedModel{steps: []step{
		calls(
			call("c-a", "lookup_order", map[string]any{"order": "A-1"}),
			call("c-b", "lookup_order", map[string]any{"order": "B-2"}),
			call("c-c", "refund", map[string]any{"order": "A-1", "amount": 40}),
			call("c-d", "refund", map[string]any{"order": "A-1", "amount": 4000}),
		),
		text("Done."),
	}}
	r := h.runner(t, h.agent(t, m, shopTools(t, log)))
	ctx, task := h.task(t)
	evs := run(t, ctx, r, h.session(t), userText("Check both orders and refund."))

	if log.ran("lookup_order") != 2 || log.ran("refund") != 1 {
		t.Fatalf("runs: %v, want lookup_order twice and refund once", log.runs)
	}
	if log.sawCredential("lookup_order") != 2 || log.sawCredential("refund") != 1 {
		t.Errorf("credential seen: %v", log.credOK)
	}
	for _, id := range []string{"c-a", "c-b", "c-c"} {
		h.expectOnce(t, id, audittest.Want{Decision: audit.Allow, Task: task.ID()})
	}
	h.expectOnce(t, "c-d", audittest.Want{Decision: audit.Deny, Step: "authorize"})
	if got := len(h.Audit.Kind(audit.KindToolCall)); got != 4 {
		t.Errorf("%d tool-call records, want 4", got)
	}
	if h.ag.InFlight() != 0 {
		t.Errorf("%d calls still in flight", h.ag.InFlight())
	}
	h.expectNoCanary(t, m, evs)
}

// The agents of a ParallelAgent share the invocation: calls of both with
// the same function-call ID are told apart by agent and branch.
func TestParallelAgentsSameCallID(t *testing.T) {
	h := newHarness(t, shopRules(), nil)
	log := newToolLog()
	var subs []agent.Agent
	for _, name := range []string{"east", "west"} {
		m := &scriptedModel{steps: []step{calls(call("call-1", "lookup_order", map[string]any{"order": name})), text("ok")}}
		a, err := h.ag.Agent(llmagent.Config{Name: name, Model: m, Tools: shopTools(t, log)})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, a)
	}
	par, err := parallelagent.New(parallelagent.Config{AgentConfig: agent.Config{Name: "both", SubAgents: subs}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, _ := h.task(t)
	run(t, ctx, h.runner(t, par), h.session(t), userText("Look up both."))
	if log.ran("lookup_order") != 2 || log.sawCredential("lookup_order") != 2 {
		t.Fatalf("runs %v, credential %v", log.runs, log.credOK)
	}
	audittest.ExpectCount(t, h.Audit.Kind(audit.KindToolCall), audittest.Want{CallID: "call-1", Decision: audit.Allow, Outcome: audit.OutcomeOK}, 2)
	if h.ag.InFlight() != 0 {
		t.Errorf("%d calls in flight", h.ag.InFlight())
	}
}
