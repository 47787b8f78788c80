package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/agentguard/go-sdk/identity"
)

// chooser makes the random choices of the generators below: from data while
// it lasts (so that a fuzzer steers them), then from a seeded generator.
type chooser struct {
	data []byte
	r    *rand.Rand
}

func newChooser(seed uint64, data []byte) *chooser {
	return &chooser{data: data, r: rand.New(rand.NewPCG(seed, 0x1d3c5))}
}

// intn returns a choice in [0, n).
func (c *chooser) intn(n int) int {
	if n <= 1 {
		return 0
	}
	if len(c.data) > 0 {
		b := int(c.data[0])
		c.data = c.data[1:]
		return b % n
	}
	return c.r.IntN(n)
}

// oneIn is true with probability 1/n.
func (c *chooser) oneIn(n int) bool { return c.intn(n) == 0 }

func pick[T any](c *chooser, xs []T) T { return xs[c.intn(len(xs))] }

// A small universe, so that scopes, graphs and requests often meet.
var (
	genTypes   = []types.EntityType{"U", "G", "ns::R"}
	genIDs     = []types.String{"0", "1", "2", "3"}
	genActions = []types.String{"a0", "a1", "a2", "a3", "a4"}
)

func (c *chooser) entity() cedar.EntityUID {
	return cedar.NewEntityUID(pick(c, genTypes), pick(c, genIDs))
}

func (c *chooser) action() cedar.EntityUID {
	return cedar.NewEntityUID("Action", pick(c, genActions))
}

// entities returns a random entity graph over the universe: some entities
// are absent, parents may be absent or form cycles, attributes may be
// missing.
func (c *chooser) entities() cedar.EntityMap {
	m := cedar.EntityMap{}
	var all []cedar.EntityUID
	for _, t := range genTypes {
		for _, id := range genIDs {
			all = append(all, cedar.NewEntityUID(t, id))
		}
	}
	for _, a := range genActions {
		all = append(all, cedar.NewEntityUID("Action", a))
	}
	for _, uid := range all {
		if c.intn(10) >= 6 {
			continue
		}
		var parents []cedar.EntityUID
		for range c.intn(4) {
			switch {
			case c.oneIn(8):
				parents = append(parents, pick(c, all))
			case uid.Type == "Action":
				parents = append(parents, c.action())
			default:
				parents = append(parents, c.entity())
			}
		}
		attrs := cedar.RecordMap{}
		if !c.oneIn(3) {
			attrs["n"] = cedar.Long(c.intn(4))
		}
		if c.oneIn(2) {
			attrs["tag"] = cedar.String(pick(c, []string{"x", "y"}))
		}
		if c.oneIn(2) {
			attrs["owner"] = c.entity()
		}
		m[uid] = cedar.Entity{UID: uid, Parents: cedar.NewEntityUIDSet(parents...), Attributes: cedar.NewRecord(attrs)}
	}
	return m
}

func (c *chooser) context() cedar.Record {
	rec := cedar.RecordMap{}
	if !c.oneIn(3) {
		rec["k"] = cedar.Long(c.intn(3))
	}
	if c.oneIn(2) {
		rec["big"] = cedar.Long(pick(c, []int64{1, math.MaxInt64}))
	}
	return cedar.NewRecord(rec)
}

func (c *chooser) request() cedar.Request {
	return cedar.Request{Principal: c.entity(), Action: c.action(), Resource: c.entity(), Context: c.context()}
}

// scope returns a principal or resource scope.
func (c *chooser) scope(v string) string {
	switch c.intn(5) {
	case 1:
		return fmt.Sprintf("%s == %s", v, c.entity())
	case 2:
		return fmt.Sprintf("%s in %s", v, c.entity())
	case 3:
		return fmt.Sprintf("%s is %s", v, pick(c, genTypes))
	case 4:
		return fmt.Sprintf("%s is %s in %s", v, pick(c, genTypes), c.entity())
	}
	return v
}

func (c *chooser) actionScope() string {
	switch c.intn(4) {
	case 1:
		return fmt.Sprintf("action == %s", c.action())
	case 2:
		return fmt.Sprintf("action in %s", c.action())
	case 3:
		var as []string
		for range c.intn(4) {
			as = append(as, c.action().String())
		}
		return fmt.Sprintf("action in [%s]", strings.Join(as, ", "))
	}
	return "action"
}

// condition returns a condition body; some error on some requests (missing
// attributes, entities absent from the store, overflow).
func (c *chooser) condition() string {
	v := pick(c, []string{"principal", "resource"})
	switch c.intn(14) {
	case 0:
		return fmt.Sprintf("%s.n > %d", v, c.intn(4))
	case 1:
		return fmt.Sprintf("%s has n && %s.n == %d", v, v, c.intn(4))
	case 2:
		return fmt.Sprintf(`%s.tag == "x"`, v)
	case 3:
		return "principal in resource.owner"
	case 4:
		return fmt.Sprintf("%s in %s", v, c.entity())
	case 5:
		return fmt.Sprintf("%s in [%s, %s]", v, c.entity(), c.entity())
	case 6:
		return fmt.Sprintf("context.k == %d", c.intn(3))
	case 7:
		return "context.big + 1 > 0"
	case 8:
		return pick(c, []string{"true", "false"})
	case 9:
		return "principal.owner == resource"
	case 10:
		return fmt.Sprintf("action in %s", c.action())
	case 11:
		return fmt.Sprintf("%s is %s", v, pick(c, genTypes))
	case 12:
		return "resource.n < context.k"
	}
	return fmt.Sprintf("context has k && %s.owner in principal", v)
}

func (c *chooser) policyText() string {
	var b strings.Builder
	b.WriteString(pick(c, []string{"permit", "forbid"}))
	fmt.Fprintf(&b, " (%s, %s, %s)", c.scope("principal"), c.actionScope(), c.scope("resource"))
	for range c.intn(3) {
		fmt.Fprintf(&b, " %s { %s }", pick(c, []string{"when", "unless"}), c.condition())
	}
	b.WriteString(";\n")
	return b.String()
}

func (c *chooser) policySet(t testing.TB, n int) *cedar.PolicySet {
	t.Helper()
	var text strings.Builder
	for range n {
		text.WriteString(c.policyText())
	}
	list, err := cedar.NewPolicyListFromBytes("gen.cedar", []byte(text.String()))
	if err != nil {
		t.Fatalf("generated policies do not parse: %v\n%s", err, text.String())
	}
	ps := cedar.NewPolicySet()
	for i, p := range list {
		ps.Add(cedar.PolicyID(fmt.Sprintf("p%02d", i)), p)
	}
	return ps
}

type outcome struct {
	decision cedar.Decision
	reasons  []string
	errors   []string
}

func outcomeOf(d cedar.Decision, diag cedar.Diagnostic) outcome {
	o := outcome{decision: d}
	for _, r := range diag.Reasons {
		o.reasons = append(o.reasons, string(r.PolicyID))
	}
	for _, e := range diag.Errors {
		o.errors = append(o.errors, string(e.PolicyID)+": "+e.Message)
	}
	slices.Sort(o.reasons)
	slices.Sort(o.errors)
	return o
}

// checkIndex compares the index with evaluating the whole set, for one
// request. Beyond the outcome, it checks that every policy the index leaves
// out is, on its own, false without error: an under-inclusion a forbid would
// hide from the outcome still shows. It returns how many policies the index
// selected.
func checkIndex(t testing.TB, ps *cedar.PolicySet, ix *index, ents types.EntityGetter, req cedar.Request) int {
	t.Helper()
	want := outcomeOf(cedar.Authorize(ps, ents, req))
	got := outcomeOf(ix.authorize(ents, req))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("indexed %+v, whole set %+v\nrequest %v %v %v %v\nentities %s\npolicies\n%s",
			got, want, req.Principal, req.Action, req.Resource, req.Context, entitiesString(ents), ps.MarshalCedar())
	}
	cs := ix.policies(ents, req.Principal, req.Action, req.Resource).(*candidateSet)
	in := map[cedar.PolicyID]bool{}
	for i, p := range cs.pos {
		if i > 0 && cs.pos[i-1] >= p {
			t.Fatalf("candidates not in strictly increasing order: %v", cs.pos)
		}
		in[ix.entries[p].id] = true
	}
	for id, p := range ps.All() {
		if in[id] {
			continue
		}
		d, diag := cedar.Authorize(cedar.PolicyMap{id: p}, ents, req)
		if d != cedar.Deny || len(diag.Reasons) > 0 || len(diag.Errors) > 0 {
			t.Fatalf("index left out %s, which alone gives %v %+v\nrequest %v %v %v %v\nentities %s\npolicy %s",
				id, d, diag, req.Principal, req.Action, req.Resource, req.Context, entitiesString(ents), p.MarshalCedar())
		}
	}
	return len(cs.pos)
}

func entitiesString(ents types.EntityGetter) string {
	b, _ := json.Marshal(ents)
	return string(b)
}

// runCase generates a policy set, an entity graph and some requests from c,
// and checks the index on each request.
func runCase(t testing.TB, c *chooser, maxPolicies int) (selected, total int) {
	ps := c.policySet(t, c.intn(maxPolicies+1))
	ix := newIndex(ps)
	if len(ix.entries) != len(ps.Map()) {
		t.Fatalf("index has %d policies, set %d", len(ix.entries), len(ps.Map()))
	}
	var ents types.EntityGetter = c.entities()
	if c.oneIn(20) {
		ents = nil
	}
	for range 1 + c.intn(4) {
		selected += checkIndex(t, ps, ix, ents, c.request())
		total += len(ix.entries)
	}
	return selected, total
}

func TestIndexEquivalence(t *testing.T) {
	cases := 1500
	if testing.Short() {
		cases = 300
	}
	var selected, total int
	for i := range cases {
		s, n := runCase(t, newChooser(uint64(i), nil), 24)
		selected += s
		total += n
	}
	t.Logf("the index selected %d of %d policy evaluations (%.0f%%)", selected, total, 100*float64(selected)/float64(total))
}

func FuzzIndexEquivalence(f *testing.F) {
	f.Add(uint64(0), []byte{})
	f.Add(uint64(1), []byte{12, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add(uint64(2), []byte("principal in resource.owner"))
	f.Add(uint64(42), []byte{255, 4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1})
	f.Add(uint64(7), []byte{20, 1, 4, 4, 3, 3, 2, 0, 1, 2, 3, 0, 0, 0, 0, 6, 6, 6, 6, 6})
	f.Fuzz(func(t *testing.T, seed uint64, data []byte) {
		runCase(t, newChooser(seed, data), 16)
	})
}

func TestIndexAncestors(t *testing.T) {
	u := func(id string) cedar.EntityUID { return cedar.NewEntityUID("U", cedar.String(id)) }
	ents := cedar.EntityMap{
		// a -> b (present) -> c (absent); b -> a (cycle); a -> d (present, no parents)
		u("a"): {UID: u("a"), Parents: cedar.NewEntityUIDSet(u("b"), u("d"))},
		u("b"): {UID: u("b"), Parents: cedar.NewEntityUIDSet(u("c"), u("a"))},
		u("d"): {UID: u("d")},
		u("s"): {UID: u("s"), Parents: cedar.NewEntityUIDSet(u("s"))},
	}
	tests := []struct {
		ents types.EntityGetter
		uid  string
		want []string
	}{
		{ents, "a", []string{"a", "b", "c", "d"}},
		{ents, "b", []string{"a", "b", "c", "d"}},
		{ents, "c", []string{"c"}},
		{ents, "d", []string{"d"}},
		{ents, "s", []string{"s"}},
		{ents, "x", []string{"x"}},
		{nil, "a", []string{"a"}},
	}
	for _, tc := range tests {
		var got []string
		for _, a := range ancestors(tc.ents, u(tc.uid), nil) {
			got = append(got, string(a.ID))
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("ancestors(%s) = %v, want %v", tc.uid, got, tc.want)
		}
	}

	// A long chain spills from the slice search to a set.
	long := cedar.EntityMap{}
	for i := range 100 {
		id := u(fmt.Sprint(i))
		long[id] = cedar.Entity{UID: id, Parents: cedar.NewEntityUIDSet(u(fmt.Sprint(i+1)), u(fmt.Sprint(i/2)))}
	}
	if got := ancestors(long, u("0"), nil); len(got) != 101 {
		t.Errorf("a chain of 100 present entities and one absent has %d ancestors, want 101", len(got))
	}
}

// quickstartPolicies are the quickstart's policies and more: trust domains,
// toolsets, the tool action group, types, governance actions, and policies
// that error.
const quickstartPolicies = `
@id("support-read-tickets")
permit (principal in AgentGroup::"support", action == Action::"read_ticket", resource);
@id("support-refunds")
permit (principal in AgentGroup::"support", action == Action::"issue_refund", resource);
@id("refund-limit") @reason("refunds over 100 need a human")
forbid (principal, action == Action::"issue_refund", resource) when { context.args.amount > 100 };
@id("support-email")
permit (principal in AgentGroup::"support", action == Action::"send_email", resource);
@id("no-external-email-after-pii")
forbid (principal, action == Action::"send_email", resource)
when { context.task.taint.contains("pii") }
when { !(context.args.to like "*@example.com") };
@id("no-email-on-confidential-tasks")
forbid (principal, action == Action::"send_email", resource) when { context.task.sensitivity >= 2 };
@id("data-team-export")
permit (principal in AgentGroup::"data-team", action == Action::"export_customers", resource);
@id("support-delegates-lookups")
permit (principal in AgentGroup::"support", action == Action::"delegate", resource) when { resource.name == "order-lookup" };
@id("lookup-read-tickets")
permit (principal, action == Action::"read_ticket", resource) when { principal.name == "order-lookup" && context.delegation.depth > 0 };
@id("lookup-export")
permit (principal, action == Action::"export_customers", resource) when { principal.name == "order-lookup" };

@id("domain-reads") @approval("none")
permit (principal in TrustDomain::"example.org", action in [Action::"read_ticket", Action::"list_orders"], resource in Toolset::"tickets");
@id("foreign-domain") forbid (principal in TrustDomain::"other.org", action in Action::"call_tool", resource);
@id("risky-tools") @approval("manager")
forbid (principal, action in Action::"call_tool", resource is Tool) when { resource.risk >= 3 } unless { context.approval.granted };
@id("agents-change-prompt") permit (principal is Agent, action == Action::"change_prompt", resource);
@id("admin-toolsets") permit (principal is Agent in AgentGroup::"admins", action == Action::"change_toolset", resource is Tool in Toolset::"admin");
@id("errs-on-missing-arg") forbid (principal in AgentGroup::"support", action == Action::"list_orders", resource) when { context.args.customer == "" };
@id("errs-on-missing-attr") permit (principal, action == Action::"export_customers", resource) when { resource.owner == principal };
@id("untrusted") forbid (principal, action, resource) when { context.task.taint.contains("untrusted") };
`

func TestEngineIndexedMatchesNaive(t *testing.T) {
	set := MustParseSet("quickstart.cedar", quickstartPolicies)
	groups := WithAgentGroups(map[string][]string{
		"spiffe://example.org/agents/support":      {"support"},
		"spiffe://example.org/agents/order-lookup": {"data-team"},
		"spiffe://example.org/agents/admin":        {"admins", "support"},
	})
	indexed, err := NewCedarEngine(set, groups)
	if err != nil {
		t.Fatal(err)
	}
	naive, err := NewCedarEngine(set, groups)
	if err != nil {
		t.Fatal(err)
	}
	naive.naive = true

	agents := []identity.Identity{
		identity.MustParse("spiffe://example.org/agents/support"),
		identity.MustParse("spiffe://example.org/agents/order-lookup", "spiffe://example.org/agents/support"),
		identity.MustParse("spiffe://example.org/agents/order-lookup"),
		identity.MustParse("spiffe://example.org/agents/admin"),
		identity.MustParse("spiffe://other.org/agents/support"),
	}
	tools := []Tool{
		{Name: "read_ticket", Toolset: "tickets"},
		{Name: "list_orders", Toolset: "tickets"},
		{Name: "issue_refund", Toolset: "payments", Risk: RiskHigh},
		{Name: "send_email", Toolset: "mail", Risk: RiskCritical},
		{Name: "export_customers", Toolset: "crm"},
		{Name: "admin_panel", Toolset: "admin"},
		{Name: "orphan"},
	}
	args := []string{`{}`, `{"amount":40}`, `{"amount":400}`, `{"to":"a@example.com"}`, `{"to":"x@evil.test","customer":""}`}
	tasks := []Task{{}, {Sensitivity: Confidential}, {Taint: []string{"pii"}}, {Taint: []string{"untrusted"}}}
	type variant struct {
		action    string
		delegatee string
	}
	variants := []variant{{}, {action: ActionChangePrompt}, {action: ActionChangeToolset},
		{action: ActionDelegate, delegatee: "spiffe://example.org/agents/order-lookup"},
		{action: ActionDelegate, delegatee: "spiffe://example.org/agents/support"}}

	n, allowed, errored := 0, 0, 0
	for _, agent := range agents {
		for _, tool := range tools {
			for _, a := range args {
				for _, task := range tasks {
					for _, v := range variants {
						for _, listing := range []bool{false, true} {
							req := &Request{Agent: agent, Tool: tool, Args: json.RawMessage(a), Task: task,
								Action: v.action, Listing: listing, Approval: Approval{Granted: n%3 == 0}}
							if v.action == ActionDelegate {
								req.Tool = Tool{}
								req.Delegatee = identity.MustParse(v.delegatee).ID
							}
							want, werr := naive.Decide(context.Background(), req)
							got, gerr := indexed.Decide(context.Background(), req)
							if !reflect.DeepEqual(got, want) || fmt.Sprint(gerr) != fmt.Sprint(werr) {
								t.Fatalf("request %+v\nindexed %+v, %v\nnaive   %+v, %v", req, got, gerr, want, werr)
							}
							n++
							if got.Allowed {
								allowed++
							}
							if len(got.Errors) > 0 {
								errored++
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d requests agree: %d allowed, %d with errors", n, allowed, errored)
	if allowed == 0 || allowed == n || errored == 0 {
		t.Errorf("the requests do not exercise allow, deny and errors")
	}
}

func TestIndexPrunes(t *testing.T) {
	const globals = `
@id("global-untrusted") forbid (principal, action, resource) when { context.task.taint.contains("malware") };
@id("global-risky") forbid (principal, action in Action::"call_tool", resource) when { resource.risk >= 3 && !context.approval.granted };
`
	const tenants, k = 1000, 417
	set := MustParseSet("tenants.cedar", tenantPolicies(5*tenants)+globals)
	e, err := NewCedarEngine(set, tenantGroups(k))
	if err != nil {
		t.Fatal(err)
	}
	req := tenantRequest(k)
	ents := e.entities(req)
	var got []string
	for id := range set.index.policies(ents, ents.agent.UID, ents.action.UID, ents.resource.UID).All() {
		got = append(got, string(id))
	}
	want := []string{"global-risky", "global-untrusted", "t417-pay", "t417-pay-limit", "t417-sensitive", "t417-taint"}
	if !slices.Equal(got, want) {
		t.Errorf("candidates %v, want %v", got, want)
	}
	d, err := e.Decide(context.Background(), req)
	if err != nil || !d.Allowed || !slices.Equal(d.Policies, []string{"t417-pay"}) {
		t.Errorf("Decide = %+v, %v; want allowed by t417-pay", d, err)
	}
}
