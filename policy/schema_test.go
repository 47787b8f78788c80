package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/internal/canonical"
)

var updateSchemaGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// quickstartTools are the tools of examples/quickstart, with their input
// schemas as the quickstart declares them.
func quickstartTools() []Tool {
	return []Tool{
		{
			Name: "read_ticket", Description: "Read a support ticket by ID.", ReadOnly: true, Idempotent: true,
			InputSchema: json.RawMessage(`{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}`),
		},
		{
			Name: "issue_refund", Description: "Refund an order.", Destructive: true, Risk: RiskHigh,
			InputSchema: json.RawMessage(`{"type":"object","properties":{"order":{"type":"string"},"amount":{"type":"integer"}},"required":["order","amount"]}`),
		},
		{
			Name: "send_email", Description: "Send an email.", OpenWorld: true,
			InputSchema: json.RawMessage(`{"type":"object","properties":{"to":{"type":"string"},"body":{"type":"string"}},"required":["to","body"]}`),
		},
		{Name: "export_customers", Description: "Export every customer record.", ReadOnly: true, OpenWorld: true, Risk: RiskCritical},
	}
}

func quickstartSchema(t *testing.T) *Schema {
	t.Helper()
	s, err := NewSchema(quickstartTools()...)
	if err != nil {
		t.Fatalf("NewSchema: %v", err)
	}
	return s
}

func TestQuickstartPoliciesValidate(t *testing.T) {
	s := quickstartSchema(t)
	if w := s.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q, want none", w)
	}
	set, err := LoadFiles("../examples/quickstart/policies/support.cedar")
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(s); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if err := set.Validate(BaseSchema()); err == nil {
		t.Error("the quickstart policies validate against the schema without tools")
	}
}

func TestQuickstartSchemaGolden(t *testing.T) {
	got := quickstartSchema(t).MarshalCedar()
	path := filepath.Join("testdata", "quickstart.cedarschema")
	if *updateSchemaGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := quickstartSchema(t).WriteFile(path); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestQuickstartSchemaGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("MarshalCedar differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

func TestMarshalCedarDeterministicAndRoundTrips(t *testing.T) {
	tools := append(quickstartTools(), Tool{
		Name: "github/create-issue",
		InputSchema: json.RawMessage(`{"type":"object","properties":{
			"my-field":{"type":"number","description":"\n  a \"quoted\" line\u2014\n\nmore"},
			"":{"type":"string"}, "if":{"type":"boolean"},
			"labels":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}},
			"when":{"type":"string","format":"date-time"}},"required":["my-field"]}`),
	})
	a, err := NewSchema(tools...)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		rev := make([]Tool, len(tools))
		for j, tl := range tools {
			rev[(j+i)%len(tools)] = tl
		}
		b, err := NewSchema(rev...)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.MarshalCedar(), b.MarshalCedar()) {
			t.Fatalf("MarshalCedar depends on the tools' order:\n%s\n---\n%s", a.MarshalCedar(), b.MarshalCedar())
		}
	}
	text := a.MarshalCedar()
	for _, want := range []string{`action "github/create-issue" in call_tool`, `"my-field": decimal`, `""?: String`, `"if"?: Bool`, `@doc("a \"quoted\" line\u{2014}")`, `labels?: Set<{`, "time: datetime"} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("MarshalCedar lacks %q:\n%s", want, text)
		}
	}

	p, err := ParseSchema("written.cedarschema", text)
	if err != nil {
		t.Fatalf("ParseSchema(MarshalCedar()): %v", err)
	}
	if w := p.Warnings(); len(w) != 0 {
		t.Errorf("parsed schema warnings %q, want none", w)
	}
	// The parsed schema has the same declarations; only the generated
	// header comment is gone.
	body := text[bytes.Index(text, []byte("\n\n"))+2:]
	if got := p.MarshalCedar(); !bytes.Equal(got, body) {
		t.Errorf("re-marshalled parsed schema differs:\n%s\n---\n%s", got, body)
	}
	if !sameResolvedSchema(a, p) {
		t.Error("parsed schema resolves differently")
	}
	// And it converts arguments the same way.
	args := `{"my-field": 5, "": "x", "labels": [{"name": "bug"}], "extra": 1}`
	va, err := a.args("github/create-issue", parseArgs(t, args))
	if err != nil {
		t.Fatal(err)
	}
	vp, err := p.args("github/create-issue", parseArgs(t, args))
	if err != nil {
		t.Fatal(err)
	}
	if !va.Equal(vp) {
		t.Errorf("args differ: %v vs %v", va, vp)
	}
}

func sameResolvedSchema(a, b *Schema) bool {
	ra, rb := a.resolved, b.resolved
	if len(ra.Entities) != len(rb.Entities) || len(ra.Actions) != len(rb.Actions) {
		return false
	}
	for k, ea := range ra.Entities {
		eb, ok := rb.Entities[k]
		if !ok || !sameResolved(shapeOrEmpty(ea.Shape), shapeOrEmpty(eb.Shape)) || !sameSet(ea.ParentTypes, eb.ParentTypes) {
			return false
		}
	}
	for k, aa := range ra.Actions {
		ab, ok := rb.Actions[k]
		if !ok || (aa.AppliesTo == nil) != (ab.AppliesTo == nil) || !aa.Entity.Parents.Equal(ab.Entity.Parents) {
			return false
		}
		if aa.AppliesTo != nil && (!sameResolved(aa.AppliesTo.Context, ab.AppliesTo.Context) ||
			!sameSet(aa.AppliesTo.Principals, ab.AppliesTo.Principals) || !sameSet(aa.AppliesTo.Resources, ab.AppliesTo.Resources)) {
			return false
		}
	}
	return true
}

func TestWriteFile(t *testing.T) {
	s := quickstartSchema(t)
	path := filepath.Join(t.TempDir(), "model.cedarschema")
	if err := s.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, s.MarshalCedar()) {
		t.Error("WriteFile wrote something other than MarshalCedar")
	}
	if err := s.WriteFile(filepath.Join(t.TempDir(), "no", "such", "dir", "x")); err == nil {
		t.Error("WriteFile to a missing directory succeeded")
	}
}

func TestValidationProblems(t *testing.T) {
	s := quickstartSchema(t)
	const doc = `@id("ok")
permit (principal in AgentGroup::"support", action == Action::"issue_refund", resource)
when { context.args.amount < 100 };

@id("typo")
forbid (principal, action == Action::"issue_refund", resource)
when { context.args.ammount > 100 };

@id("unknown-action")
permit (principal, action == Action::"sendmail", resource);

  @id("unknown-type")
  permit (principal == Agnet::"x", action, resource);

@id("wrong-type")
forbid (principal, action == Action::"send_email", resource)
when { context.args.to > 3 };

@id("unscoped-args")
forbid (principal, action, resource)
when { context.args.amount > 100 };
`
	set, err := ParseSet("rules.cedar", doc)
	if err != nil {
		t.Fatal(err)
	}
	err = set.Validate(s)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v, want a *ValidationError", err)
	}
	want := []struct{ id, pos, msg string }{
		{"typo", "rules.cedar:5:1", "attribute `ammount` in context for Action::\"issue_refund\" not found"},
		{"unknown-action", "rules.cedar:9:1", "unrecognized action `Action::\"sendmail\"`"},
		{"unknown-type", "rules.cedar:12:3", "unrecognized entity type `Agnet`"},
		{"wrong-type", "rules.cedar:15:1", "unexpected type: expected Long but saw String"},
		{"unscoped-args", "rules.cedar:19:1", "attribute `amount` in context for Action::\"send_email\" not found"},
	}
	text := err.Error()
	for _, w := range want {
		line := w.pos + `: policy "` + w.id + `": ` + w.msg
		if !strings.Contains(text, line) {
			t.Errorf("error lacks %q:\n%s", line, text)
		}
	}
	seen := map[string]bool{}
	last := 0
	for _, p := range ve.Problems {
		seen[p.PolicyID] = true
		if p.PolicyID == "ok" {
			t.Errorf("valid policy reported: %+v", p)
		}
		if p.Position.Filename != "rules.cedar" || p.Position.Line < last {
			t.Errorf("problem out of order or without file: %+v", p)
		}
		last = p.Position.Line
		if strings.Contains(p.Message, "for policy") {
			t.Errorf("message repeats the policy: %q", p.Message)
		}
	}
	for _, w := range want {
		if !seen[w.id] {
			t.Errorf("no problem for %q", w.id)
		}
	}
	if !strings.HasPrefix(text, "policy: ") {
		t.Errorf("error %q lacks the package prefix", text)
	}
	// The same error is deterministic.
	if again := set.Validate(s).Error(); again != text {
		t.Errorf("Validate is not deterministic:\n%s\n---\n%s", text, again)
	}

	one := MustParseSet("one.cedar", `@id("x") permit(principal, action == Action::"read_ticket", resource) when { context.args.ID == "1" };`)
	if got := one.Validate(s).Error(); got != "policy: one.cedar:1:1: policy \"x\": attribute `ID` in context for Action::\"read_ticket\" not found" {
		t.Errorf("single problem error = %q", got)
	}
	if err := one.Validate(nil); err == nil {
		t.Error("Validate(nil) succeeded")
	}
	if err := one.Validate(&Schema{}); err == nil {
		t.Error("Validate(&Schema{}) succeeded")
	}
}

func TestValidationOfTheModel(t *testing.T) {
	// Policies over every part of the model the engine builds validate.
	s := quickstartSchema(t)
	set := MustParseSet("model.cedar", `
@id("p") permit (principal is Agent in TrustDomain::"example.org", action in Action::"call_tool", resource is Tool in Toolset::"crm")
when { principal.trust_domain == "example.org" && principal.path like "/agents/*" && principal.name != "" }
when { resource.read_only && !resource.destructive && resource.idempotent && !resource.open_world && resource.risk <= 1 && resource.labels.contains("pii") && resource.name == resource.toolset }
when { context.task.id != "" && context.task.purpose != "" && context.task.sensitivity < 2 && context.task.labels.isEmpty() && context.task.calls < 10 && context.task.tools_used.contains("read_ticket") && !context.task.taint.contains("pii") }
when { context.delegation.depth == 0 || context.delegation.chain.contains(principal) || context.delegation.on_behalf_of == "bob" }
when { context.approval.granted || context.approval.approvers.contains("alice") }
when { context.request.time > datetime("2024-01-01") && context.request.time.toTime() < duration("18h") && context.request.call_id != "" };
@id("g") permit (principal in AgentGroup::"admins", action in [Action::"change_toolset"], resource is Tool in Toolset::"crm") when { !resource.destructive };
@id("h") permit (principal, action == Action::"delegate", resource is Agent) when { resource.name == "x" && context.args == {} };
@id("pc") permit (principal, action == Action::"change_prompt", resource is Agent) when { resource == principal && context.args.change == "changed" && context.args.name == "support" && context.args.fingerprint != context.args.previous };
@id("tc") permit (principal, action == Action::"change_toolset", resource) when { context.args.change == "added" && context.args.toolset == resource.toolset && context.args.previous == "" && context.task.tool_calls == 0 && context.task.calls_last_minute < 5 };
@id("r") permit (principal, action == Action::"issue_refund", resource) when { context.args.amount <= 100 && context.args.order like "O-*" };
`)
	if err := set.Validate(s); err != nil {
		t.Error(err)
	}
}

func TestRuntimeValuesConformToSchema(t *testing.T) {
	// What the engine builds for a request has the types the schema
	// declares, so validated policies do not fail on types at run time.
	// (Arguments the schema does not declare are kept untyped, so a
	// request with them would not conform: see TestArgsConversion.)
	s := quickstartSchema(t)
	e, err := NewCedarEngine(MustParseSet("x", `@id("p") permit(principal, action, resource);`),
		WithSchema(s), WithAgentGroups(map[string][]string{"spiffe://example.org/agents/support": {"support"}}))
	if err != nil {
		t.Fatal(err)
	}
	v := validate.New(s.resolved, validate.WithStrict())
	agent := identity.MustParse("spiffe://example.org/agents/support", "spiffe://example.org/root")
	refund := quickstartTools()[1]
	refund.Toolset = "payments"
	refund.Labels = []string{"money"}
	tests := []struct {
		name string
		req  Request
	}{
		{"tool call", Request{Agent: agent, Tool: refund, Args: json.RawMessage(`{"order":"O-1","amount":5.0}`),
			Task: Task{ID: "t", Labels: []string{"a"}, ToolsUsed: []string{"read_ticket"}, Taint: []string{"pii"}}, Approval: Approval{Granted: true, Approvers: []string{"alice"}}}},
		{"tool without input schema", Request{Agent: agent, Tool: quickstartTools()[3], Args: json.RawMessage(`{}`)}},
		{"delegation", Request{Agent: agent, Action: ActionDelegate, Delegatee: spiffeid.RequireFromString("spiffe://example.org/agents/order-lookup"), Args: json.RawMessage(`{}`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.CallID, req.Time = "call-1", time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
			ents := e.entities(&req)
			ctx, err := e.contextRecord(&req, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Request(types.Request{Principal: ents.agent.UID, Action: ents.action.UID, Resource: ents.resource.UID, Context: ctx}); err != nil {
				t.Errorf("request: %v", err)
			}
			for _, ent := range []cedar.Entity{ents.agent, ents.resource} {
				if err := v.Entity(ent); err != nil {
					t.Errorf("entity %v: %v", ent.UID, err)
				}
			}
			if req.Action == "" {
				if err := v.Entity(ents.action); err != nil {
					t.Errorf("action entity: %v", err)
				}
			}
		})
	}
}

// propType maps a one-property object schema and returns the property's
// Cedar declaration ("" if left out) and the warnings.
func propType(t *testing.T, prop string, required bool, defs string) (string, []string) {
	t.Helper()
	req := ""
	if required {
		req = `,"required":["p"]`
	}
	if defs != "" {
		defs = "," + defs
	}
	raw := `{"type":"object","properties":{"p":` + prop + `}` + req + defs + `}`
	rec, warnings, err := argsType("t", json.RawMessage(raw))
	if err != nil {
		t.Fatalf("argsType(%s): %v", raw, err)
	}
	a, ok := rec["p"]
	if !ok {
		return "", warnings
	}
	opt := ""
	if a.Optional {
		opt = "?"
	}
	return "p" + opt + ": " + cedarTypeString(a.Type), warnings
}

func TestJSONSchemaMapping(t *testing.T) {
	const addrDefs = `"$defs":{"Addr":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}`
	tests := []struct {
		name     string
		prop     string
		required bool
		defs     string
		want     string
		warning  string // a fragment of the one warning, if any
	}{
		{name: "string", prop: `{"type":"string"}`, required: true, want: "p: String"},
		{name: "optional string", prop: `{"type":"string"}`, want: "p?: String"},
		{name: "string enum", prop: `{"type":"string","enum":["csv","json"]}`, required: true, want: "p: String"},
		{name: "enum without type", prop: `{"enum":["csv","json"]}`, required: true, want: "p: String"},
		{name: "integer enum without type", prop: `{"enum":[1,2]}`, required: true, want: "p: Long"},
		{name: "number enum without type", prop: `{"enum":[1,2.5]}`, required: true, want: "p: decimal"},
		{name: "const", prop: `{"const":"x"}`, required: true, want: "p: String"},
		{name: "enum with null", prop: `{"enum":["a",null]}`, required: true, want: "p?: String"},
		{name: "date-time string stays a string", prop: `{"type":"string","format":"date-time"}`, required: true, want: "p: String"},
		{name: "integer", prop: `{"type":"integer"}`, required: true, want: "p: Long"},
		{name: "number", prop: `{"type":"number"}`, required: true, want: "p: decimal"},
		{name: "integer or number", prop: `{"type":["integer","number"]}`, required: true, want: "p: decimal"},
		{name: "boolean", prop: `{"type":"boolean"}`, required: true, want: "p: Bool"},
		{name: "array", prop: `{"type":"array","items":{"type":"string"}}`, required: true, want: "p: Set<String>"},
		{name: "array of nullable", prop: `{"type":"array","items":{"type":["integer","null"]}}`, required: true, want: "p: Set<Long>"},
		{name: "array of arrays", prop: `{"type":"array","items":{"type":"array","items":{"type":"boolean"}}}`, required: true, want: "p: Set<Set<Bool>>"},
		{name: "nested object", prop: `{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a"]}`, required: true, want: "p: {a: Long, b?: String}"},
		{name: "object without properties", prop: `{"type":"object"}`, required: true, want: "p: {}"},
		{name: "array of objects", prop: `{"type":"array","items":{"type":"object","properties":{"k":{"type":"string"}}}}`, want: "p?: Set<{k?: String}>"},
		{name: "$ref to $defs", prop: `{"$ref":"#/$defs/Addr"}`, required: true, defs: addrDefs, want: "p: {city: String}"},
		{name: "$ref to definitions", prop: `{"$ref":"#/definitions/N"}`, required: true, defs: `"definitions":{"N":{"type":"integer"}}`, want: "p: Long"},
		{name: "$ref with escaped pointer", prop: `{"$ref":"#/$defs/a~1b"}`, required: true, defs: `"$defs":{"a/b":{"type":"boolean"}}`, want: "p: Bool"},
		{name: "$ref twice is not a cycle", prop: `{"type":"object","properties":{"home":{"$ref":"#/$defs/Addr"},"work":{"$ref":"#/$defs/Addr"}}}`, required: true, defs: addrDefs, want: "p: {home?: {city: String}, work?: {city: String}}"},
		{name: "nullable type list", prop: `{"type":["string","null"]}`, required: true, want: "p?: String"},
		{name: "OpenAPI nullable", prop: `{"type":"string","nullable":true}`, required: true, want: "p?: String"},
		{name: "anyOf with null (pydantic Optional)", prop: `{"anyOf":[{"type":"integer"},{"type":"null"}],"default":null}`, required: true, want: "p?: Long"},
		{name: "oneOf of one type", prop: `{"oneOf":[{"type":"string","format":"email"},{"type":"string","format":"uri"}]}`, required: true, want: "p: String"},
		{name: "allOf of objects is merged", prop: `{"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},{"properties":{"b":{"type":"integer"}}}]}`, required: true, want: "p: {a: String, b?: Long}"},
		{name: "allOf single $ref", prop: `{"allOf":[{"$ref":"#/$defs/Addr"}],"description":"home"}`, required: true, defs: addrDefs, want: "p: {city: String}"},
		{name: "type with constraint-only anyOf", prop: `{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"anyOf":[{"required":["a"]},{"required":["b"]}]}`, required: true, want: "p: {a?: String, b?: String}"},
		{name: "additionalProperties map", prop: `{"type":"object","additionalProperties":{"type":"string"}}`, required: true, want: "p: {}", warning: "args.p: additionalProperties are not typed"},
		{name: "patternProperties", prop: `{"type":"object","properties":{"a":{"type":"string"}},"patternProperties":{"^x-":{"type":"string"}}}`, required: true, want: "p: {a?: String}", warning: "args.p: patternProperties are not typed"},

		// What does not map is left out, with a warning.
		{name: "oneOf of different types", prop: `{"oneOf":[{"type":"string"},{"type":"integer"}]}`, required: true, warning: `tool "t": args.p: left out of the type: oneOf of different types (String, Long)`},
		{name: "anyOf of different types", prop: `{"anyOf":[{"type":"string"},{"type":"array","items":{"type":"string"}}]}`, warning: "anyOf of different types"},
		{name: "allOf of different types", prop: `{"allOf":[{"type":"string"},{"type":"integer"}]}`, warning: "allOf of different types"},
		{name: "allOf with conflicting attributes", prop: `{"allOf":[{"properties":{"a":{"type":"string"}}},{"properties":{"a":{"type":"integer"}}}]}`, warning: `allOf gives "a" different types`},
		{name: "type list", prop: `{"type":["string","integer"]}`, warning: "several types (integer, string)"},
		{name: "null only", prop: `{"type":"null"}`, warning: "null is the only type"},
		{name: "enum of null only", prop: `{"enum":[null]}`, warning: "enum holds only null"},
		{name: "mixed enum", prop: `{"enum":["a",1]}`, warning: "enum of mixed types"},
		{name: "enum contradicting type", prop: `{"type":"string","enum":[1,2]}`, warning: "do not match the type"},
		{name: "tuple prefixItems", prop: `{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}]}`, warning: "a tuple (prefixItems)"},
		{name: "tuple items array", prop: `{"type":"array","items":[{"type":"string"}]}`, warning: "a tuple (items is an array)"},
		{name: "array of mixed types", prop: `{"type":"array","items":{"type":["string","integer"]}}`, warning: "an array whose items do not map: several types"},
		{name: "array of anything", prop: `{"type":"array"}`, warning: "an array whose items have no type"},
		{name: "no type", prop: `{"description":"anything"}`, warning: "no type (the schema allows any value)"},
		{name: "true schema", prop: `true`, warning: "no type"},
		{name: "false schema", prop: `false`, warning: "allows no value"},
		{name: "unknown type", prop: `{"type":"date"}`, warning: `unknown type "date"`},
		{name: "remote $ref", prop: `{"$ref":"https://example.com/s.json"}`, warning: "is not local"},
		{name: "missing $ref", prop: `{"$ref":"#/$defs/Nope"}`, defs: addrDefs, warning: `"Nope" not found`},
		{name: "anchor $ref", prop: `{"$ref":"#addr"}`, warning: "anchors are not supported"},
		{name: "recursive $ref", prop: `{"$ref":"#/$defs/Node"}`, defs: `"$defs":{"Node":{"$ref":"#/$defs/Node"}}`, warning: "is recursive"},
		{name: "recursive $ref to the root", prop: `{"$ref":"#"}`, want: "p?: {}", warning: `args.p.p: left out of the type: $ref "#" is recursive`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings := propType(t, tc.prop, tc.required, tc.defs)
			if got != tc.want {
				t.Errorf("type %q, want %q", got, tc.want)
			}
			switch {
			case tc.warning == "" && len(warnings) != 0:
				t.Errorf("warnings %q, want none", warnings)
			case tc.warning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.warning)):
				t.Errorf("warnings %q, want one with %q", warnings, tc.warning)
			}
		})
	}
}

func TestJSONSchemaRecursiveTypeKeepsTheRest(t *testing.T) {
	// A tree: the recursive part is left out, the rest is typed.
	raw := `{"type":"object","properties":{"root":{"$ref":"#/$defs/Node"}},"required":["root"],
	"$defs":{"Node":{"type":"object","properties":{"value":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/Node"}}},"required":["value"]}}}`
	rec, warnings, err := argsType("tree", json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cedarTypeString(rec), "{root: {value: String}}"; got != want {
		t.Errorf("type %s, want %s", got, want)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], `args.root.children: left out of the type: an array whose items do not map: $ref "#/$defs/Node" is recursive`) {
		t.Errorf("warnings %q", warnings)
	}
}

func TestNewSchemaErrors(t *testing.T) {
	obj := json.RawMessage(`{"type":"object"}`)
	tests := []struct {
		name  string
		tools []Tool
		want  string
	}{
		{"reserved", []Tool{{Name: ActionDelegate}}, `tool name "delegate" is reserved`},
		{"reserved group", []Tool{{Name: ActionCallTool}}, `"call_tool" is reserved`},
		{"duplicate", []Tool{{Name: "a", InputSchema: obj}, {Name: "b"}, {Name: "a"}}, `tool "a" is listed twice`},
		{"no name", []Tool{{InputSchema: obj}}, "a tool has no name"},
		{"not JSON", []Tool{{Name: "a", InputSchema: json.RawMessage(`{"type":`)}}, `tool "a": input schema`},
		{"trailing data", []Tool{{Name: "a", InputSchema: json.RawMessage(`{} {}`)}}, "trailing data"},
		{"array schema", []Tool{{Name: "a", InputSchema: json.RawMessage(`{"type":"array","items":{"type":"string"}}`)}}, "not an object schema"},
		{"string schema", []Tool{{Name: "a", InputSchema: json.RawMessage(`{"type":"string"}`)}}, "not an object schema"},
		{"empty schema", []Tool{{Name: "a", InputSchema: json.RawMessage(`{}`)}}, "not an object schema"},
		{"JSON array", []Tool{{Name: "a", InputSchema: json.RawMessage(`[]`)}}, "not an object schema"},
		{"union of objects and strings", []Tool{{Name: "a", InputSchema: json.RawMessage(`{"oneOf":[{"type":"object"},{"type":"string"}]}`)}}, "not an object schema"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSchema(tc.tools...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewSchema = %v, %v; want an error with %q", s, err, tc.want)
			}
		})
	}
	// Top-level forms that are objects.
	for _, raw := range []string{``, `{"type":"object"}`, `{"type":["object"]}`, `{"properties":{"a":{"type":"string"}}}`,
		`{"$ref":"#/$defs/A","$defs":{"A":{"type":"object","properties":{"a":{"type":"string"}}}}}`} {
		if _, err := NewSchema(Tool{Name: "a", InputSchema: json.RawMessage(raw)}); err != nil {
			t.Errorf("NewSchema with input schema %s: %v", raw, err)
		}
	}
}

func parseArgs(t *testing.T, s string) any {
	t.Helper()
	v, err := canonical.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func dec(t *testing.T, s string) cedar.Value {
	t.Helper()
	d, err := types.ParseDecimal(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestArgsConversion(t *testing.T) {
	s, err := NewSchema(Tool{Name: "t", InputSchema: json.RawMessage(`{"type":"object","properties":{
		"n":{"type":"number"}, "i":{"type":"integer"}, "s":{"type":"string"}, "b":{"type":"boolean"},
		"tags":{"type":"array","items":{"type":"string"}},
		"nested":{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]},
		"list":{"type":"array","items":{"type":"object","properties":{"k":{"type":"integer"}}}},
		"my-field":{"type":"integer"},
		"u":{"oneOf":[{"type":"string"},{"type":"integer"}]}
	},"required":["s"]}`)})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(kv ...any) cedar.Value {
		m := cedar.RecordMap{"s": cedar.String("x")}
		for i := 0; i < len(kv); i += 2 {
			m[cedar.String(kv[i].(string))] = kv[i+1].(cedar.Value)
		}
		return cedar.NewRecord(m)
	}
	tests := []struct {
		name, args string
		want       cedar.Value
		err        string
	}{
		{name: "number given an integer is a decimal", args: `{"s":"x","n":5}`, want: rec("n", dec(t, "5.0"))},
		{name: "number given a fraction", args: `{"s":"x","n":5.5}`, want: rec("n", dec(t, "5.5"))},
		{name: "number with an exponent", args: `{"s":"x","n":-25e-4}`, want: rec("n", dec(t, "-0.0025"))},
		{name: "integer given 5.0 is a Long", args: `{"s":"x","i":5.0}`, want: rec("i", cedar.Long(5))},
		{name: "integer given 5e2", args: `{"s":"x","i":5e2}`, want: rec("i", cedar.Long(500))},
		{name: "string and boolean", args: `{"s":"x","b":true}`, want: rec("b", cedar.Boolean(true))},
		{name: "set", args: `{"s":"x","tags":["a",null,"b","a"]}`, want: rec("tags", cedar.NewSet(cedar.String("a"), cedar.String("b")))},
		{name: "nested", args: `{"s":"x","nested":{"x":1.0}}`, want: rec("nested", cedar.NewRecord(cedar.RecordMap{"x": cedar.Long(1)}))},
		{name: "optional null is left out", args: `{"s":"x","i":null,"nested":null}`, want: rec()},
		{name: "extra and untyped properties are kept, untyped", args: `{"s":"x","extra":{"deep":[1,2.5]},"u":1}`,
			want: rec("extra", cedar.NewRecord(cedar.RecordMap{"deep": cedar.NewSet(cedar.Long(1), dec(t, "2.5"))}), "u", cedar.Long(1))},
		{name: "an extra property is converted as without a schema", args: `{"s":"x","extra":2.123456}`, err: "extra: number is not representable"},
		{name: "a name that differs only in case from a declared one", args: `{"s":"x","I":1}`, err: `I: argument name differs only in case from the declared i`},
		{name: "quoted name", args: `{"s":"x","my-field":3}`, want: rec("my-field", cedar.Long(3))},

		{name: "string for integer", args: `{"s":"x","i":"5"}`, err: "i: expected an integer, got a string"},
		{name: "fraction for integer", args: `{"s":"x","i":5.5}`, err: "i: expected an integer, got a number with a fractional part"},
		{name: "integer out of range", args: `{"s":"x","i":1e19}`, err: "i: integer is out of range"},
		{name: "string for number", args: `{"s":"x","n":"5"}`, err: "n: expected a number, got a string"},
		{name: "too many fractional digits", args: `{"s":"x","n":1.23456}`, err: "n: number is not representable"},
		{name: "decimal out of range", args: `{"s":"x","n":1e15}`, err: "n: number is not representable"},
		{name: "huge exponent", args: `{"s":"x","n":1e999999}`, err: "n: number is not representable"},
		{name: "missing required", args: `{"i":1}`, err: "s: required argument is missing"},
		{name: "null required", args: `{"s":null}`, err: "s: required argument is missing"},
		{name: "number for string", args: `{"s":1}`, err: "s: expected a string, got a number"},
		{name: "object for boolean", args: `{"s":"x","b":{}}`, err: "b: expected a boolean, got an object"},
		{name: "string for array", args: `{"s":"x","tags":"a"}`, err: "tags: expected an array, got a string"},
		{name: "wrong set element", args: `{"s":"x","tags":["a",1]}`, err: "tags[1]: expected a string, got a number"},
		{name: "wrong nested", args: `{"s":"x","nested":{"x":"1"}}`, err: "nested.x: expected an integer, got a string"},
		{name: "missing nested", args: `{"s":"x","nested":{}}`, err: "nested.x: required argument is missing"},
		{name: "array for object", args: `{"s":"x","nested":[]}`, err: "nested: expected an object, got an array"},
		{name: "wrong in a set of records", args: `{"s":"x","list":[{"k":1},{"k":true}]}`, err: "list[1].k: expected an integer, got a boolean"},
		{name: "wrong quoted name", args: `{"s":"x","my-field":"3"}`, err: `"my-field": expected an integer, got a string`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.args("t", parseArgs(t, tc.args))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err && !strings.HasPrefix(err.Error(), tc.err) {
					t.Errorf("args = %v, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tc.want) {
				t.Errorf("args = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestArgsUnknownActionFallsBack(t *testing.T) {
	s := quickstartSchema(t)
	// A tool registered after the schema was made: arguments convert as
	// they would without a schema.
	got, err := s.args("new_tool", parseArgs(t, `{"n":5,"f":5.5,"a":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := jsonToCedar(parseArgs(t, `{"n":5,"f":5.5,"a":[1]}`))
	if !got.Equal(want) {
		t.Errorf("args = %v, want %v", got, want)
	}
	// Governance actions take no arguments.
	got, err = s.args(ActionDelegate, parseArgs(t, `{}`))
	if err != nil || !got.Equal(cedar.NewRecord(nil)) {
		t.Errorf("delegate args = %v, %v; want {}", got, err)
	}
}

func TestSchemaEngineEndToEnd(t *testing.T) {
	s, err := NewSchema(Tool{Name: "charge", InputSchema: json.RawMessage(`{"type":"object","properties":{"amount":{"type":"number"},"currency":{"type":"string","enum":["EUR","USD"]}},"required":["amount"]}`)})
	if err != nil {
		t.Fatal(err)
	}
	bad := MustParseSet("bad.cedar", `@id("limit") forbid(principal, action == Action::"charge", resource) when { context.args.amount > 100 };`)
	_, err = NewCedarEngine(bad, WithSchema(s))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].PolicyID != "limit" {
		t.Fatalf("NewCedarEngine with an ill-typed policy = %v, want a ValidationError for \"limit\"", err)
	}

	const text = `
@id("charge") permit(principal, action == Action::"charge", resource);
@id("limit") @reason("over 5")
forbid(principal, action == Action::"charge", resource)
when { context.args.amount.greaterThan(decimal("5.0")) };
@id("currency") forbid(principal, action == Action::"charge", resource)
when { context.args has currency && context.args.currency == "USD" };
`
	set := MustParseSet("good.cedar", text)
	typed, err := NewCedarEngine(set, WithSchema(s))
	if err != nil {
		t.Fatal(err)
	}
	untyped, err := NewCedarEngine(set)
	if err != nil {
		t.Fatal(err)
	}
	call := func(e *CedarEngine, args string) (Decision, error) {
		return e.Decide(context.Background(), &Request{
			Agent: identity.MustParse("spiffe://example.org/agents/billing"),
			Tool:  Tool{Name: "charge"}, Args: json.RawMessage(args),
			CallID: "c", Time: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
		})
	}
	tests := []struct {
		args     string
		allowed  bool
		policies []string
	}{
		{`{"amount":5}`, true, []string{"charge"}},
		{`{"amount":5.0}`, true, []string{"charge"}},
		{`{"amount":5.5}`, false, []string{"limit"}},
		{`{"amount":4,"currency":"USD"}`, false, []string{"currency"}},
		{`{"amount":4,"currency":"EUR","memo":"extra is dropped"}`, true, []string{"charge"}},
	}
	for _, tc := range tests {
		d, err := call(typed, tc.args)
		if err != nil {
			t.Fatalf("%s: %v", tc.args, err)
		}
		if d.Allowed != tc.allowed || strings.Join(d.Policies, ",") != strings.Join(tc.policies, ",") || len(d.Errors) != 0 {
			t.Errorf("%s: %+v, want allowed=%v by %v", tc.args, d, tc.allowed, tc.policies)
		}
	}
	// Without the schema, 5 is a Long, and decimal's greaterThan fails on it:
	// the reason the schema converts arguments.
	if d, err := call(untyped, `{"amount":5}`); err != nil || d.Allowed || len(d.Errors) == 0 {
		t.Errorf("untyped engine, amount 5: %+v, %v; want an evaluation error", d, err)
	}
	// An argument of the wrong type is an error naming it: the guard denies.
	if _, err := call(typed, `{"amount":"5"}`); err == nil || !strings.Contains(err.Error(), "amount: expected a number, got a string") {
		t.Errorf("amount \"5\": %v, want an error naming amount", err)
	}
	if _, err := call(typed, `{"currency":"EUR"}`); err == nil || !strings.Contains(err.Error(), "amount: required argument is missing") {
		t.Errorf("no amount: %v, want an error naming amount", err)
	}
}

func TestParseSchema(t *testing.T) {
	base := string(BaseSchema().MarshalCedar())
	// A hand-written action with Cedar types JSON Schema cannot express.
	text := base + `
action audit_log in call_tool appliesTo {
	principal: Agent,
	resource: Tool,
	context: {
		args: {at: datetime, window?: duration, from: ipaddr, price: decimal, n: Long, who?: Agent},
		approval: Approval, delegation: Delegation, request: Request, task: Task
	}
};`
	s, err := ParseSchema("hand.cedarschema", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if w := s.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q, want none", w)
	}
	got, err := s.args("audit_log", parseArgs(t, `{"at":"2024-05-01T12:00:00Z","window":"1h30m","from":"10.0.0.1","price":2,"n":3.0,"who":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	at, _ := types.ParseDatetime("2024-05-01T12:00:00Z")
	window, _ := types.ParseDuration("1h30m")
	from, _ := types.ParseIPAddr("10.0.0.1")
	want := cedar.NewRecord(cedar.RecordMap{"at": at, "window": window, "from": from, "price": dec(t, "2.0"), "n": cedar.Long(3), "who": cedar.String("x")})
	if !got.Equal(want) {
		t.Errorf("args = %v, want %v", got, want)
	}
	if _, err := s.args("audit_log", parseArgs(t, `{"at":"yesterday","from":"10.0.0.1","price":2,"n":3}`)); err == nil || !strings.HasPrefix(err.Error(), "at: ") {
		t.Errorf("bad datetime: %v, want an error naming at", err)
	}
	set := MustParseSet("p.cedar", `@id("p") permit(principal, action == Action::"audit_log", resource) when { context.args.at < datetime("2025-01-01") && context.args.from.isInRange(ip("10.0.0.0/8")) && context.args.price.lessThan(decimal("3.0")) };`)
	if err := set.Validate(s); err != nil {
		t.Error(err)
	}

	// A schema that departs from the SDK's model says where.
	odd := strings.Replace(base, "sensitivity: Long", "sensitivity: String", 1)
	odd = strings.Replace(odd, "entity Tool in Toolset {", "entity Tool {", 1)
	odd += "\naction orphan appliesTo {principal: Agent, resource: Tool, context: {args: {}, approval: Approval, delegation: Delegation, request: Request, task: Task}};"
	odd = strings.Replace(odd, "\tname: String,\n\tpath: String,", "\tpath: String,", 1)
	s, err = ParseSchema("odd.cedarschema", []byte(odd))
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(s.Warnings(), "\n")
	for _, want := range []string{"entity type Tool: parent types differ", "entity type Agent: attributes differ", `action Action::"delegate": context.task is not`, `action Action::"orphan": not in Action::"call_tool"`} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}

	for _, bad := range []string{`entity A in [B];`, `entity A {`, `type T = Undefined; entity A {t: T};`} {
		if _, err := ParseSchema("bad.cedarschema", []byte(bad)); err == nil || !strings.Contains(err.Error(), "bad.cedarschema") {
			t.Errorf("ParseSchema(%q) = %v, want an error naming the file", bad, err)
		}
	}
}

func TestBaseSchema(t *testing.T) {
	b := BaseSchema()
	if b != BaseSchema() {
		t.Error("BaseSchema is rebuilt")
	}
	if len(b.Warnings()) != 0 {
		t.Errorf("warnings %q", b.Warnings())
	}
	set := MustParseSet("g.cedar", `@id("d") permit(principal in AgentGroup::"support", action == Action::"delegate", resource) when { resource.name == "order-lookup" };`)
	if err := set.Validate(b); err != nil {
		t.Error(err)
	}
}

func BenchmarkSchemaArgs(b *testing.B) {
	s, err := NewSchema(Tool{Name: "t", InputSchema: json.RawMessage(`{"type":"object","properties":{
		"amount":{"type":"number"},"currency":{"type":"string"},"to":{"type":"array","items":{"type":"string"}},
		"meta":{"type":"object","properties":{"id":{"type":"integer"}}}},"required":["amount"]}`)})
	if err != nil {
		b.Fatal(err)
	}
	v, err := canonical.Parse([]byte(`{"amount":12.5,"currency":"EUR","to":["a","b"],"meta":{"id":7},"extra":"x"}`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.args("t", v); err != nil {
			b.Fatal(err)
		}
	}
}
