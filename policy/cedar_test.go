package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

var (
	billing   = identity.MustParse("spiffe://example.org/agents/billing")
	support   = identity.MustParse("spiffe://example.org/agents/support")
	foreign   = identity.MustParse("spiffe://other.org/agents/billing")
	delegated = identity.MustParse("spiffe://example.org/agents/billing", "spiffe://example.org/root", "spiffe://example.org/planner")
	callTime  = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
)

func newEngine(t *testing.T, text string, opts ...policy.CedarOption) *policy.CedarEngine {
	t.Helper()
	set, err := policy.ParseSet("test.cedar", text)
	if err != nil {
		t.Fatalf("ParseSet: %v", err)
	}
	e, err := policy.NewCedarEngine(set, opts...)
	if err != nil {
		t.Fatalf("NewCedarEngine: %v", err)
	}
	return e
}

func baseRequest() *policy.Request {
	return &policy.Request{
		Agent:  billing,
		Tool:   policy.Tool{Name: "refund", Toolset: "payments"},
		Args:   json.RawMessage(`{}`),
		CallID: "call-1",
		Time:   callTime,
	}
}

func decide(t *testing.T, e policy.Engine, req *policy.Request) policy.Decision {
	t.Helper()
	d, err := e.Decide(context.Background(), req)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return d
}

func TestNewCedarEngineNilSet(t *testing.T) {
	if e, err := policy.NewCedarEngine(nil); err == nil || e != nil {
		t.Errorf("NewCedarEngine(nil) = %v, %v; want error", e, err)
	}
	set := policy.MustParseSet("x", permitA)
	e, err := policy.NewCedarEngine(set)
	if err != nil {
		t.Fatal(err)
	}
	if e.Set() != set {
		t.Error("Set() does not return the engine's set")
	}
}

func TestDecideOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		policies string
		opts     []policy.CedarOption
		req      func(*policy.Request)
		want     policy.Decision // Revision is checked separately
		// wantErrs are the IDs of the policies in Decision.Errors.
		wantErrs []string
		// reasonHas, when set, replaces the exact Reason check.
		reasonHas string
	}{
		{
			name: "allow names deciding permits",
			policies: `
@id("p2") permit(principal, action, resource);
@id("p1") permit(principal, action == Action::"refund", resource);
@id("p3") permit(principal, action == Action::"other", resource);
`,
			want: policy.Decision{Allowed: true, Policies: []string{"p1", "p2"}},
		},
		{
			name: "forbid wins with its reason",
			policies: `
@id("p") permit(principal, action, resource);
@id("f") @reason("refunds are frozen") forbid(principal, action == Action::"refund", resource);
`,
			want: policy.Decision{Policies: []string{"f"}, Reason: "refunds are frozen"},
		},
		{
			name: "several forbids join reasons in ID order",
			policies: `
@id("p") permit(principal, action, resource);
@id("f2") @reason("second") forbid(principal, action, resource);
@id("f1") @reason("first") forbid(principal, action, resource);
@id("f3") @reason("not matching") forbid(principal, action == Action::"other", resource);
`,
			want: policy.Decision{Policies: []string{"f1", "f2"}, Reason: "first; second"},
		},
		{
			name: "forbid without reason",
			policies: `
@id("p") permit(principal, action, resource);
@id("fb") forbid(principal, action, resource);
@id("fa") forbid(principal, action, resource);
`,
			want: policy.Decision{Policies: []string{"fa", "fb"}, Reason: "forbidden by fa, fb"},
		},
		{
			name:     "forbid alone",
			policies: `@id("f") @reason("never") forbid(principal, action, resource);`,
			want:     policy.Decision{Policies: []string{"f"}, Reason: "never"},
		},
		{
			name:     "no permit",
			policies: `@id("p") permit(principal, action == Action::"other", resource);`,
			want:     policy.Decision{Reason: "no policy permits this call"},
		},
		{
			name:     "empty set denies",
			policies: ``,
			want:     policy.Decision{Reason: "no policy permits this call"},
		},
		{
			name: "erroring permit denies although another permit matched",
			policies: `
@id("ok") permit(principal, action, resource);
@id("bad") permit(principal, action, resource) when { context.args.amount > 5 };
`,
			want:      policy.Decision{Policies: []string{"bad"}},
			wantErrs:  []string{"bad"},
			reasonHas: "policy evaluation error in bad",
		},
		{
			name: "erroring forbid denies although a permit matched",
			policies: `
@id("ok") permit(principal, action, resource);
@id("guard") forbid(principal, action, resource) when { context.args.amount > 5 };
`,
			want:      policy.Decision{Policies: []string{"guard"}},
			wantErrs:  []string{"guard"},
			reasonHas: "policy evaluation error in guard",
		},
		{
			name: "erroring policy alone",
			policies: `
@id("bad") permit(principal, action, resource) when { principal.no_such_attribute == 1 };
`,
			want:      policy.Decision{Policies: []string{"bad"}},
			wantErrs:  []string{"bad"},
			reasonHas: "policy evaluation error in bad",
		},
		{
			name: "several erroring policies sorted",
			policies: `
@id("ok") permit(principal, action, resource);
@id("z") permit(principal, action, resource) when { context.args.x == 1 };
@id("y") forbid(principal, action, resource) when { context.args.y == 1 };
`,
			want:      policy.Decision{Policies: []string{"y", "z"}},
			wantErrs:  []string{"y", "z"},
			reasonHas: "policy evaluation error in y, z",
		},
		{
			name: "error drops obligations",
			policies: `
@id("ok") @approval("two-person") permit(principal, action, resource);
@id("bad") permit(principal, action, resource) when { context.args.amount > 5 };
`,
			want:      policy.Decision{Policies: []string{"bad"}},
			wantErrs:  []string{"bad"},
			reasonHas: "policy evaluation error in bad",
		},
		{
			name: "approval obligation",
			policies: `
@id("p") @approval("two-person") @reason("big refunds") @description("d") permit(principal, action, resource);
`,
			want: policy.Decision{Allowed: true, Policies: []string{"p"}, Reason: "big refunds", Obligations: []policy.Obligation{
				{Name: "approval", Value: "two-person", PolicyID: "p"},
			}},
		},
		{
			name: "approval obligations from every deciding permit",
			policies: `
@id("b") @approval("manager") permit(principal, action, resource);
@id("a") @approval("two-person") permit(principal, action, resource);
@id("c") @approval("never-decides") permit(principal, action == Action::"other", resource);
`,
			want: policy.Decision{Allowed: true, Policies: []string{"a", "b"}, Obligations: []policy.Obligation{
				{Name: "approval", Value: "two-person", PolicyID: "a"},
				{Name: "approval", Value: "manager", PolicyID: "b"},
			}},
		},
		{
			name:     "other annotations are not obligations by default",
			policies: `@id("p") @notify("ops") @mfa("yes") permit(principal, action, resource);`,
			want:     policy.Decision{Allowed: true, Policies: []string{"p"}},
		},
		{
			name:     "WithObligations names more obligations",
			policies: `@id("p") @notify("ops") @mfa("yes") @approval("one") @other("x") permit(principal, action, resource);`,
			opts:     []policy.CedarOption{policy.WithObligations("notify", "mfa")},
			want: policy.Decision{Allowed: true, Policies: []string{"p"}, Obligations: []policy.Obligation{
				{Name: "approval", Value: "one", PolicyID: "p"},
				{Name: "mfa", Value: "yes", PolicyID: "p"},
				{Name: "notify", Value: "ops", PolicyID: "p"},
			}},
		},
		{
			name:     "informational annotations never obligations",
			policies: `@id("p") @reason("r") @description("d") permit(principal, action, resource);`,
			opts:     []policy.CedarOption{policy.WithObligations("id", "reason", "description")},
			want:     policy.Decision{Allowed: true, Policies: []string{"p"}, Reason: "r"},
		},
		{
			name: "obligations dropped on forbid",
			policies: `
@id("p") @approval("two-person") permit(principal, action, resource);
@id("f") @reason("no") forbid(principal, action, resource);
`,
			want: policy.Decision{Policies: []string{"f"}, Reason: "no"},
		},
		{
			name: "obligations from a forbid are never obligations",
			policies: `
@id("p") permit(principal, action, resource);
@id("f") @approval("two-person") forbid(principal, action == Action::"other", resource);
`,
			want: policy.Decision{Allowed: true, Policies: []string{"p"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, tc.policies, tc.opts...)
			req := baseRequest()
			if tc.req != nil {
				tc.req(req)
			}
			d := decide(t, e, req)
			if d.Revision != e.Set().Digest() || d.Revision == "" {
				t.Errorf("Revision = %q, want set digest %q", d.Revision, e.Set().Digest())
			}
			if d.Allowed != tc.want.Allowed {
				t.Errorf("Allowed = %v, want %v (decision %+v)", d.Allowed, tc.want.Allowed, d)
			}
			if !equalStrings(d.Policies, tc.want.Policies) {
				t.Errorf("Policies = %q, want %q", d.Policies, tc.want.Policies)
			}
			if tc.reasonHas != "" {
				if !strings.Contains(d.Reason, tc.reasonHas) {
					t.Errorf("Reason = %q, want it to contain %q", d.Reason, tc.reasonHas)
				}
			} else if d.Reason != tc.want.Reason {
				t.Errorf("Reason = %q, want %q", d.Reason, tc.want.Reason)
			}
			if len(d.Obligations) != len(tc.want.Obligations) || (len(d.Obligations) > 0 && !reflect.DeepEqual(d.Obligations, tc.want.Obligations)) {
				t.Errorf("Obligations = %+v, want %+v", d.Obligations, tc.want.Obligations)
			}
			var errIDs []string
			for _, er := range d.Errors {
				errIDs = append(errIDs, er.PolicyID)
				if er.Message == "" {
					t.Errorf("EvalError for %s has no message", er.PolicyID)
				}
			}
			if !equalStrings(errIDs, tc.wantErrs) {
				t.Errorf("Errors = %+v, want policies %q", d.Errors, tc.wantErrs)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func TestDecideErrorWithMatchingForbid(t *testing.T) {
	e := newEngine(t, `
@id("ok") permit(principal, action, resource);
@id("f") @reason("no") forbid(principal, action, resource);
@id("bad") permit(principal, action, resource) when { context.args.amount > 5 };
`)
	d := decide(t, e, baseRequest())
	if d.Allowed {
		t.Fatal("allowed")
	}
	if len(d.Errors) != 1 || d.Errors[0].PolicyID != "bad" {
		t.Errorf("Errors = %+v, want one for bad", d.Errors)
	}
	if !strings.Contains(d.Reason, "bad") {
		t.Errorf("Reason %q does not name the erroring policy", d.Reason)
	}
}

// TestCedarModel checks each part of the model policy sees: for each
// condition, one request it permits and one it (cleanly) does not.
func TestCedarModel(t *testing.T) {
	groups := policy.WithAgentGroups(map[string][]string{
		"spiffe://example.org/agents/billing": {"finance", "staff"},
	})
	tests := []struct {
		name string
		// when is the condition of permit(principal, action, resource);
		// policies, when set, replaces the whole document.
		when     string
		policies string
		opts     []policy.CedarOption
		allow    func(*policy.Request)
		deny     func(*policy.Request)
	}{
		// Principal.
		{name: "principal trust_domain", when: `principal.trust_domain == "example.org"`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Agent = foreign }},
		{name: "principal path", when: `principal.path == "/agents/billing"`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Agent = support }},
		{name: "principal name is last path segment", when: `principal.name == "billing"`,
			allow: func(r *policy.Request) { r.Agent = foreign }, deny: func(r *policy.Request) { r.Agent = support }},
		{name: "principal in trust domain", policies: `@id("p") permit(principal in TrustDomain::"example.org", action, resource);`,
			allow: func(r *policy.Request) { r.Agent = support }, deny: func(r *policy.Request) { r.Agent = foreign }},
		{name: "principal equals agent", policies: `@id("p") permit(principal == Agent::"spiffe://example.org/agents/billing", action, resource);`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Agent = support }},
		{name: "principal in agent group", policies: `@id("p") permit(principal in AgentGroup::"finance", action, resource);`,
			opts:  []policy.CedarOption{groups},
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Agent = support }},
		{name: "principal in second agent group", when: `principal in AgentGroup::"staff"`,
			opts:  []policy.CedarOption{groups},
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Agent = foreign }},
		{name: "no groups without option", policies: `@id("p") permit(principal in AgentGroup::"finance", action, resource);`,
			allow: nil, deny: func(r *policy.Request) {}},
		{name: "groups by function", when: `principal in AgentGroup::"support-team"`,
			opts: []policy.CedarOption{policy.WithGroups(func(id spiffeid.ID) []string {
				if strings.HasSuffix(id.Path(), "/support") {
					return []string{"support-team"}
				}
				return nil
			})},
			allow: func(r *policy.Request) { r.Agent = support }, deny: func(r *policy.Request) {}},

		// Action.
		{name: "tool action in call_tool", policies: `@id("p") permit(principal, action in Action::"call_tool", resource);`,
			allow: func(r *policy.Request) { r.Tool.Name = "anything" }, deny: func(r *policy.Request) { r.Action, r.Delegatee = policy.ActionDelegate, support.ID }},
		{name: "action is tool name", policies: `@id("p") permit(principal, action == Action::"refund", resource);`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Tool.Name = "lookup" }},
		{name: "delegate action", policies: `@id("p") permit(principal, action == Action::"delegate", resource);`,
			allow: func(r *policy.Request) { r.Action, r.Delegatee = policy.ActionDelegate, support.ID }, deny: func(r *policy.Request) {}},
		{name: "delegate resource is the delegatee agent", policies: `@id("p") permit(principal, action == Action::"delegate", resource == Agent::"spiffe://example.org/agents/support") when { resource.trust_domain == "example.org" };`,
			allow: func(r *policy.Request) { r.Action, r.Delegatee = policy.ActionDelegate, support.ID }, deny: func(r *policy.Request) { r.Action, r.Delegatee = policy.ActionDelegate, billing.ID }},
		{name: "delegate is not a tool named delegate's call_tool", policies: `@id("p") permit(principal, action in Action::"call_tool", resource) when { action == Action::"delegate" };`,
			allow: nil, deny: func(r *policy.Request) { r.Action, r.Delegatee = policy.ActionDelegate, support.ID }},
		{name: "change_toolset not in call_tool", policies: `@id("p") permit(principal, action in Action::"call_tool", resource);`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Action = policy.ActionChangeToolset }},
		{name: "change_prompt not in call_tool", policies: `@id("p") permit(principal, action in Action::"call_tool", resource);`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Action = policy.ActionChangePrompt }},
		{name: "action in governance list", policies: `@id("p") permit(principal, action in [Action::"delegate", Action::"change_prompt"], resource);`,
			allow: func(r *policy.Request) { r.Action = policy.ActionChangePrompt }, deny: func(r *policy.Request) { r.Action = policy.ActionChangeToolset }},

		// Resource.
		{name: "resource is tool", policies: `@id("p") permit(principal, action, resource == Tool::"refund");`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Tool.Name = "lookup" }},
		{name: "resource name", when: `resource.name == "refund"`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Tool.Name = "lookup" }},
		{name: "resource in toolset", policies: `@id("p") permit(principal, action, resource in Toolset::"payments");`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Tool.Toolset = "search" }},
		{name: "resource without toolset", policies: `@id("p") permit(principal, action, resource in Toolset::"payments");`,
			allow: nil, deny: func(r *policy.Request) { r.Tool.Toolset = "" }},
		{name: "resource toolset attribute", when: `resource.toolset == "payments"`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Tool.Toolset = "" }},
		{name: "read_only", when: `resource.read_only`,
			allow: func(r *policy.Request) { r.Tool.ReadOnly = true }, deny: func(r *policy.Request) {}},
		{name: "destructive", when: `resource.destructive`,
			allow: func(r *policy.Request) { r.Tool.Destructive = true }, deny: func(r *policy.Request) {}},
		{name: "idempotent", when: `resource.idempotent`,
			allow: func(r *policy.Request) { r.Tool.Idempotent = true }, deny: func(r *policy.Request) {}},
		{name: "open_world", when: `resource.open_world`,
			allow: func(r *policy.Request) { r.Tool.OpenWorld = true }, deny: func(r *policy.Request) {}},
		{name: "risk is Long", when: `resource.risk >= 2`,
			allow: func(r *policy.Request) { r.Tool.Risk = policy.RiskHigh }, deny: func(r *policy.Request) { r.Tool.Risk = policy.RiskMedium }},
		{name: "risk critical is 3", when: `resource.risk == 3`,
			allow: func(r *policy.Request) { r.Tool.Risk = policy.RiskCritical }, deny: func(r *policy.Request) { r.Tool.Risk = policy.RiskLow }},
		{name: "resource labels", when: `resource.labels.contains("pii")`,
			allow: func(r *policy.Request) { r.Tool.Labels = []string{"finance", "pii"} }, deny: func(r *policy.Request) { r.Tool.Labels = []string{"finance"} }},

		// Task.
		{name: "task id", when: `context.task.id == "task-7"`,
			allow: func(r *policy.Request) { r.Task.ID = "task-7" }, deny: func(r *policy.Request) { r.Task.ID = "task-8" }},
		{name: "task purpose", when: `context.task.purpose == "refunds"`,
			allow: func(r *policy.Request) { r.Task.Purpose = "refunds" }, deny: func(r *policy.Request) { r.Task.Purpose = "x" }},
		{name: "task sensitivity", when: `context.task.sensitivity >= 2`,
			allow: func(r *policy.Request) { r.Task.Sensitivity = policy.Confidential }, deny: func(r *policy.Request) { r.Task.Sensitivity = policy.Internal }},
		{name: "task labels", when: `context.task.labels.contains("eu")`,
			allow: func(r *policy.Request) { r.Task.Labels = []string{"eu", "gdpr"} }, deny: func(r *policy.Request) { r.Task.Labels = []string{"us"} }},
		{name: "task calls", when: `context.task.calls < 10`,
			allow: func(r *policy.Request) { r.Task.Calls = 9 }, deny: func(r *policy.Request) { r.Task.Calls = 10 }},
		{name: "task tools_used", when: `context.task.tools_used.contains("lookup")`,
			allow: func(r *policy.Request) { r.Task.ToolsUsed = []string{"lookup", "search"} }, deny: func(r *policy.Request) { r.Task.ToolsUsed = nil }},
		{name: "task taint", when: `!context.task.taint.contains("untrusted")`,
			allow: func(r *policy.Request) { r.Task.Taint = []string{"web"} }, deny: func(r *policy.Request) { r.Task.Taint = []string{"untrusted", "web"} }},

		// Delegation.
		{name: "delegation depth", when: `context.delegation.depth == 2`,
			allow: func(r *policy.Request) { r.Agent = delegated }, deny: func(r *policy.Request) {}},
		{name: "delegation depth zero", when: `context.delegation.depth == 0`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Agent = delegated }},
		{name: "delegation chain", when: `context.delegation.chain.contains(Agent::"spiffe://example.org/root")`,
			allow: func(r *policy.Request) { r.Agent = delegated }, deny: func(r *policy.Request) {}},
		{name: "delegation chain is a set of agents", when: `context.delegation.chain == [Agent::"spiffe://example.org/planner", Agent::"spiffe://example.org/root"]`,
			allow: func(r *policy.Request) { r.Agent = delegated }, deny: func(r *policy.Request) {}},
		{name: "delegation on_behalf_of", when: `context.delegation.on_behalf_of == "alice@example.org"`,
			allow: func(r *policy.Request) { r.Task.OnBehalfOf = "alice@example.org" }, deny: func(r *policy.Request) { r.Task.OnBehalfOf = "bob@example.org" }},

		// Approval and request.
		{name: "approval granted", when: `context.approval.granted`,
			allow: func(r *policy.Request) { r.Approval.Granted = true }, deny: func(r *policy.Request) {}},
		{name: "approval approvers", when: `context.approval.approvers.contains("carol")`,
			allow: func(r *policy.Request) { r.Approval = policy.Approval{Granted: true, Approvers: []string{"carol"}} }, deny: func(r *policy.Request) {}},
		{name: "request call_id", when: `context.request.call_id == "call-42"`,
			allow: func(r *policy.Request) { r.CallID = "call-42" }, deny: func(r *policy.Request) {}},
		{name: "request time is a datetime", when: `context.request.time > datetime("2020-01-01")`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Time = time.Date(2019, 12, 31, 23, 59, 59, 0, time.UTC) }},
		{name: "request time to the millisecond", when: `context.request.time < datetime("2024-05-01T12:00:00.001Z")`,
			allow: func(r *policy.Request) {}, deny: func(r *policy.Request) { r.Time = callTime.Add(time.Millisecond) }},

		// Arguments.
		{name: "args string", when: `context.args.currency == "EUR"`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"currency":"EUR"}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"currency":"USD"}`) }},
		{name: "args nested object", when: `context.args.customer.address.country == "FR"`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"customer":{"address":{"country":"FR"}}}`) },
			deny:  func(r *policy.Request) { r.Args = json.RawMessage(`{"customer":{"address":{"country":"DE"}}}`) }},
		{name: "args array is a set", when: `context.args.tags.contains("x")`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"tags":["y","x"]}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"tags":["y"]}`) }},
		{name: "args array set equality ignores order and duplicates", when: `context.args.tags == ["a", "b"]`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"tags":["b","a","b"]}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"tags":["a"]}`) }},
		{name: "args array of objects", when: `context.args.items.contains({"sku": "A1", "qty": 2})`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"items":[{"qty":2,"sku":"A1"}]}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"items":[{"qty":3,"sku":"A1"}]}`) }},
		{name: "args boolean", when: `context.args.dry_run == true`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"dry_run":true}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"dry_run":false}`) }},
		{name: "args integer is Long", when: `context.args.count < 10`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"count":9}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"count":10}`) }},
		{name: "args negative integer", when: `context.args.delta == -3`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"delta":-3}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"delta":3}`) }},
		{name: "args largest Long", when: `context.args.n == 9223372036854775807`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"n":9223372036854775807}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"n":9223372036854775806}`) }},
		{name: "args integral number with fraction syntax is Long", when: `context.args.n == 100`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"n":1e2}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"n":1e1}`) }},
		{name: "args decimal lessThan", when: `context.args.amount.lessThan(decimal("20.0"))`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"amount":12.5}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"amount":20.5}`) }},
		{name: "args negative decimal", when: `context.args.amount.lessThan(decimal("-1.0"))`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"amount":-12.5}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"amount":-0.5}`) }},
		{name: "args decimal four fractional digits exact", when: `context.args.rate == decimal("0.0001")`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"rate":0.0001}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"rate":0.0002}`) }},
		{name: "args decimal trailing zeros", when: `context.args.rate == decimal("1.2345")`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"rate":1.234500}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"rate":1.2346}`) }},
		{name: "args null member omitted", when: `!(context.args has note)`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"note":null}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"note":"x"}`) }},
		{name: "args nested null member omitted", when: `context.args.o has a && !(context.args.o has b)`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"o":{"a":1,"b":null}}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"o":{"a":1,"b":false}}`) }},
		{name: "args null in array dropped", when: `context.args.tags == ["a"]`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"tags":[null,"a",null]}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"tags":["a","b"]}`) }},
		{name: "args empty", when: `!(context.args has amount)`,
			allow: func(r *policy.Request) { r.Args = nil }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"amount":1}`) }},
		{name: "args white space only is empty", when: `!(context.args has amount)`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage("  \n") }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"amount":1}`) }},
		{name: "args key with spaces", when: `context.args has "odd key" && context.args["odd key"] == "v"`,
			allow: func(r *policy.Request) { r.Args = json.RawMessage(`{"odd key":"v"}`) }, deny: func(r *policy.Request) { r.Args = json.RawMessage(`{"odd key":"w"}`) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.policies
			if text == "" {
				text = `@id("p") permit(principal, action, resource) when { ` + tc.when + ` };`
			}
			e := newEngine(t, text, tc.opts...)
			if tc.allow != nil {
				req := baseRequest()
				tc.allow(req)
				d := decide(t, e, req)
				if !d.Allowed || !equalStrings(d.Policies, []string{"p"}) {
					t.Errorf("allow case: decision %+v, want allowed by p", d)
				}
			}
			req := baseRequest()
			tc.deny(req)
			d := decide(t, e, req)
			if d.Allowed {
				t.Errorf("deny case: allowed by %q", d.Policies)
			}
			if len(d.Errors) != 0 {
				t.Errorf("deny case: evaluation errors %+v, want a clean deny", d.Errors)
			}
			if d.Reason != "no policy permits this call" {
				t.Errorf("deny case: Reason = %q", d.Reason)
			}
		})
	}
}

func TestDecideRequestErrors(t *testing.T) {
	e := newEngine(t, `@id("p") permit(principal, action, resource);`)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		req     func(*policy.Request)
		wantMsg string
		// notMsg must not appear: argument values stay out of errors,
		// which reach audit records and spans.
		notMsg string
	}{
		{name: "no agent", req: func(r *policy.Request) { r.Agent = identity.Identity{} }, wantMsg: "no agent"},
		{name: "no agent in listing", req: func(r *policy.Request) { r.Agent = identity.Identity{}; r.Listing = true }, wantMsg: "no agent"},
		{name: "no tool", req: func(r *policy.Request) { r.Tool = policy.Tool{} }, wantMsg: "no tool"},
		{name: "no tool with governance action", req: func(r *policy.Request) { r.Tool = policy.Tool{}; r.Action = policy.ActionChangeToolset }, wantMsg: "no tool"},
		{name: "delegation without delegatee", req: func(r *policy.Request) { r.Tool = policy.Tool{}; r.Action = policy.ActionDelegate }, wantMsg: "no delegatee"},
		{name: "cancelled ctx", ctx: cancelled, wantMsg: "canceled"},
		{name: "cancelled ctx in listing", ctx: cancelled, req: func(r *policy.Request) { r.Listing = true }, wantMsg: "canceled"},
		{name: "args array", req: func(r *policy.Request) { r.Args = json.RawMessage(`[1,2]`) }, wantMsg: "not a JSON object"},
		{name: "args string", req: func(r *policy.Request) { r.Args = json.RawMessage(`"x"`) }, wantMsg: "not a JSON object"},
		{name: "args number", req: func(r *policy.Request) { r.Args = json.RawMessage(`1`) }, wantMsg: "not a JSON object"},
		{name: "args null", req: func(r *policy.Request) { r.Args = json.RawMessage(`null`) }, wantMsg: "not a JSON object"},
		{name: "args invalid JSON", req: func(r *policy.Request) { r.Args = json.RawMessage(`{"a":`) }, wantMsg: "arguments"},
		{name: "args repeated key", req: func(r *policy.Request) { r.Args = json.RawMessage(`{"a":1,"a":2}`) }, wantMsg: "repeated object key"},
		{name: "args trailing data", req: func(r *policy.Request) { r.Args = json.RawMessage(`{}{}`) }, wantMsg: "trailing data"},
		{name: "five fractional digits", req: func(r *policy.Request) { r.Args = json.RawMessage(`{"x":0.00001}`) }, wantMsg: "x: number is not representable", notMsg: "0.00001"},
		{name: "many fractional digits", req: func(r *policy.Request) { r.Args = json.RawMessage(`{"x":3.14159}`) }, wantMsg: "x: number is not representable", notMsg: "3.14159"},
		{name: "integer beyond Long", req: func(r *policy.Request) { r.Args = json.RawMessage(`{"x":12345678901234567890}`) }, wantMsg: "x: number is not representable", notMsg: "12345678901234567890"},
		{name: "negative integer beyond Long", req: func(r *policy.Request) { r.Args = json.RawMessage(`{"x":-9223372036854775809}`) }, wantMsg: "x: number is not representable", notMsg: "-9223372036854775809"},
		{name: "decimal beyond range", req: func(r *policy.Request) { r.Args = json.RawMessage(`{"x":1000000000000000.5}`) }, wantMsg: "x: number is not representable", notMsg: "1000000000000000.5"},
		{name: "huge exponent", req: func(r *policy.Request) { r.Args = json.RawMessage(`{"x":1e400}`) }, wantMsg: "x: number is not representable", notMsg: "1e400"},
		{name: "tiny exponent", req: func(r *policy.Request) { r.Args = json.RawMessage(`{"x":1e-5}`) }, wantMsg: "x: number is not representable", notMsg: "1e-5"},
		{name: "bad number nested in object", req: func(r *policy.Request) { r.Args = json.RawMessage(`{"outer":{"inner":0.123456}}`) }, wantMsg: "outer"},
		{name: "bad number nested in array", req: func(r *policy.Request) { r.Args = json.RawMessage(`{"list":[1,2,0.123456]}`) }, wantMsg: "list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			req := baseRequest()
			if tc.req != nil {
				tc.req(req)
			}
			d, err := e.Decide(ctx, req)
			if err == nil {
				t.Fatalf("Decide = %+v, want error", d)
			}
			if d.Allowed {
				t.Error("Allowed with an error")
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tc.wantMsg)
			}
			if tc.notMsg != "" && strings.Contains(err.Error(), tc.notMsg) {
				t.Errorf("error %q quotes the argument's value %q", err, tc.notMsg)
			}
		})
	}
}

func TestListing(t *testing.T) {
	tests := []struct {
		name     string
		policies string
		req      func(*policy.Request)
		allowed  bool
		policy   []string
	}{
		{
			name:     "permit conditioned on args is allowed",
			policies: `@id("p") permit(principal, action, resource) when { context.args.amount < 100 };`,
			req:      func(r *policy.Request) { r.Args = json.RawMessage(`{"amount":500}`) },
			allowed:  true, policy: []string{"p"},
		},
		{
			name:     "permit conditioned on missing args is allowed without error",
			policies: `@id("p") permit(principal, action, resource) when { context.args.amount < 100 };`,
			req:      func(r *policy.Request) { r.Args = nil },
			allowed:  true, policy: []string{"p"},
		},
		{
			name: "forbid conditioned on args does not hide",
			policies: `
@id("p") permit(principal, action, resource);
@id("f") forbid(principal, action, resource) when { context.args.amount > 100 };
`,
			req:     func(r *policy.Request) { r.Args = json.RawMessage(`{"amount":500}`) },
			allowed: true, policy: []string{"p"},
		},
		{
			name: "forbid unless approval does not hide",
			policies: `
@id("p") permit(principal, action, resource);
@id("f") forbid(principal, action, resource) unless { context.approval.granted };
`,
			allowed: true, policy: []string{"p"},
		},
		{
			name:     "permit conditioned on approval is allowed",
			policies: `@id("p") permit(principal, action, resource) when { context.approval.granted };`,
			allowed:  true, policy: []string{"p"},
		},
		{
			name: "unconditional forbid hides",
			policies: `
@id("p") permit(principal, action, resource);
@id("f") forbid(principal, action == Action::"refund", resource);
`,
			allowed: false, policy: []string{"f"},
		},
		{
			name:     "no permit hides",
			policies: `@id("p") permit(principal, action == Action::"other", resource) when { context.args.amount < 100 };`,
			allowed:  false,
		},
		{
			name:     "scope still applies",
			policies: `@id("p") permit(principal in AgentGroup::"nobody", action, resource) when { context.args.amount < 100 };`,
			allowed:  false,
		},
		{
			name: "task condition in own clause honoured (matching)",
			policies: `
@id("p") permit(principal, action, resource)
  when { context.task.purpose == "refunds" }
  when { context.args.amount < 100 };
`,
			req:     func(r *policy.Request) { r.Task.Purpose = "refunds"; r.Args = json.RawMessage(`{"amount":500}`) },
			allowed: true, policy: []string{"p"},
		},
		{
			name: "task condition in own clause honoured (not matching)",
			policies: `
@id("p") permit(principal, action, resource)
  when { context.task.purpose == "refunds" }
  when { context.args.amount < 100 };
`,
			req:     func(r *policy.Request) { r.Task.Purpose = "search"; r.Args = json.RawMessage(`{"amount":1}`) },
			allowed: false,
		},
		{
			name: "forbid on task taint hides",
			policies: `
@id("p") permit(principal, action, resource);
@id("f") forbid(principal, action, resource) when { context.task.taint.contains("untrusted") };
`,
			req:     func(r *policy.Request) { r.Task.Taint = []string{"untrusted"} },
			allowed: false, policy: []string{"f"},
		},
		{
			name: "forbid on task taint does not hide a clean task",
			policies: `
@id("p") permit(principal, action, resource);
@id("f") forbid(principal, action, resource) when { context.task.taint.contains("untrusted") };
`,
			req:     func(r *policy.Request) { r.Task.Taint = []string{"web"} },
			allowed: true, policy: []string{"p"},
		},
		{
			name: "forbid with an args clause does not hide even when its task clause matches",
			policies: `
@id("p") permit(principal, action, resource);
@id("f") forbid(principal, action, resource) when { context.task.calls >= 3 } when { context.args.x == 1 };
`,
			req:     func(r *policy.Request) { r.Task.Calls = 5 },
			allowed: true, policy: []string{"p"},
		},
		{
			name: "forbid on resource hides",
			policies: `
@id("p") permit(principal, action, resource);
@id("f") forbid(principal, action, resource) when { resource.destructive };
`,
			req:     func(r *policy.Request) { r.Tool.Destructive = true },
			allowed: false, policy: []string{"f"},
		},
		{
			name:     "invalid args are ignored",
			policies: `@id("p") permit(principal, action, resource);`,
			req:      func(r *policy.Request) { r.Args = json.RawMessage(`[not json`) },
			allowed:  true, policy: []string{"p"},
		},
		{
			name:     "governance action in listing",
			policies: `@id("p") permit(principal, action in Action::"call_tool", resource) when { context.args.x == 1 };`,
			req: func(r *policy.Request) {
				r.Action = policy.ActionDelegate
				r.Delegatee = support.ID
			},
			allowed: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, tc.policies)
			req := baseRequest()
			if tc.req != nil {
				tc.req(req)
			}
			req.Listing = true
			d := decide(t, e, req)
			if d.Allowed != tc.allowed {
				t.Errorf("Allowed = %v, want %v (decision %+v)", d.Allowed, tc.allowed, d)
			}
			if !equalStrings(d.Policies, tc.policy) {
				t.Errorf("Policies = %q, want %q", d.Policies, tc.policy)
			}
			if len(d.Errors) != 0 {
				t.Errorf("Errors = %+v", d.Errors)
			}
			if d.Revision != e.Set().Digest() {
				t.Errorf("Revision = %q, want %q", d.Revision, e.Set().Digest())
			}
		})
	}
}

// TestListingDiffersFromCall checks that the same request is decided on its
// arguments when it is a call.
func TestListingDiffersFromCall(t *testing.T) {
	e := newEngine(t, `
@id("p") permit(principal, action, resource) when { context.args.amount < 100 };
@id("f") forbid(principal, action, resource) when { context.args has to && context.args.to == "evil" };
`)
	tests := []struct {
		args    string
		listing bool
		allowed bool
	}{
		{args: `{"amount":500}`, listing: false, allowed: false},
		{args: `{"amount":500}`, listing: true, allowed: true},
		{args: `{"amount":5,"to":"evil"}`, listing: false, allowed: false},
		{args: `{"amount":5,"to":"evil"}`, listing: true, allowed: true},
		{args: `{"amount":5,"to":"good"}`, listing: false, allowed: true},
	}
	for _, tc := range tests {
		req := baseRequest()
		req.Args = json.RawMessage(tc.args)
		req.Listing = tc.listing
		if d := decide(t, e, req); d.Allowed != tc.allowed {
			t.Errorf("args %s listing %v: Allowed = %v, want %v", tc.args, tc.listing, d.Allowed, tc.allowed)
		}
	}
}

func TestToolChangeIsSeen(t *testing.T) {
	e := newEngine(t, `
@id("p") permit(principal, action, resource) when { resource.read_only && resource.risk < 2 && !resource.labels.contains("pii") };
@id("f") forbid(principal, action, resource in Toolset::"blocked");
`)
	labels := []string{"public"}
	steps := []struct {
		name    string
		tool    policy.Tool
		mutate  func()
		allowed bool
	}{
		{name: "read only", tool: policy.Tool{Name: "t", ReadOnly: true, Labels: labels}, allowed: true},
		{name: "same again", tool: policy.Tool{Name: "t", ReadOnly: true, Labels: labels}, allowed: true},
		{name: "no longer read only", tool: policy.Tool{Name: "t", ReadOnly: false, Labels: labels}, allowed: false},
		{name: "read only again", tool: policy.Tool{Name: "t", ReadOnly: true, Labels: labels}, allowed: true},
		{name: "risk raised", tool: policy.Tool{Name: "t", ReadOnly: true, Risk: policy.RiskHigh, Labels: labels}, allowed: false},
		{name: "risk lowered", tool: policy.Tool{Name: "t", ReadOnly: true, Risk: policy.RiskMedium, Labels: labels}, allowed: true},
		{name: "label added", tool: policy.Tool{Name: "t", ReadOnly: true, Labels: []string{"public", "pii"}}, allowed: false},
		{name: "label removed", tool: policy.Tool{Name: "t", ReadOnly: true, Labels: labels}, allowed: true},
		{name: "label slice mutated in place", tool: policy.Tool{Name: "t", ReadOnly: true, Labels: labels}, mutate: func() { labels[0] = "pii" }, allowed: false},
		{name: "moved into blocked toolset", tool: policy.Tool{Name: "t", ReadOnly: true, Toolset: "blocked"}, allowed: false},
		{name: "moved out of blocked toolset", tool: policy.Tool{Name: "t", ReadOnly: true, Toolset: "ok"}, allowed: true},
	}
	for _, s := range steps {
		if s.mutate != nil {
			s.mutate()
		}
		req := baseRequest()
		req.Tool = s.tool
		if d := decide(t, e, req); d.Allowed != s.allowed {
			t.Errorf("%s: Allowed = %v, want %v (%+v)", s.name, d.Allowed, s.allowed, d)
		}
	}
}

func TestGovernanceAction(t *testing.T) {
	e := newEngine(t, `
@id("tools") permit(principal, action in Action::"call_tool", resource);
@id("deleg") permit(principal, action == Action::"delegate", resource is Agent) when { context.delegation.depth < 2 && resource.name == "support" };
`)
	tests := []struct {
		name      string
		agent     identity.Identity
		action    string
		tool      string
		delegatee spiffeid.ID
		allowed   bool
		policy    []string
	}{
		{name: "tool call", agent: billing, tool: "refund", allowed: true, policy: []string{"tools"}},
		{name: "delegate", agent: billing, action: policy.ActionDelegate, delegatee: support.ID, allowed: true, policy: []string{"deleg"}},
		{name: "delegate to an agent policy does not name", agent: billing, action: policy.ActionDelegate, delegatee: billing.ID, allowed: false},
		{name: "delegate too deep", agent: delegated, action: policy.ActionDelegate, delegatee: support.ID, allowed: false},
		{name: "change_toolset not in call_tool", agent: billing, action: policy.ActionChangeToolset, tool: "refund", allowed: false},
		{name: "change_prompt not in call_tool", agent: billing, action: policy.ActionChangePrompt, tool: "refund", allowed: false},
		{name: "custom action not in call_tool", agent: billing, action: "frobnicate", tool: "refund", allowed: false},
		{name: "tool call after governance action", agent: billing, tool: "refund", allowed: true, policy: []string{"tools"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest()
			req.Agent = tc.agent
			req.Action = tc.action
			req.Tool.Name = tc.tool
			if tc.action == policy.ActionDelegate {
				req.Tool = policy.Tool{}
				req.Delegatee = tc.delegatee
			}
			d := decide(t, e, req)
			if d.Allowed != tc.allowed || !equalStrings(d.Policies, tc.policy) {
				t.Errorf("decision %+v, want allowed=%v by %q", d, tc.allowed, tc.policy)
			}
		})
	}
}

func TestGroupsCachedPerAgent(t *testing.T) {
	var calls atomic.Int64
	e := newEngine(t, `@id("p") permit(principal in AgentGroup::"g", action, resource);`,
		policy.WithGroups(func(id spiffeid.ID) []string {
			calls.Add(1)
			return []string{"g"}
		}))
	for i := 0; i < 5; i++ {
		for _, a := range []identity.Identity{billing, support} {
			req := baseRequest()
			req.Agent = a
			if d := decide(t, e, req); !d.Allowed {
				t.Fatalf("denied: %+v", d)
			}
		}
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("groups function called %d times for 2 agents, want 2", got)
	}
}

func TestWithAgentGroupsCopiesMap(t *testing.T) {
	m := map[string][]string{"spiffe://example.org/agents/billing": {"g"}}
	opt := policy.WithAgentGroups(m)
	m["spiffe://example.org/agents/billing"][0] = "other"
	m["spiffe://example.org/agents/support"] = []string{"g"}
	e := newEngine(t, `@id("p") permit(principal in AgentGroup::"g", action, resource);`, opt)
	if d := decide(t, e, baseRequest()); !d.Allowed {
		t.Errorf("billing denied after caller changed its map: %+v", d)
	}
	req := baseRequest()
	req.Agent = support
	if d := decide(t, e, req); d.Allowed {
		t.Error("support allowed by an entry added after WithAgentGroups")
	}
}

func TestDecideConcurrent(t *testing.T) {
	e := newEngine(t, `
@id("read") permit(principal in TrustDomain::"example.org", action, resource) when { resource.read_only };
@id("small") @approval("one") permit(principal, action == Action::"refund", resource) when { context.args.amount < 100 };
@id("foreign") @reason("foreign agent") forbid(principal in TrustDomain::"other.org", action, resource);
`, policy.WithAgentGroups(map[string][]string{billing.ID.String(): {"finance"}}))

	type check struct {
		req     policy.Request
		allowed bool
	}
	var checks []check
	for i := 0; i < 8; i++ {
		for _, agent := range []identity.Identity{billing, support, foreign, delegated} {
			for _, ro := range []bool{false, true} {
				for _, amount := range []int{5, 500} {
					for _, listing := range []bool{false, true} {
						r := *baseRequest()
						r.Agent = agent
						// Share tool names across goroutines with
						// differing attributes to exercise the cache.
						r.Tool = policy.Tool{Name: fmt.Sprintf("tool-%d", i%3), ReadOnly: ro, Labels: []string{"x"}}
						if i%2 == 0 {
							r.Tool.Name = "refund"
						}
						r.Args = json.RawMessage(fmt.Sprintf(`{"amount":%d}`, amount))
						r.Listing = listing
						allowed := agent.ID.TrustDomain().Name() == "example.org" &&
							(ro || (r.Tool.Name == "refund" && (amount < 100 || listing)))
						checks = append(checks, check{req: r, allowed: allowed})
					}
				}
			}
		}
	}

	const workers = 32
	var wg sync.WaitGroup
	errs := make(chan string, workers*len(checks))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := range checks {
				c := checks[(n+w*7)%len(checks)]
				req := c.req
				d, err := e.Decide(context.Background(), &req)
				if err != nil {
					errs <- err.Error()
					continue
				}
				if d.Allowed != c.allowed {
					errs <- fmt.Sprintf("agent %s tool %+v args %s listing %v: allowed %v, want %v",
						req.Agent, req.Tool, req.Args, req.Listing, d.Allowed, c.allowed)
				}
				if d.Revision != e.Set().Digest() {
					errs <- "wrong revision " + d.Revision
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	n := 0
	for msg := range errs {
		if n < 10 {
			t.Error(msg)
		}
		n++
	}
	if n > 0 {
		t.Errorf("%d failures in total", n)
	}
}

func TestEngineFunc(t *testing.T) {
	var got *policy.Request
	var e policy.Engine = policy.EngineFunc(func(_ context.Context, req *policy.Request) (policy.Decision, error) {
		got = req
		return policy.Decision{Allowed: true, Reason: "ok"}, nil
	})
	req := baseRequest()
	d, err := e.Decide(context.Background(), req)
	if err != nil || !d.Allowed || d.Reason != "ok" || got != req {
		t.Errorf("EngineFunc: %+v, %v, saw %p want %p", d, err, got, req)
	}
}

func TestRequestActionName(t *testing.T) {
	tests := []struct {
		action, tool, want string
	}{
		{tool: "refund", want: "refund"},
		{action: policy.ActionDelegate, tool: "refund", want: "delegate"},
	}
	for _, tc := range tests {
		r := policy.Request{Action: tc.action, Tool: policy.Tool{Name: tc.tool}}
		if got := r.ActionName(); got != tc.want {
			t.Errorf("ActionName(%q, %q) = %q, want %q", tc.action, tc.tool, got, tc.want)
		}
	}
}

func TestReservedAndStrings(t *testing.T) {
	for _, n := range []string{"call_tool", "change_toolset", "change_prompt", "delegate"} {
		if !policy.Reserved(n) {
			t.Errorf("Reserved(%q) = false", n)
		}
	}
	for _, n := range []string{"", "refund", "Delegate", "call_tools"} {
		if policy.Reserved(n) {
			t.Errorf("Reserved(%q) = true", n)
		}
	}
	risks := map[policy.Risk]string{policy.RiskLow: "low", policy.RiskMedium: "medium", policy.RiskHigh: "high", policy.RiskCritical: "critical", 7: "risk(7)"}
	for r, want := range risks {
		if r.String() != want {
			t.Errorf("Risk(%d).String() = %q, want %q", int(r), r.String(), want)
		}
	}
	sens := map[policy.Sensitivity]string{policy.Public: "public", policy.Internal: "internal", policy.Confidential: "confidential", policy.Restricted: "restricted", -1: "sensitivity(-1)"}
	for s, want := range sens {
		if s.String() != want {
			t.Errorf("Sensitivity(%d).String() = %q, want %q", int(s), s.String(), want)
		}
	}
}
