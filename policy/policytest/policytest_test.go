package policytest_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

const (
	billingID = "spiffe://example.org/agents/billing"
	supportID = "spiffe://example.org/agents/support"
)

func req(agent, tool string, args string) *policy.Request {
	return &policy.Request{
		Agent: identity.MustParse(agent),
		Tool:  policy.Tool{Name: tool},
		Args:  json.RawMessage(args),
	}
}

func TestAllowAllDenyAll(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		engine *policytest.Recorder
		want   policy.Decision
	}{
		{name: "allow all", engine: policytest.AllowAll(), want: policy.Decision{Allowed: true, Policies: []string{"allow-all"}}},
		{name: "deny all", engine: policytest.DenyAll("maintenance"), want: policy.Decision{Policies: []string{"deny-all"}, Reason: "maintenance"}},
		{name: "deny all empty reason", engine: policytest.DenyAll(""), want: policy.Decision{Policies: []string{"deny-all"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, listing := range []bool{false, true} {
				r := req(billingID, "refund", `{}`)
				r.Listing = listing
				d, err := tc.engine.Decide(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(d, tc.want) {
					t.Errorf("listing=%v: Decide = %+v, want %+v", listing, d, tc.want)
				}
			}
			if _, err := tc.engine.Decide(cancelled, req(billingID, "refund", `{}`)); !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled ctx: err = %v, want context.Canceled", err)
			}
			// The cancelled call is recorded too.
			if n := len(tc.engine.Requests()); n != 3 {
				t.Errorf("recorded %d requests, want 3", n)
			}
		})
	}
}

func TestFunc(t *testing.T) {
	var seen []*policy.Request
	e := policytest.Func(func(r *policy.Request) policy.Decision {
		seen = append(seen, r)
		return policy.Decision{Allowed: r.Tool.Name == "lookup", Reason: "by tool"}
	})
	r1 := req(billingID, "lookup", `{}`)
	d, err := e.Decide(context.Background(), r1)
	if err != nil || !d.Allowed || d.Reason != "by tool" {
		t.Errorf("lookup: %+v, %v", d, err)
	}
	d, err = e.Decide(context.Background(), req(billingID, "refund", `{}`))
	if err != nil || d.Allowed {
		t.Errorf("refund: %+v, %v", d, err)
	}
	if len(seen) != 2 || seen[0] != r1 {
		t.Errorf("function saw %d requests; first is the caller's request: %v", len(seen), len(seen) > 0 && seen[0] == r1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Decide(ctx, req(billingID, "lookup", `{}`)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if len(seen) != 2 {
		t.Errorf("function called with a cancelled ctx")
	}
}

func TestRules(t *testing.T) {
	big := func(r *policy.Request) bool {
		var a struct{ Amount int }
		_ = json.Unmarshal(r.Args, &a)
		return a.Amount > 100
	}
	never := func(*policy.Request) bool { return false }
	tests := []struct {
		name    string
		rules   []policytest.Rule
		req     *policy.Request
		listing bool
		action  string
		want    policy.Decision
	}{
		{
			name: "default deny",
			req:  req(billingID, "refund", `{}`),
			want: policy.Decision{Reason: "no rule allows this call"},
		},
		{
			name:  "allow",
			rules: []policytest.Rule{{ID: "a", Effect: policytest.Allow}},
			req:   req(billingID, "refund", `{}`),
			want:  policy.Decision{Allowed: true, Policies: []string{"a"}},
		},
		{
			name: "every matching allow named",
			rules: []policytest.Rule{
				{ID: "a1", Effect: policytest.Allow},
				{ID: "a2", Effect: policytest.Allow, Tool: "refund"},
				{ID: "a3", Effect: policytest.Allow, Tool: "other"},
			},
			req:  req(billingID, "refund", `{}`),
			want: policy.Decision{Allowed: true, Policies: []string{"a1", "a2"}},
		},
		{
			name: "deny wins",
			rules: []policytest.Rule{
				{ID: "a", Effect: policytest.Allow},
				{ID: "d", Effect: policytest.Deny, Reason: "frozen"},
			},
			req:  req(billingID, "refund", `{}`),
			want: policy.Decision{Policies: []string{"d"}, Reason: "frozen"},
		},
		{
			name: "deny wins regardless of order",
			rules: []policytest.Rule{
				{ID: "d", Effect: policytest.Deny, Reason: "frozen"},
				{ID: "a", Effect: policytest.Allow, Approval: "two-person"},
			},
			req:  req(billingID, "refund", `{}`),
			want: policy.Decision{Policies: []string{"d"}, Reason: "frozen"},
		},
		{
			name: "several denies: first reason",
			rules: []policytest.Rule{
				{ID: "d1", Effect: policytest.Deny},
				{ID: "d2", Effect: policytest.Deny, Reason: "second"},
				{ID: "d3", Effect: policytest.Deny, Reason: "third"},
			},
			req:  req(billingID, "refund", `{}`),
			want: policy.Decision{Policies: []string{"d1", "d2", "d3"}, Reason: "second"},
		},
		{
			name:  "deny without reason",
			rules: []policytest.Rule{{ID: "d", Effect: policytest.Deny}, {ID: "e", Effect: policytest.Deny}},
			req:   req(billingID, "refund", `{}`),
			want:  policy.Decision{Policies: []string{"d", "e"}, Reason: "forbidden by d"},
		},
		{
			name:  "agent filter matches",
			rules: []policytest.Rule{{ID: "a", Effect: policytest.Allow, Agent: billingID}},
			req:   req(billingID, "refund", `{}`),
			want:  policy.Decision{Allowed: true, Policies: []string{"a"}},
		},
		{
			name:  "agent filter excludes",
			rules: []policytest.Rule{{ID: "a", Effect: policytest.Allow, Agent: billingID}},
			req:   req(supportID, "refund", `{}`),
			want:  policy.Decision{Reason: "no rule allows this call"},
		},
		{
			name: "deny for other agent does not apply",
			rules: []policytest.Rule{
				{ID: "a", Effect: policytest.Allow},
				{ID: "d", Effect: policytest.Deny, Agent: supportID},
			},
			req:  req(billingID, "refund", `{}`),
			want: policy.Decision{Allowed: true, Policies: []string{"a"}},
		},
		{
			name:  "tool filter excludes",
			rules: []policytest.Rule{{ID: "a", Effect: policytest.Allow, Tool: "lookup"}},
			req:   req(billingID, "refund", `{}`),
			want:  policy.Decision{Reason: "no rule allows this call"},
		},
		{
			name:   "tool filter matches governance action name",
			rules:  []policytest.Rule{{ID: "a", Effect: policytest.Allow, Tool: policy.ActionDelegate}},
			req:    req(billingID, "refund", `{}`),
			action: policy.ActionDelegate,
			want:   policy.Decision{Allowed: true, Policies: []string{"a"}},
		},
		{
			name:   "tool filter on tool name does not match governance action",
			rules:  []policytest.Rule{{ID: "a", Effect: policytest.Allow, Tool: "refund"}},
			req:    req(billingID, "refund", `{}`),
			action: policy.ActionDelegate,
			want:   policy.Decision{Reason: "no rule allows this call"},
		},
		{
			name:  "when true allows",
			rules: []policytest.Rule{{ID: "a", Effect: policytest.Allow, When: big}},
			req:   req(billingID, "refund", `{"amount":500}`),
			want:  policy.Decision{Allowed: true, Policies: []string{"a"}},
		},
		{
			name:  "when false does not allow",
			rules: []policytest.Rule{{ID: "a", Effect: policytest.Allow, When: big}},
			req:   req(billingID, "refund", `{"amount":5}`),
			want:  policy.Decision{Reason: "no rule allows this call"},
		},
		{
			name: "deny when true",
			rules: []policytest.Rule{
				{ID: "a", Effect: policytest.Allow},
				{ID: "d", Effect: policytest.Deny, When: big, Reason: "too big"},
			},
			req:  req(billingID, "refund", `{"amount":500}`),
			want: policy.Decision{Policies: []string{"d"}, Reason: "too big"},
		},
		{
			name: "deny when false",
			rules: []policytest.Rule{
				{ID: "a", Effect: policytest.Allow},
				{ID: "d", Effect: policytest.Deny, When: big, Reason: "too big"},
			},
			req:  req(billingID, "refund", `{"amount":5}`),
			want: policy.Decision{Allowed: true, Policies: []string{"a"}},
		},
		{
			name:  "approval obligation",
			rules: []policytest.Rule{{ID: "a", Effect: policytest.Allow, Approval: "two-person"}, {ID: "b", Effect: policytest.Allow}, {ID: "c", Effect: policytest.Allow, Approval: "manager"}},
			req:   req(billingID, "refund", `{}`),
			want: policy.Decision{Allowed: true, Policies: []string{"a", "b", "c"}, Obligations: []policy.Obligation{
				{Name: policy.ObligationApproval, Value: "two-person", PolicyID: "a"},
				{Name: policy.ObligationApproval, Value: "manager", PolicyID: "c"},
			}},
		},
		{
			name:  "approval of a non-matching rule is no obligation",
			rules: []policytest.Rule{{ID: "a", Effect: policytest.Allow}, {ID: "b", Effect: policytest.Allow, Tool: "other", Approval: "x"}},
			req:   req(billingID, "refund", `{}`),
			want:  policy.Decision{Allowed: true, Policies: []string{"a"}},
		},
		{
			name:    "listing: allow rule's When taken to match",
			rules:   []policytest.Rule{{ID: "a", Effect: policytest.Allow, When: never}},
			req:     req(billingID, "refund", `{}`),
			listing: true,
			want:    policy.Decision{Allowed: true, Policies: []string{"a"}},
		},
		{
			name: "listing: deny rule with When taken not to match",
			rules: []policytest.Rule{
				{ID: "a", Effect: policytest.Allow},
				{ID: "d", Effect: policytest.Deny, When: func(*policy.Request) bool { return true }},
			},
			req:     req(billingID, "refund", `{}`),
			listing: true,
			want:    policy.Decision{Allowed: true, Policies: []string{"a"}},
		},
		{
			name: "listing: deny rule without When applies",
			rules: []policytest.Rule{
				{ID: "a", Effect: policytest.Allow},
				{ID: "d", Effect: policytest.Deny, Reason: "hidden"},
			},
			req:     req(billingID, "refund", `{}`),
			listing: true,
			want:    policy.Decision{Policies: []string{"d"}, Reason: "hidden"},
		},
		{
			name:    "listing: filters still apply",
			rules:   []policytest.Rule{{ID: "a", Effect: policytest.Allow, Tool: "other", When: never}},
			req:     req(billingID, "refund", `{}`),
			listing: true,
			want:    policy.Decision{Reason: "no rule allows this call"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := policytest.NewRules(tc.rules...)
			tc.req.Listing = tc.listing
			tc.req.Action = tc.action
			d, err := e.Decide(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.want.Allowed || d.Reason != tc.want.Reason ||
				!reflect.DeepEqual(d.Policies, tc.want.Policies) || !reflect.DeepEqual(d.Obligations, tc.want.Obligations) {
				t.Errorf("Decide = %+v, want %+v", d, tc.want)
			}
		})
	}
}

func TestRulesListingDoesNotCallWhen(t *testing.T) {
	called := 0
	when := func(*policy.Request) bool { called++; return true }
	e := policytest.NewRules(
		policytest.Rule{ID: "a", Effect: policytest.Allow, When: when},
		policytest.Rule{ID: "d", Effect: policytest.Deny, When: when},
	)
	r := req(billingID, "refund", `{}`)
	r.Listing = true
	if d, err := e.Decide(context.Background(), r); err != nil || !d.Allowed {
		t.Errorf("listing: %+v, %v", d, err)
	}
	if called != 0 {
		t.Errorf("When called %d times in a listing", called)
	}
	r.Listing = false
	if d, err := e.Decide(context.Background(), r); err != nil || d.Allowed {
		t.Errorf("call: %+v, %v", d, err)
	}
	if called != 2 {
		t.Errorf("When called %d times in a call, want 2", called)
	}
}

func TestRulesCopiesTable(t *testing.T) {
	rules := []policytest.Rule{{ID: "a", Effect: policytest.Allow}}
	e := policytest.NewRules(rules...)
	rules[0].Effect = policytest.Deny
	d, err := e.Decide(context.Background(), req(billingID, "refund", `{}`))
	if err != nil || !d.Allowed {
		t.Errorf("decision changed after caller edited the rule slice: %+v, %v", d, err)
	}
}

func TestRulesCancelled(t *testing.T) {
	e := policytest.NewRules(policytest.Rule{ID: "a", Effect: policytest.Allow})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Decide(ctx, req(billingID, "refund", `{}`)); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestRecorder(t *testing.T) {
	inner := policytest.AllowAll()
	rec := policytest.Record(inner)
	if len(rec.Requests()) != 0 || len(rec.Calls()) != 0 {
		t.Fatal("new recorder is not empty")
	}
	args := json.RawMessage(`{"a":1}`)
	r1 := req(billingID, "one", "")
	r1.Args = args
	r2 := req(billingID, "two", `{}`)
	r2.Listing = true
	r3 := req(supportID, "three", `{}`)
	for _, r := range []*policy.Request{r1, r2, r3} {
		d, err := rec.Decide(context.Background(), r)
		if err != nil || !d.Allowed {
			t.Fatalf("Decide: %+v, %v", d, err)
		}
	}
	// Changing the caller's request or args afterwards does not change the
	// record.
	args[2] = 'b'
	r1.Tool.Name = "changed"

	tools := func(rs []policy.Request) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Tool.Name)
		}
		return out
	}
	if got := tools(rec.Requests()); !reflect.DeepEqual(got, []string{"one", "two", "three"}) {
		t.Errorf("Requests = %q", got)
	}
	if got := tools(rec.Calls()); !reflect.DeepEqual(got, []string{"one", "three"}) {
		t.Errorf("Calls = %q", got)
	}
	if got := string(rec.Requests()[0].Args); got != `{"a":1}` {
		t.Errorf("recorded args = %s, want {\"a\":1}", got)
	}
	if got := rec.Calls()[1].Agent.ID.String(); got != supportID {
		t.Errorf("recorded agent = %s", got)
	}
	// The wrapped engine saw every request too.
	if n := len(inner.Requests()); n != 3 {
		t.Errorf("inner engine recorded %d requests, want 3", n)
	}
	// Requests returns a copy.
	got := rec.Requests()
	got[0].Tool.Name = "mutated"
	if rec.Requests()[0].Tool.Name != "one" {
		t.Error("Requests result aliases the recorder's storage")
	}
}

func TestRecorderPassesErrors(t *testing.T) {
	boom := errors.New("boom")
	rec := policytest.Record(policy.EngineFunc(func(context.Context, *policy.Request) (policy.Decision, error) {
		return policy.Decision{}, boom
	}))
	if _, err := rec.Decide(context.Background(), req(billingID, "x", `{}`)); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	if len(rec.Calls()) != 1 {
		t.Errorf("failed call not recorded")
	}
}

func TestRecorderConcurrent(t *testing.T) {
	rules := policytest.NewRules(policytest.Rule{ID: "a", Effect: policytest.Allow, Tool: "even"})
	const n = 200
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tool := "odd"
			if i%2 == 0 {
				tool = "even"
			}
			r := req(billingID, tool, `{}`)
			r.Listing = i%4 == 0
			d, err := rules.Decide(context.Background(), r)
			if err != nil || d.Allowed != (tool == "even") {
				t.Errorf("%s: %+v, %v", tool, d, err)
			}
		}(i)
	}
	wg.Wait()
	if got := len(rules.Requests()); got != n {
		t.Errorf("Requests = %d, want %d", got, n)
	}
	if got := len(rules.Calls()); got != n-n/4 {
		t.Errorf("Calls = %d, want %d", got, n-n/4)
	}
}
