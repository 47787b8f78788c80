package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/agentguard/go-sdk/policy"
)

func TestShadowSet(t *testing.T) {
	enforced := policy.MustParseSet("enforced.cedar", allowRefund)
	next := policy.MustParseSet("next.cedar", allowRefund+`@id("limit")
@reason("refunds over 100 need a human")
forbid (principal, action == Action::"refund", resource) when { context.args.amount > 100 };
`)
	e, err := policy.NewCedarEngine(enforced, policy.WithShadow(next))
	if err != nil {
		t.Fatal(err)
	}
	if e.Shadow() != next {
		t.Fatal("Shadow() is not the shadow set")
	}

	small, big := baseRequest(), baseRequest()
	small.Args, big.Args = []byte(`{"amount":5}`), []byte(`{"amount":500}`)

	// The same decision: nothing recorded.
	if d := decide(t, e, small); !d.Allowed || len(d.Shadow) != 0 {
		t.Fatalf("agreeing shadow: %+v", d)
	}
	// The shadow set would deny: the call is still allowed, and the
	// difference is recorded.
	d := decide(t, e, big)
	if !d.Allowed || d.Revision != enforced.Digest() || !slices.Equal(d.Policies, []string{"allow-refund"}) {
		t.Fatalf("the shadow set was enforced: %+v", d)
	}
	want := policy.ShadowDecision{Mode: policy.ShadowSet, Revision: next.Digest(), Allowed: false, Policies: []string{"limit"}, Reason: "refunds over 100 need a human"}
	if len(d.Shadow) != 1 || !shadowEqual(d.Shadow[0], want) {
		t.Fatalf("Shadow = %+v, want %+v", d.Shadow, want)
	}

	// The other way round: enforced denies, shadow would allow.
	if _, err := e.Swap(next); err != nil {
		t.Fatal(err)
	}
	if err := e.SetShadow(enforced); err != nil {
		t.Fatal(err)
	}
	d = decide(t, e, big)
	if d.Allowed || len(d.Shadow) != 1 || !d.Shadow[0].Allowed || d.Shadow[0].Revision != enforced.Digest() {
		t.Fatalf("enforced deny, shadow allow: %+v", d)
	}

	// Listings are not shadowed.
	list := baseRequest()
	list.Listing = true
	if d := decide(t, e, list); len(d.Shadow) != 0 {
		t.Fatalf("listing shadowed: %+v", d)
	}

	// Removing the shadow set stops it.
	if err := e.SetShadow(nil); err != nil {
		t.Fatal(err)
	}
	if d := decide(t, e, big); len(d.Shadow) != 0 || e.Shadow() != nil {
		t.Fatalf("after SetShadow(nil): %+v", d)
	}
}

func TestShadowObligationsDiffer(t *testing.T) {
	e := newEngine(t, allowRefund)
	next := policy.MustParseSet("next.cedar", strings.Replace(allowRefund, "permit", "@approval(\"two-person\")\npermit", 1))
	if err := e.SetShadow(next); err != nil {
		t.Fatal(err)
	}
	d := decide(t, e, baseRequest())
	if !d.Allowed || len(d.Obligations) != 0 || len(d.Shadow) != 1 {
		t.Fatalf("%+v", d)
	}
	if sh := d.Shadow[0]; !sh.Allowed || len(sh.Obligations) != 1 || sh.Obligations[0].Value != "two-person" {
		t.Fatalf("shadow = %+v, want allow with an approval obligation", sh)
	}
}

func TestShadowSetValidated(t *testing.T) {
	schema, err := policy.NewSchema(policy.Tool{Name: "refund"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.NewCedarEngine(policy.MustParseSet("a.cedar", allowRefund), policy.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	bad := policy.MustParseSet("b.cedar", `@id("x") permit (principal, action == Action::"refnud", resource);`)
	if err := e.SetShadow(bad); err == nil || !strings.Contains(err.Error(), "shadow") {
		t.Fatalf("SetShadow(invalid) = %v", err)
	}
	if e.Shadow() != nil {
		t.Fatal("an invalid shadow set was installed")
	}
	if _, err := policy.NewCedarEngine(policy.MustParseSet("a.cedar", allowRefund), policy.WithSchema(schema), policy.WithShadow(bad)); err == nil {
		t.Fatal("NewCedarEngine with an invalid shadow set: no error")
	}
	if _, err := e.Swap(bad); err == nil {
		t.Fatal("Swap(invalid): no error")
	}
	if _, err := e.Swap(nil); err == nil {
		t.Fatal("Swap(nil): no error")
	}
}

func TestLogOnly(t *testing.T) {
	e := newEngine(t, allowRefund+`@id("trial-limit")
@log_only("trying out a lower limit")
@reason("refunds over 50 need a human")
forbid (principal, action == Action::"refund", resource) when { context.args.amount > 50 };

@id("trial-export")
@log_only
permit (principal, action == Action::"export", resource);

@id("broken")
@log_only
forbid (principal, action == Action::"refund", resource) when { context.args.missing == 1 };
`)
	if got := e.Set().LogOnly(); !slices.Equal(got, []string{"broken", "trial-export", "trial-limit"}) {
		t.Fatalf("LogOnly = %v", got)
	}

	// A log-only forbid that matches does not deny; what it would have done
	// is recorded. The log-only policy that errors does not deny either.
	req := baseRequest()
	req.Args = []byte(`{"amount":80}`)
	d := decide(t, e, req)
	if !d.Allowed || !slices.Equal(d.Policies, []string{"allow-refund"}) || len(d.Errors) != 0 {
		t.Fatalf("a log-only policy was enforced: %+v", d)
	}
	if len(d.Shadow) != 1 || d.Shadow[0].Mode != policy.ShadowLogOnly || d.Shadow[0].Allowed ||
		d.Shadow[0].Revision != e.Set().Digest() || !slices.Contains(d.Shadow[0].Policies, "trial-limit") {
		t.Fatalf("Shadow = %+v, want a log_only deny by trial-limit", d.Shadow)
	}

	// A log-only permit does not allow.
	exp := baseRequest()
	exp.Tool = policy.Tool{Name: "export"}
	d = decide(t, e, exp)
	if d.Allowed || len(d.Shadow) != 1 || !d.Shadow[0].Allowed || !slices.Equal(d.Shadow[0].Policies, []string{"trial-export"}) {
		t.Fatalf("log-only permit: %+v", d)
	}

	// A listing ignores log-only policies: the tool stays hidden.
	exp.Listing = true
	if d := decide(t, e, exp); d.Allowed {
		t.Fatalf("a log-only permit showed a tool: %+v", d)
	}
}

func TestLogOnlyInShadowSetStaysOut(t *testing.T) {
	e := newEngine(t, allowRefund)
	next := policy.MustParseSet("next.cedar", allowRefund+"@log_only\n"+forbidRefund)
	if err := e.SetShadow(next); err != nil {
		t.Fatal(err)
	}
	// The shadow set would enforce only its enforced policies: it agrees.
	if d := decide(t, e, baseRequest()); len(d.Shadow) != 0 {
		t.Fatalf("a shadow set's log-only policy counted: %+v", d)
	}
}

func shadowEqual(a, b policy.ShadowDecision) bool {
	return a.Mode == b.Mode && a.Revision == b.Revision && a.Allowed == b.Allowed &&
		slices.Equal(a.Policies, b.Policies) && a.Reason == b.Reason && len(a.Errors) == len(b.Errors)
}
