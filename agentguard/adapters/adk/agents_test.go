package adkguard_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/agent/workflowagents/sequentialagent"
	"google.golang.org/adk/plugin"
	"google.golang.org/adk/runner"
	"google.golang.org/adk/tool"
	"google.golang.org/adk/tool/agenttool"

	"github.com/agentguard/go-sdk/agentguard/adapters/adk"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// helperRules allow the agent tool "helper" and lookups; nothing allows
// delete_account or peek.
func helperRules() *policytest.Rules {
	return policytest.NewRules(
		policytest.Rule{ID: "helper", Effect: policytest.Allow, Tool: "helper"},
		policytest.Rule{ID: "read-orders", Effect: policytest.Allow, Tool: "lookup_order"},
		policytest.Rule{ID: "peek", Effect: policytest.Allow, Tool: "peek"},
	)
}

// innerTools are the helper agent's tools: lookup_order and delete_account
// (from shopTools) and peek, which needs no credential and reports whether
// it finds one.
func innerTools(t *testing.T, log *toolLog, peeked *bool) []tool.Tool {
	shop := shopTools(t, log)
	peek := mustTool(t, "peek", "Peek.", func(ctx tool.Context, _ struct{}) (map[string]any, error) {
		_, *peeked = credentials.FromContext(ctx, "api")
		return map[string]any{"ok": true}, nil
	})
	return []tool.Tool{shop[0], shop[2], peek}
}

// An agent run as a tool runs in a runner of ADK's own, without the
// guard's plugin. Made with Guard.AgentTool from an agent Guard.Agent
// built, its calls are guarded one by one, in the task, each with its own
// credentials: the agent tool's are not passed down.
func TestAgentTool(t *testing.T) {
	for _, viaPlugin := range []bool{false, true} {
		name := "agent callbacks"
		if viaPlugin {
			name = "plugin"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, helperRules(), nil, adkguard.WithSpec("helper", credSpec()))
			log := newToolLog()
			peeked := true
			im := &scriptedModel{steps: []step{
				calls(call("in-1", "lookup_order", map[string]any{"order": "A-1"}),
					call("in-2", "delete_account", map[string]any{"order": "A-1"}),
					call("in-3", "peek", nil)),
				text("looked up"),
			}}
			inner, err := h.ag.Agent(llmagent.Config{Name: "helper", Description: "Helps.", Model: im, Tools: innerTools(t, log, &peeked)})
			if err != nil {
				t.Fatal(err)
			}
			at, err := h.ag.AgentTool(inner, nil)
			if err != nil {
				t.Fatal(err)
			}
			om := &scriptedModel{steps: []step{calls(call("out-1", "helper", map[string]any{"request": "look up A-1"})), text("ok")}}
			var r *runner.Runner
			if viaPlugin {
				outer, err := llmagent.New(llmagent.Config{Name: "shop_agent", Model: om, Tools: []tool.Tool{at}})
				if err != nil {
					t.Fatal(err)
				}
				p, err := h.ag.Plugin()
				if err != nil {
					t.Fatal(err)
				}
				r = h.runner(t, outer, p)
			} else {
				r = h.runner(t, h.agent(t, om, []tool.Tool{at}))
			}
			ctx, task := h.task(t)
			evs := run(t, ctx, r, h.session(t), userText("Look up A-1."))
			if got := response(t, evs, "out-1"); got["result"] != "looked up" {
				t.Errorf("the model got %v", got)
			}
			if log.ran("delete_account") != 0 {
				t.Fatal("delete_account ran inside the agent tool")
			}
			if log.ran("lookup_order") != 1 || log.sawCredential("lookup_order") != 1 {
				t.Errorf("lookup_order: runs %v, credential %v", log.runs, log.credOK)
			}
			if peeked {
				t.Error("a tool of the agent that declares no credential found the agent tool's")
			}
			h.expectOnce(t, "out-1", audittest.Want{Decision: audit.Allow, Outcome: audit.OutcomeOK, Tool: "helper", Task: task.ID()})
			h.expectOnce(t, "in-1", audittest.Want{Decision: audit.Allow, Outcome: audit.OutcomeOK, Tool: "lookup_order", Task: task.ID()})
			h.expectOnce(t, "in-2", audittest.Want{Decision: audit.Deny, Tool: "delete_account", Task: task.ID()})
			h.expectOnce(t, "in-3", audittest.Want{Decision: audit.Allow, Outcome: audit.OutcomeOK, Tool: "peek", Task: task.ID()})
			if h.ag.InFlight() != 0 {
				t.Errorf("%d calls in flight", h.ag.InFlight())
			}
			h.expectNoCanary(t, om, evs)
			h.expectNoCanary(t, im)
		})
	}
}

// An agent tool made with agenttool.New runs an agent the guard knows
// nothing of: it does not run, whether the guard wraps it (Configure) or
// sees it from the plugin.
func TestAgentToolNotMadeByGuard(t *testing.T) {
	for _, viaPlugin := range []bool{false, true} {
		name := "agent callbacks"
		if viaPlugin {
			name = "plugin"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, helperRules(), nil, adkguard.WithSpec("helper", credSpec()))
			log := newToolLog()
			peeked := false
			im := &scriptedModel{steps: []step{calls(call("in-2", "delete_account", map[string]any{"order": "A-1"})), text("deleted")}}
			inner, err := llmagent.New(llmagent.Config{Name: "helper", Description: "Helps.", Model: im, Tools: innerTools(t, log, &peeked)})
			if err != nil {
				t.Fatal(err)
			}
			raw := agenttool.New(inner, nil)
			om := &scriptedModel{steps: []step{calls(call("out-1", "helper", map[string]any{"request": "delete A-1"})), text("ok")}}
			var plugins []*plugin.Plugin
			var outer agent.Agent
			if viaPlugin {
				if outer, err = llmagent.New(llmagent.Config{Name: "shop_agent", Model: om, Tools: []tool.Tool{raw}}); err != nil {
					t.Fatal(err)
				}
				p, err := h.ag.Plugin()
				if err != nil {
					t.Fatal(err)
				}
				plugins = append(plugins, p)
			} else {
				outer = h.agent(t, om, []tool.Tool{raw})
			}
			ctx, _ := h.task(t)
			evs := run(t, ctx, h.runner(t, outer, plugins...), h.session(t), userText("Delete my account."))
			if len(im.requests()) != 0 || log.ran("delete_account") != 0 {
				t.Fatal("the agent of an agent tool the guard did not make ran")
			}
			if msg := errorText(t, response(t, evs, "out-1")); !strings.Contains(msg, adkguard.ErrUnguardedAgent.Error()) {
				t.Errorf("the model got %q", msg)
			}
			ev := h.expectOnce(t, "out-1", audittest.Want{Decision: audit.Allow, Outcome: audit.OutcomeError, Tool: "helper"})
			if !strings.Contains(ev.Error, adkguard.ErrUnguardedAgent.Error()) {
				t.Errorf("record error %q", ev.Error)
			}
		})
	}
}

// AgentTool takes only agents whose LLM agents, sub-agents included, the
// guard built.
func TestAgentToolChecksTheAgent(t *testing.T) {
	h := newHarness(t, helperRules(), nil)
	m := &scriptedModel{}
	guarded, err := h.ag.Agent(llmagent.Config{Name: "guarded", Model: m})
	if err != nil {
		t.Fatal(err)
	}
	bare, err := llmagent.New(llmagent.Config{Name: "bare", Model: m})
	if err != nil {
		t.Fatal(err)
	}
	withBareSub, err := h.ag.Agent(llmagent.Config{Name: "parent", Model: m, SubAgents: []agent.Agent{bare}})
	if err != nil {
		t.Fatal(err)
	}
	seq := func(name string, subs ...agent.Agent) agent.Agent {
		a, err := sequentialagent.New(sequentialagent.Config{AgentConfig: agent.Config{Name: name, SubAgents: subs}})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tc := range []struct {
		a  agent.Agent
		ok bool
	}{
		{guarded, true},
		{bare, false},
		{withBareSub, false},
		{seq("steps", guarded), true},
		{seq("steps2", bare), false},
		{nil, false},
	} {
		_, err := h.ag.AgentTool(tc.a, nil)
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, adkguard.ErrUnguardedAgent) {
			name := "<nil>"
			if tc.a != nil {
				name = tc.a.Name()
			}
			t.Errorf("AgentTool(%s) error %v, want ok=%v", name, err, tc.ok)
		}
	}
}
