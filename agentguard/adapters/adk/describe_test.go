package adkguard_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/tool"
	"google.golang.org/adk/tool/functiontool"
	"google.golang.org/genai"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/adapters/adk"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// typedTool declares its parameters as a genai.Schema, as ADK's own tools do.
type typedTool struct{}

func (typedTool) Name() string        { return "count" }
func (typedTool) Description() string { return "Count." }
func (typedTool) IsLongRunning() bool { return false }
func (typedTool) Declaration() *genai.FunctionDeclaration {
	return &genai.FunctionDeclaration{Name: "count", Description: "Count things.", Parameters: &genai.Schema{
		Type: genai.TypeObject, Properties: map[string]*genai.Schema{"n": {Type: genai.TypeInteger}}, Required: []string{"n"},
	}}
}

// staticToolset is a toolset of fixed tools.
type staticToolset struct {
	name  string
	tools []tool.Tool
}

func (s staticToolset) Name() string                                     { return s.name }
func (s staticToolset) Tools(agent.ReadonlyContext) ([]tool.Tool, error) { return s.tools, nil }

func TestDescribe(t *testing.T) {
	h := newHarness(t, policytest.AllowAll(), nil, adkguard.WithSpec("count", adkguard.Spec{Toolset: "math", Risk: agentguard.RiskHigh}))
	lookup := mustTool(t, "lookup_order", "Look up an order.", func(tool.Context, orderArgs) (orderResult, error) { return orderResult{}, nil })
	long, err := functiontool.New(functiontool.Config{Name: "export", Description: "Export everything.", IsLongRunning: true},
		func(tool.Context, struct{}) (map[string]any, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := h.ag.Toolset(staticToolset{name: "billing", tools: []tool.Tool{lookup}}).Tools(nil)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		tool    tool.Tool
		toolset string
		check   func(t *testing.T, at *agentguard.Tool)
	}{
		{"function tool", lookup, "adk", func(t *testing.T, at *agentguard.Tool) {
			var in struct {
				Type       string
				Properties map[string]struct{ Type string }
			}
			if err := json.Unmarshal(at.InputSchema, &in); err != nil || in.Type != "object" || in.Properties["order"].Type != "string" {
				t.Errorf("input schema %s", at.InputSchema)
			}
			if !strings.Contains(string(at.OutputSchema), `"status"`) {
				t.Errorf("output schema %s", at.OutputSchema)
			}
			if len(at.Credentials) != 1 || at.Credentials[0].Name != "api" {
				t.Errorf("credentials %+v, want the Spec's", at.Credentials)
			}
		}},
		{"long-running", long, "adk", func(t *testing.T, at *agentguard.Tool) {
			if !slices.Contains(at.Labels, adkguard.LabelLongRunning) || !strings.Contains(at.Description, "long-running") {
				t.Errorf("labels %v, description %q", at.Labels, at.Description)
			}
		}},
		{"genai schema", typedTool{}, "math", func(t *testing.T, at *agentguard.Tool) {
			if got := string(at.InputSchema); got != `{"properties":{"n":{"type":"integer"}},"required":["n"],"type":"object"}` {
				t.Errorf("input schema %s", got)
			}
			if at.Description != "Count things." || at.Risk != agentguard.RiskHigh {
				t.Errorf("description %q risk %v", at.Description, at.Risk)
			}
		}},
		{"wrapped toolset", wrapped[0], "billing", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, err := h.ag.Describe(tc.tool)
			if err != nil {
				t.Fatal(err)
			}
			if at.Name != tc.tool.Name() || at.Toolset != tc.toolset {
				t.Errorf("described %q of toolset %q, want %q of %q", at.Name, at.Toolset, tc.tool.Name(), tc.toolset)
			}
			if tc.check != nil {
				tc.check(t, at)
			}
		})
	}
	// The descriptions make a Cedar schema.
	var all []*agentguard.Tool
	for _, tl := range []tool.Tool{lookup, long, typedTool{}} {
		at, err := h.ag.Describe(tl)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, at)
	}
	if _, err := agentguard.PolicySchema(all...); err != nil {
		t.Errorf("PolicySchema: %v", err)
	}
}

// A toolset's tools are wrapped by Configure: they run with the task's
// credential, as tools of the toolset's name.
func TestToolsetCall(t *testing.T) {
	h := newHarness(t, shopRules(), nil)
	log := newToolLog()
	m := &scriptedModel{steps: []step{calls(call("call-ts", "lookup_order", map[string]any{"order": "A-1"})), text("ok")}}
	ts := staticToolset{name: "billing", tools: shopTools(t, log)[:1]}
	r := h.runner(t, h.agent(t, m, nil, func(c *llmagent.Config) { c.Toolsets = []tool.Toolset{ts} }))
	ctx, _ := h.task(t)
	evs := run(t, ctx, r, h.session(t), userText("Where is A-1?"))
	if log.ran("lookup_order") != 1 || log.sawCredential("lookup_order") != 1 {
		t.Fatalf("runs %v, credential %v", log.runs, log.credOK)
	}
	h.expectOnce(t, "call-ts", audittest.Want{Decision: audit.Allow, Toolset: "billing"})
	h.expectNoCanary(t, m, evs)
}
