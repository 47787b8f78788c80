package main

import (
	"bytes"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/agentguard"
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
	engine, err := newEngine(set, groups, supportTools(&paymentsAPI{}))
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
		pt := tool.PolicyTool()
		pt.Toolset = "helpdesk" // the registry's, which main.go creates
		registered[tool.Name] = pt
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

var update = flag.Bool("update", false, "rewrite policies/support.cedarschema")

// TestSchemaFile checks that policies/support.cedarschema, the schema the
// quickstart's policies are validated against written out for review, is
// the one the quickstart's tools give. go test -run TestSchemaFile -update
// rewrites it.
func TestSchemaFile(t *testing.T) {
	schema, err := agentguard.PolicySchema(supportTools(&paymentsAPI{})...)
	if err != nil {
		t.Fatal(err)
	}
	const file = "policies/support.cedarschema"
	if *update {
		if err := schema.WriteFile(file); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := schema.MarshalCedar(); !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date; run go test -run TestSchemaFile -update. Want:\n%s", file, want)
	}
	// The file, parsed back, validates the policies as the generated
	// schema does.
	parsed, err := policy.ParseSchema(file, got)
	if err != nil {
		t.Fatal(err)
	}
	set, err := loadPolicies()
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(parsed); err != nil {
		t.Fatal(err)
	}
}

// TestPoliciesRejectTypos shows what validation catches: the quickstart's
// engine refuses a policy that misspells an argument or names a tool that
// does not exist, naming the policy and where it is.
func TestPoliciesRejectTypos(t *testing.T) {
	for _, tt := range []struct{ text, want string }{
		{`@id("typo") forbid (principal, action == Action::"issue_refund", resource) when { context.args.ammount > 100 };`,
			`typo.cedar:1:1: policy "typo"`},
		{`@id("typo") forbid (principal, action == Action::"issue_refunds", resource);`,
			`typo.cedar:1:1: policy "typo"`},
	} {
		set, err := policy.ParseSet("typo.cedar", tt.text)
		if err != nil {
			t.Fatal(err)
		}
		_, err = newEngine(set, nil, supportTools(&paymentsAPI{}))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("newEngine(%s) = %v, want an error naming %s", tt.text, err, tt.want)
		}
	}
}
