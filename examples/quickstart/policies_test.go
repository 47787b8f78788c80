package main

import (
	"slices"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

const scenarioFiles = "policies/*_test.json"

// TestPolicies asks the quickstart's engine, with its policies and group
// configuration, the questions of the scenario files, and fails if some
// policy decides none of them: every policy is tested.
func TestPolicies(t *testing.T) {
	set, err := loadPolicies()
	if err != nil {
		t.Fatal(err)
	}
	groups := agentGroups(spiffeid.RequireFromString("spiffe://example.org/agent/support-bot"))
	// The quickstart puts no agent in the data team. One is added here so
	// that a scenario can show what data-team-export allows.
	groups["spiffe://example.org/agent/analyst"] = []string{"data-team"}
	engine, err := newEngine(set, groups)
	if err != nil {
		t.Fatal(err)
	}
	policytest.RunFiles(t, engine, scenarioFiles).RequireCoverage(t, set)
}

// TestScenarioTools checks that the scenario files declare the tools as the
// quickstart registers them, as policy sees them, so that the scenarios ask
// about the tools the agent really has.
func TestScenarioTools(t *testing.T) {
	files, err := policytest.LoadFiles(scenarioFiles)
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]policy.Tool{}
	for _, tool := range supportTools(&paymentsAPI{}) {
		registered[tool.Name] = policy.Tool{
			Name:        tool.Name,
			Toolset:     "helpdesk", // the registry's, which main.go creates
			ReadOnly:    tool.Annotations.ReadOnly,
			Destructive: tool.Annotations.Destructive,
			Idempotent:  tool.Annotations.Idempotent,
			OpenWorld:   tool.Annotations.OpenWorld,
			Risk:        tool.Risk,
			Labels:      tool.Labels,
		}
	}
	for _, f := range files {
		for name, declared := range f.Tools {
			want, ok := registered[name]
			switch {
			case !ok:
				t.Errorf("%s declares tool %q, which the quickstart does not register", f.Name, name)
			case declared.Toolset != want.Toolset || declared.ReadOnly != want.ReadOnly ||
				declared.Destructive != want.Destructive || declared.Idempotent != want.Idempotent ||
				declared.OpenWorld != want.OpenWorld || declared.Risk != want.Risk || !slices.Equal(declared.Labels, want.Labels):
				t.Errorf("%s declares tool %q as\n%+v\nthe quickstart registers it as\n%+v", f.Name, name, declared, want)
			}
		}
		for name := range registered {
			if _, ok := f.Tools[name]; !ok {
				t.Errorf("%s does not declare tool %q", f.Name, name)
			}
		}
	}
}
