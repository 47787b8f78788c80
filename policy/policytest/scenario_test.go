package policytest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// testEngine is the engine of policytest's own scenario files.
func testEngine(t *testing.T) (*policy.CedarEngine, *policy.Set) {
	t.Helper()
	set, err := policy.LoadFiles("testdata/policies.cedar")
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.NewCedarEngine(set, policy.WithAgentGroups(map[string][]string{
		"spiffe://example.org/agents/support-bot": {"support"},
		"spiffe://example.org/agents/admin":       {"admin"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	return e, set
}

// TestRunFiles runs scenario files that all pass, and checks that every
// policy decided one of them.
func TestRunFiles(t *testing.T) {
	engine, set := testEngine(t)
	rep := policytest.RunFiles(t, engine, "testdata/pass/*.json")
	if n := len(rep.Results()); n != 20 {
		t.Errorf("ran %d scenarios, want 20", n)
	}
	rep.RequireCoverage(t, set)
}

// TestRun runs scenarios built in Go.
func TestRun(t *testing.T) {
	engine, _ := testEngine(t)
	rep := policytest.Run(t, engine, policytest.Scenario{
		Name: "read a ticket",
		Request: policy.Request{
			Agent: identity.MustParse("spiffe://example.org/agents/support-bot"),
			Tool:  policy.Tool{Name: "read_ticket"},
			Args:  json.RawMessage(`{}`),
		},
		Expect: policytest.Expect{Decision: policytest.WantAllow, Policies: []string{"support-read"}},
	})
	if got := rep.Deciding(); !slices.Equal(got, []string{"support-read"}) {
		t.Errorf("Deciding() = %v", got)
	}
}

// TestCheckMismatches checks the failure message of each kind of wrong
// expectation.
func TestCheckMismatches(t *testing.T) {
	engine, _ := testEngine(t)
	f, err := policytest.LoadScenarios("testdata/fail/mismatch.json")
	if err != nil {
		t.Fatal(err)
	}
	const file = "testdata/fail/mismatch.json"
	want := map[string][]string{
		"wrong decision": {
			file + `:10: "wrong decision": got deny by [refund-limit] ("refunds over 100 need a human"), want allow by [support-refunds]`,
		},
		"wrong policies": {
			file + `:16: "wrong policies": got allow by [support-read], want allow by [lookup-read, support-read]`,
		},
		"deny by no policy expected": {
			file + `:21: "deny by no policy expected": got allow by [support-read], want deny by no policy`,
		},
		"wrong reason": {
			file + `:26: "wrong reason": reason "refunds over 100 need a human" does not contain "manager"; got deny by [refund-limit] ("refunds over 100 need a human")`,
		},
		"wrong obligations": {
			file + `:32: "wrong obligations": got obligations [approval="two-person" from support-refunds], want []; got allow by [support-refunds] with obligations [approval="two-person" from support-refunds]`,
		},
		"obligation from another policy": {
			file + `:38: "obligation from another policy": got obligations [approval="two-person" from support-refunds], want [approval="two-person" from refund-limit]`,
		},
		"unexpected evaluation errors": {
			file + `:44: "unexpected evaluation errors": got evaluation errors (which deny): [fragile: record does not have the attribute ` + "`order_id`" + `]; ` +
				`set expect.errors if they are intended; got deny by [fragile] ("policy evaluation error in fragile") with evaluation errors [fragile: record does not have the attribute ` + "`order_id`" + `]`,
		},
		"missing evaluation errors": {
			file + `:49: "missing evaluation errors": want evaluation errors, got none; got deny by no policy ("no policy permits this call")`,
		},
		"everything but the decision wrong": {
			file + `:55: "everything but the decision wrong": got allow by [support-refunds] with obligations [approval="two-person" from support-refunds], want allow by [refund-limit]`,
			`"everything but the decision wrong": reason "" does not contain "human"`,
			`"everything but the decision wrong": got obligations [approval="two-person" from support-refunds], want []`,
		},
	}
	if len(f.Scenarios) != len(want) {
		t.Fatalf("file has %d scenarios, test expects %d", len(f.Scenarios), len(want))
	}
	for _, sc := range f.Scenarios {
		res := policytest.Check(context.Background(), engine, sc)
		w := want[sc.Name]
		if len(res.Failures) != len(w) {
			t.Errorf("%q: %d failures, want %d: %q", sc.Name, len(res.Failures), len(w), res.Failures)
			continue
		}
		if res.Passed() {
			t.Errorf("%q passed", sc.Name)
			continue
		}
		all := strings.Join(res.Failures, "\n")
		for _, s := range w {
			if !strings.Contains(all, s) {
				t.Errorf("%q: failures\n%s\nlack\n%s", sc.Name, all, s)
			}
		}
	}
}

// TestCheckEngineError: an engine that cannot decide fails the scenario,
// whatever it expected.
func TestCheckEngineError(t *testing.T) {
	broken := policy.EngineFunc(func(context.Context, *policy.Request) (policy.Decision, error) {
		return policy.Decision{}, errors.New("policy store unreachable")
	})
	f, err := policytest.ParseScenarios("x.json", []byte(`{
  "tools": {"t": {}},
  "scenarios": [{"name": "n", "principal": "spiffe://example.org/a", "tool": "t", "expect": {"decision": "deny"}}]
}`))
	if err != nil {
		t.Fatal(err)
	}
	res := policytest.Check(context.Background(), broken, f.Scenarios[0])
	want := `x.json:3: "n": the engine could not decide (the guard denies such a call): policy store unreachable; want deny`
	if len(res.Failures) != 1 || res.Failures[0] != want || res.Err == nil {
		t.Errorf("failures = %q, err = %v; want %q", res.Failures, res.Err, want)
	}
}

// TestCheckNoDecision: a scenario built in Go without an expected decision
// fails rather than pass for any decision.
func TestCheckNoDecision(t *testing.T) {
	res := policytest.Check(context.Background(), policytest.AllowAll(), policytest.Scenario{Name: "n"})
	if len(res.Failures) != 1 || !strings.Contains(res.Failures[0], `"n": expected decision is "", want "allow" or "deny"`) {
		t.Errorf("failures = %q", res.Failures)
	}
}

// TestParseRequest checks the request a scenario becomes: defaults, task
// merging, canonical arguments, time, chain and tools.
func TestParseRequest(t *testing.T) {
	f, err := policytest.ParseScenarios("x.json", []byte(`{
  "tools": {"t": {"toolset": "ts", "risk": "critical", "labels": ["b", "a"], "read_only": true, "destructive": true, "idempotent": true, "open_world": true, "description": "d"}},
  "defaults": {
    "principal": "spiffe://example.org/a",
    "chain": ["spiffe://example.org/root"],
    "task": {"id": "t1", "purpose": "p", "sensitivity": "confidential", "labels": ["y", "x", "x"], "on_behalf_of": "user:u", "calls": 3},
    "time": "2026-03-01T09:00:00+01:00"
  },
  "scenarios": [
    {"name": "defaults", "tool": "t", "args": {"b": 1, "a": [2.50, "\u00e9"]}, "expect": {"decision": "allow"}},
    {"name": "overrides", "principal": "spiffe://example.org/b", "chain": [], "tool": "t",
     "task": {"sensitivity": 0, "taint": ["pii", "pii", "card"], "tools_used": ["z", "a"]},
     "approval": {"granted": true, "approvers": ["alice"]}, "time": "2026-05-05T05:05:05Z", "call_id": "c-9",
     "expect": {"decision": "deny"}},
    {"name": "delegation", "action": "delegate", "delegatee": "spiffe://example.org/sub", "expect": {"decision": "deny"}},
    {"name": "listing", "tool": "t", "listing": true, "expect": {"decision": "deny"}}
  ]
}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Scenarios) != 4 {
		t.Fatalf("%d scenarios", len(f.Scenarios))
	}
	tool := policy.Tool{Name: "t", Toolset: "ts", Description: "d", Risk: policy.RiskCritical, Labels: []string{"b", "a"},
		ReadOnly: true, Destructive: true, Idempotent: true, OpenWorld: true}
	if got := f.Tools["t"]; !equalTool(got, tool) {
		t.Errorf("tool = %+v, want %+v", got, tool)
	}

	d := f.Scenarios[0]
	r := d.Request
	if d.File != "x.json" || d.Line != 10 {
		t.Errorf("place = %s:%d, want x.json:10", d.File, d.Line)
	}
	if got := r.Agent.String(); got != "spiffe://example.org/root > spiffe://example.org/a" {
		t.Errorf("agent = %s", got)
	}
	if string(r.Args) != `{"a":[2.50,"é"],"b":1}` {
		t.Errorf("args = %s, want canonical form", r.Args)
	}
	wantTask := policy.Task{ID: "t1", Purpose: "p", Sensitivity: policy.Confidential, Labels: []string{"x", "y"}, OnBehalfOf: "user:u", Calls: 3}
	if !equalTask(r.Task, wantTask) {
		t.Errorf("task = %+v, want %+v", r.Task, wantTask)
	}
	if want := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC); !r.Time.Equal(want) {
		t.Errorf("time = %v, want %v", r.Time, want)
	}
	if r.CallID != "scenario-1" || r.Action != "" || r.Listing || r.Approval.Granted || !equalTool(r.Tool, tool) {
		t.Errorf("request = %+v", r)
	}

	r = f.Scenarios[1].Request
	if got := r.Agent.String(); got != "spiffe://example.org/b" {
		t.Errorf("agent = %s, want no chain", got)
	}
	wantTask = policy.Task{ID: "t1", Purpose: "p", Sensitivity: policy.Public, Labels: []string{"x", "y"}, OnBehalfOf: "user:u", Calls: 3,
		ToolsUsed: []string{"a", "z"}, Taint: []string{"card", "pii"}}
	if !equalTask(r.Task, wantTask) {
		t.Errorf("task = %+v, want %+v", r.Task, wantTask)
	}
	if !r.Approval.Granted || !slices.Equal(r.Approval.Approvers, []string{"alice"}) || r.CallID != "c-9" ||
		!r.Time.Equal(time.Date(2026, 5, 5, 5, 5, 5, 0, time.UTC)) || string(r.Args) != "{}" {
		t.Errorf("request = %+v", r)
	}

	r = f.Scenarios[2].Request
	if r.Action != policy.ActionDelegate || r.Delegatee.String() != "spiffe://example.org/sub" || r.Tool.Name != "" || string(r.Args) != "{}" {
		t.Errorf("delegation request = %+v", r)
	}
	r = f.Scenarios[3].Request
	if !r.Listing || r.Args != nil {
		t.Errorf("listing request = %+v", r)
	}
}

// TestDefaultTime: without a time, every scenario runs at one fixed time.
func TestDefaultTime(t *testing.T) {
	f, err := policytest.ParseScenarios("x.json", []byte(`{"tools": {"t": {}},
  "scenarios": [{"name": "n", "principal": "spiffe://example.org/a", "tool": "t", "expect": {"decision": "deny"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Scenarios[0].Request.Time; !got.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("time = %v", got)
	}
}

func equalTool(a, b policy.Tool) bool {
	return a.Name == b.Name && a.Toolset == b.Toolset && a.Description == b.Description && a.Risk == b.Risk &&
		slices.Equal(a.Labels, b.Labels) && a.ReadOnly == b.ReadOnly && a.Destructive == b.Destructive &&
		a.Idempotent == b.Idempotent && a.OpenWorld == b.OpenWorld
}

func equalTask(a, b policy.Task) bool {
	return a.ID == b.ID && a.Purpose == b.Purpose && a.Sensitivity == b.Sensitivity && slices.Equal(a.Labels, b.Labels) &&
		a.OnBehalfOf == b.OnBehalfOf && a.Calls == b.Calls && slices.Equal(a.ToolsUsed, b.ToolsUsed) && slices.Equal(a.Taint, b.Taint)
}

// TestParseErrors checks that each mistake in a file is an error that names
// the file, the line and the scenario or tool.
func TestParseErrors(t *testing.T) {
	const head = `{"tools": {"issue_refund": {}, "read_ticket": {}}, "defaults": {"principal": "spiffe://example.org/a"}, "scenarios": [`
	scenario := func(s string) string { return head + "\n" + s + "\n]}" }
	for _, tc := range []struct {
		name, file, want string
	}{
		{"bad JSON", "{\n  \"scenarios\": [\n    {\"name\": \"a\" \"tool\": \"t\"}\n  ]\n}",
			`x.json:3:18: invalid character '"' after object key:value pair`},
		{"truncated", `{"scenarios": [`, `x.json:1:15: unexpected end of JSON input`},
		{"not an object", `[]`, `x.json:1:1: a scenario file is a JSON object with "scenarios"`},
		{"unknown top-level field", "{\n  \"scenaros\": []\n}", `x.json:2:3: unknown field "scenaros" (want description, tools, defaults or scenarios)`},
		{"scenarios not an array", `{"scenarios": {}}`, `x.json:1:15: want an array of scenarios`},
		{"no scenarios", `{"scenarios": []}`, `x.json: the file has no scenarios`},
		{"unknown scenario field", scenario(`  {"name": "a", "tool": "read_ticket", "expct": {"decision": "allow"}}`),
			`x.json:2:3: scenario "a": unknown field "expct"`},
		{"unknown expect field", scenario(`{"name": "a", "tool": "read_ticket", "expect": {"decision": "allow", "policis": []}}`),
			`x.json:2:1: scenario "a": unknown field "policis"`},
		{"unknown tool field", `{"tools": {"t": {"rsk": 1}}, "scenarios": [{}]}`, `x.json:1:17: tool "t": unknown field "rsk"`},
		{"unknown defaults field", `{"defaults": {"agent": "x"}, "scenarios": [{}]}`, `x.json:1:14: defaults: unknown field "agent"`},
		{"unknown task field", scenario(`{"name": "a", "tool": "read_ticket", "task": {"tainted": ["pii"]}, "expect": {"decision": "allow"}}`),
			`scenario "a": unknown field "tainted"`},
		{"wrong type", scenario(`{"name": "a", "tool": "read_ticket", "listing": "yes", "expect": {"decision": "allow"}}`),
			`x.json:2:53: scenario "a": field "listing": want true or false, got JSON string`},
		{"scenario not an object", scenario(`"a"`), `x.json:2:3: scenario 1: want an object, got JSON string`},
		{"allow with errors", scenario(`{"name": "a", "tool": "read_ticket", "expect": {"decision": "allow", "errors": true}}`),
			`scenario "a": expect.errors with an allow can never pass: an evaluation error denies`},
		{"unnamed scenario", scenario(`{"tool": "read_ticket", "expect": {"decision": "allow"}}`), `x.json:2:1: scenario 1: a scenario needs a name`},
		{"second scenario unnamed", scenario(`{"name": "a", "tool": "read_ticket", "expect": {"decision": "allow"}},` + "\n" + `{"tool": "read_ticket"}`),
			`x.json:3:1: scenario 2: a scenario needs a name`},
		{"duplicate names", scenario(`{"name": "a", "tool": "read_ticket", "expect": {"decision": "allow"}},` + "\n" + `{"name": "a", "tool": "read_ticket", "expect": {"decision": "allow"}}`),
			`x.json:3:1: scenario "a": another scenario at line 2 has the same name`},
		{"repeated key", scenario(`{"name": "a", "tool": "read_ticket", "tool": "issue_refund", "expect": {"decision": "allow"}}`),
			`scenario "a": repeated object key "tool"`},
		{"repeated key in defaults", `{"defaults": {"principal": "spiffe://example.org/a", "principal": "spiffe://example.org/b"}, "scenarios": [{}]}`,
			`defaults: repeated object key "principal"`},
		{"unknown tool", scenario(`{"name": "a", "tool": "isue_refund", "expect": {"decision": "allow"}}`),
			`x.json:2:1: scenario "a": tool "isue_refund" is not declared in "tools" (declared: issue_refund, read_ticket)`},
		{"no tool", scenario(`{"name": "a", "expect": {"decision": "allow"}}`), `scenario "a": no tool: give "tool", or "action" for a governance action`},
		{"missing decision", scenario(`{"name": "a", "tool": "read_ticket", "expect": {"policies": ["p"]}}`),
			`x.json:2:1: scenario "a": no expected decision: give "expect": {"decision": "allow"} or "deny"`},
		{"missing expect", scenario(`{"name": "a", "tool": "read_ticket"}`), `scenario "a": no expected decision`},
		{"bad decision", scenario(`{"name": "a", "tool": "read_ticket", "expect": {"decision": "permit"}}`),
			`scenario "a": expected decision "permit": want "allow" or "deny"`},
		{"bad sensitivity name", scenario(`{"name": "a", "tool": "read_ticket", "task": {"sensitivity": "secret"}, "expect": {"decision": "allow"}}`),
			`scenario "a": sensitivity "secret": want one of public, internal, confidential, restricted, or 0 to 3`},
		{"bad sensitivity number", scenario(`{"name": "a", "tool": "read_ticket", "task": {"sensitivity": 4}, "expect": {"decision": "allow"}}`),
			`scenario "a": sensitivity 4: want one of public`},
		{"bad risk", `{"tools": {"t": {"risk": "extreme"}}, "scenarios": [{}]}`, `tool "t": risk "extreme": want one of low, medium, high, critical, or 0 to 3`},
		{"reserved tool name", `{"tools": {"delegate": {}}, "scenarios": [{}]}`, `tool "delegate": a tool may not take the name of a governance action`},
		{"no principal", `{"tools": {"t": {}}, "scenarios": [{"name": "a", "tool": "t", "expect": {"decision": "allow"}}]}`,
			`scenario "a": no principal: give one in the scenario or in defaults`},
		{"bad principal", scenario(`{"name": "a", "principal": "agent-7", "tool": "read_ticket", "expect": {"decision": "allow"}}`),
			`scenario "a": identity: "agent-7": scheme is missing or invalid`},
		{"bad chain", scenario(`{"name": "a", "chain": ["root"], "tool": "read_ticket", "expect": {"decision": "allow"}}`),
			`scenario "a": identity: chain "root"`},
		{"args not an object", scenario(`{"name": "a", "tool": "read_ticket", "args": [1], "expect": {"decision": "allow"}}`),
			`scenario "a": args must be a JSON object`},
		{"delegation without delegatee", scenario(`{"name": "a", "action": "delegate", "expect": {"decision": "allow"}}`),
			`scenario "a": a delegation needs a "delegatee"`},
		{"delegation with a tool", scenario(`{"name": "a", "action": "delegate", "tool": "read_ticket", "expect": {"decision": "allow"}}`),
			`scenario "a": a delegation names the agent in "delegatee", not a tool`},
		{"delegation with args", scenario(`{"name": "a", "action": "delegate", "delegatee": "spiffe://example.org/b", "args": {}, "expect": {"decision": "allow"}}`),
			`scenario "a": a delegation has no arguments`},
		{"bad delegatee", scenario(`{"name": "a", "action": "delegate", "delegatee": "b", "expect": {"decision": "allow"}}`),
			`scenario "a": delegatee "b": scheme is missing or invalid`},
		{"delegatee on a tool call", scenario(`{"name": "a", "tool": "read_ticket", "delegatee": "spiffe://example.org/b", "expect": {"decision": "allow"}}`),
			`scenario "a": "delegatee" is only for "action": "delegate"`},
		{"call_tool action", scenario(`{"name": "a", "action": "call_tool", "tool": "read_ticket", "expect": {"decision": "allow"}}`),
			`scenario "a": "call_tool" is the group of every tool call`},
		{"unknown action", scenario(`{"name": "a", "action": "escalate", "tool": "read_ticket", "expect": {"decision": "allow"}}`),
			`scenario "a": unknown action "escalate" (want delegate, change_toolset or change_prompt; leave it out for a tool call)`},
		{"governance action without tool", scenario(`{"name": "a", "action": "change_prompt", "expect": {"decision": "allow"}}`),
			`scenario "a": action "change_prompt" needs the tool it concerns`},
		{"listing with args", scenario(`{"name": "a", "tool": "read_ticket", "listing": true, "args": {"id": 1}, "expect": {"decision": "allow"}}`),
			`scenario "a": a listing ignores arguments and approval: leave them out`},
		{"listing a delegation", scenario(`{"name": "a", "action": "delegate", "delegatee": "spiffe://example.org/b", "listing": true, "expect": {"decision": "allow"}}`),
			`scenario "a": a listing asks about a tool call, not a governance action`},
		{"bad time", scenario(`{"name": "a", "tool": "read_ticket", "time": "yesterday", "expect": {"decision": "allow"}}`),
			`scenario "a": time "yesterday" is not RFC 3339`},
		{"bad default time", `{"defaults": {"time": "2026-01-01"}, "scenarios": [{}]}`, `x.json:1:14: defaults: time "2026-01-01" is not RFC 3339`},
		{"nameless obligation", scenario(`{"name": "a", "tool": "read_ticket", "expect": {"decision": "allow", "obligations": [{"value": "x"}]}}`),
			`scenario "a": an expected obligation needs a name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := policytest.ParseScenarios("x.json", []byte(tc.file))
			if err == nil {
				t.Fatalf("no error; file %+v", f)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n%v\nlacks\n%s", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "policytest: x.json") {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

func TestLoadFiles(t *testing.T) {
	files, err := policytest.LoadFiles("testdata/pass/*.json", "testdata/fail/*.json", "testdata/pass/support.json")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if want := []string{"testdata/pass/support.json", "testdata/fail/mismatch.json"}; !slices.Equal(names, want) {
		t.Errorf("loaded %q, want %q", names, want)
	}

	for _, tc := range []struct {
		patterns []string
		want     string
	}{
		{[]string{"testdata/pass/*.json", "testdata/nope/*.json"}, `policytest: no scenario file matches "testdata/nope/*.json"`},
		{[]string{"testdata/[.json"}, `policytest: pattern "testdata/[.json": syntax error in pattern`},
		{nil, "policytest: no scenario file pattern given"},
		{[]string{"testdata/policies.cedar"}, "policytest: testdata/policies.cedar:1:1: invalid character '/'"},
	} {
		if _, err := policytest.LoadFiles(tc.patterns...); err == nil || err.Error() != tc.want && !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("LoadFiles(%q) = %v, want %s", tc.patterns, err, tc.want)
		}
	}
	if _, err := policytest.LoadScenarios("testdata/missing.json"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadScenarios(missing) = %v", err)
	}
}

// fakeTB records what a helper reports, without failing the test.
type fakeTB struct {
	testing.TB
	errors []string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func TestRequireCoverage(t *testing.T) {
	engine, set := testEngine(t)
	f, err := policytest.LoadScenarios("testdata/pass/support.json")
	if err != nil {
		t.Fatal(err)
	}
	// Leave out the scenarios that the fragile policy and the freeze decide.
	var some []policytest.Scenario
	for _, sc := range withoutFreeze(f.Scenarios) {
		if sc.Request.Tool.Name != "lookup_order" {
			some = append(some, sc)
		}
	}
	rep := policytest.Run(t, engine, some...)
	if got, want := rep.Uncovered(set.IDs()), []string{"christmas-freeze", "fragile"}; !slices.Equal(got, want) {
		t.Errorf("Uncovered = %q, want %q", got, want)
	}
	var tb fakeTB
	rep.RequireCoverage(&tb, set)
	want := "policytest: 2 of 11 policies decided no scenario: christmas-freeze, fragile; add a scenario that each decides (a permit that allows, a forbid that denies)"
	if len(tb.errors) != 1 || tb.errors[0] != want {
		t.Errorf("RequireCoverage reported %q, want %q", tb.errors, want)
	}

	// A policy that fails to evaluate does not count as covered.
	var erring []policytest.Scenario
	for _, sc := range f.Scenarios {
		if sc.Request.Tool.Name == "lookup_order" && sc.Expect.Errors {
			erring = append(erring, sc)
		}
	}
	rep = policytest.Run(t, engine, erring...)
	if got := rep.Deciding(); len(got) != 0 {
		t.Errorf("Deciding() = %q, want none", got)
	}
}

// TestRunFilesReports runs RunFiles in a child test process on files with
// wrong expectations and bad files, and checks what go test prints: a
// subtest per file and scenario, each failure message, and the passing
// scenarios passing.
func TestRunFilesReports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child test process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildRunFiles$", "-test.v")
	cmd.Env = append(os.Environ(), "POLICYTEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child test: err = %v, want a failure\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{
		"--- FAIL: TestChildRunFiles/mismatch.json/wrong_decision",
		`mismatch.json:10: "wrong decision": got deny by [refund-limit] ("refunds over 100 need a human"), want allow by [support-refunds]`,
		"--- FAIL: TestChildRunFiles/mismatch.json/everything_but_the_decision_wrong",
		"--- PASS: TestChildRunFiles/support.json/read_a_ticket",
		"--- PASS: TestChildRunFiles/support.json/delegate_to_the_lookup_agent",
		"--- FAIL: TestChildRunFiles/bad.json",
		`bad.json:4:5: scenario "typo": unknown field "expcet"`,
		"policytest: 1 of 11 policies decided no scenario: christmas-freeze",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("child output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(s)
	}
}

// TestChildRunFiles is run by TestRunFilesReports; it fails by design.
func TestChildRunFiles(t *testing.T) {
	if os.Getenv("POLICYTEST_CHILD") != "1" {
		t.Skip("run by TestRunFilesReports")
	}
	dir := t.TempDir()
	bad := "{\n  \"tools\": {\"t\": {}},\n  \"scenarios\": [\n    {\"name\": \"typo\", \"tool\": \"t\",\n      \"expcet\": {\"decision\": \"allow\"}}\n  ]\n}\n"
	if err := os.WriteFile(dir+"/bad.json", []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	engine, set := testEngine(t)
	policytest.RunFiles(t, engine, "testdata/fail/*.json", "testdata/pass/*.json", dir+"/*.json")

	// Coverage of the passing scenarios, less those of the freeze.
	f, err := policytest.LoadScenarios("testdata/pass/support.json")
	if err != nil {
		t.Fatal(err)
	}
	policytest.Run(t, engine, withoutFreeze(f.Scenarios)...).RequireCoverage(t, set)
}

func withoutFreeze(scs []policytest.Scenario) []policytest.Scenario {
	var out []policytest.Scenario
	for _, sc := range scs {
		if !strings.Contains(sc.Name, "Christmas") {
			out = append(out, sc)
		}
	}
	return out
}
