package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// These tests check how a policy rollout shows in what the guard records:
// the revision of the set that decided, a shadow set's and @log_only
// policies' decisions (recorded, never enforced), with real Cedar engines.

const (
	rolloutRoot = "spiffe://example.org/agent/root"
	rolloutSub  = "spiffe://example.org/agent/sub"
)

// rolloutEnv is a guard over a Cedar engine, with its spans recorded.
type rolloutEnv struct {
	*agentguardtest.Env
	spans *tracetest.SpanRecorder
}

func newRolloutEnv(t *testing.T, engine policy.Engine, opts ...agentguard.Option) *rolloutEnv {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	opts = append([]agentguard.Option{agentguard.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr)))}, opts...)
	return &rolloutEnv{Env: agentguardtest.New(t, engine, "v", opts...), spans: sr}
}

func mustCedar(t *testing.T, set *policy.Set, opts ...policy.CedarOption) *policy.CedarEngine {
	t.Helper()
	e, err := policy.NewCedarEngine(set, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// invoke calls a counting tool named name and returns the error, the
// call's single tool_call record (the recorder is reset first) and span.
func (e *rolloutEnv) invoke(t *testing.T, name, args string, runs *atomic.Int64) (audit.Event, sdktrace.ReadOnlySpan, error) {
	t.Helper()
	e.Audit.Reset()
	before := len(e.spans.Ended())
	_, err := e.Guard.Invoke(context.Background(), counted(name, runs), agentguard.Call{Args: json.RawMessage(args)})
	evs := e.Audit.Kind(audit.KindToolCall)
	if len(evs) != 1 {
		t.Fatalf("%s: %d tool_call records, want 1", name, len(evs))
	}
	spans := e.spans.Ended()
	if len(spans) != before+1 {
		t.Fatalf("%s: %d new spans, want 1", name, len(spans)-before)
	}
	return evs[0], spans[len(spans)-1], err
}

func spanAttr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	var v attribute.Value
	found := false
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			v, found = a.Value, true // the last setting wins
		}
	}
	return v, found
}

// spanEvents returns the attributes of the span's events named name.
func spanEvents(s sdktrace.ReadOnlySpan, name string) []map[string]attribute.Value {
	var out []map[string]attribute.Value
	for _, e := range s.Events() {
		if e.Name != name {
			continue
		}
		m := map[string]attribute.Value{}
		for _, a := range e.Attributes {
			m[string(a.Key)] = a.Value
		}
		out = append(out, m)
	}
	return out
}

// shadowDecisionKey is the span attribute of a shadow mode's decision.
func shadowDecisionKey(mode string) string { return string(agentguard.AttrShadowDecision) + "." + mode }

// checkShadowSpan checks that span s has one EventShadow per entry of want,
// in order, matching it, and the per-mode decision attribute; or, for an
// empty want, neither.
func checkShadowSpan(t *testing.T, s sdktrace.ReadOnlySpan, want []audit.Shadow) {
	t.Helper()
	evs := spanEvents(s, agentguard.EventShadow)
	if len(evs) != len(want) {
		t.Fatalf("span has %d %s events, want %d", len(evs), agentguard.EventShadow, len(want))
	}
	for i, w := range want {
		ev := evs[i]
		if got := ev[string(agentguard.AttrShadowMode)].AsString(); got != w.Mode {
			t.Errorf("shadow event %d: mode %q, want %q", i, got, w.Mode)
		}
		if got := ev[string(agentguard.AttrDecision)].AsString(); got != w.Decision {
			t.Errorf("shadow event %d: decision %q, want %q", i, got, w.Decision)
		}
		if got := ev[string(agentguard.AttrRevision)].AsString(); got != w.Revision {
			t.Errorf("shadow event %d: revision %q, want %q", i, got, w.Revision)
		}
		if got := ev[string(agentguard.AttrPolicies)].AsStringSlice(); !slices.Equal(got, w.Policies) {
			t.Errorf("shadow event %d: policies %v, want %v", i, got, w.Policies)
		}
		if got := ev[string(agentguard.AttrReason)].AsString(); got != w.Reason {
			t.Errorf("shadow event %d: reason %q, want %q", i, got, w.Reason)
		}
	}
	for _, mode := range []string{policy.ShadowSet, policy.ShadowLogOnly} {
		var last string
		for _, w := range want {
			if w.Mode == mode {
				last = w.Decision
			}
		}
		v, ok := spanAttr(s, shadowDecisionKey(mode))
		switch {
		case last == "" && ok:
			t.Errorf("span attribute %s = %q, want none", shadowDecisionKey(mode), v.Emit())
		case last != "" && (!ok || v.AsString() != last):
			t.Errorf("span attribute %s = %q (set %v), want %q", shadowDecisionKey(mode), v.Emit(), ok, last)
		}
	}
}

func checkShadowRecord(t *testing.T, e audit.Event, want []audit.Shadow) {
	t.Helper()
	if len(e.Shadow) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(e.Shadow, want) {
		t.Errorf("record Shadow = %+v\nwant %+v", e.Shadow, want)
	}
}

const refundPermit = `@id("allow-refund") permit(principal, action == Action::"refund", resource);
`

// TestPolicyRevision: a call's record and span carry the digest of the set
// that decided it; after Swap, the next call is decided by, and carries the
// digest of, the new set.
func TestPolicyRevision(t *testing.T) {
	oldSet := policy.MustParseSet("old.cedar", refundPermit)
	newSet := policy.MustParseSet("new.cedar", refundPermit+`
@id("refunds-paused") @reason("refunds are paused")
forbid(principal, action == Action::"refund", resource);
`)
	if oldSet.Digest() == newSet.Digest() || oldSet.Digest() == "" {
		t.Fatalf("digests %q and %q: want two different ones", oldSet.Digest(), newSet.Digest())
	}
	engine := mustCedar(t, oldSet)
	env := newRolloutEnv(t, engine)
	var runs atomic.Int64

	rec, span, err := env.invoke(t, "refund", `{"amount":5}`, &runs)
	if err != nil || runs.Load() != 1 {
		t.Fatalf("under the old set: err = %v, runs %d; want allowed", err, runs.Load())
	}
	if rec.Revision != oldSet.Digest() || rec.Decision != audit.Allow || !slices.Equal(rec.Policies, []string{"allow-refund"}) {
		t.Errorf("record = revision %q decision %q policies %v; want %q, allow, [allow-refund]", rec.Revision, rec.Decision, rec.Policies, oldSet.Digest())
	}
	if v, _ := spanAttr(span, string(agentguard.AttrRevision)); v.AsString() != oldSet.Digest() {
		t.Errorf("span %s = %q, want %q", agentguard.AttrRevision, v.Emit(), oldSet.Digest())
	}
	if evs := spanEvents(span, agentguard.EventAuthorize); len(evs) != 1 || evs[0][string(agentguard.AttrRevision)].AsString() != oldSet.Digest() {
		t.Errorf("authorize events = %v, want one with revision %q", evs, oldSet.Digest())
	}

	prev, err := engine.Swap(newSet)
	if err != nil || prev != oldSet || engine.Set() != newSet {
		t.Fatalf("Swap = %p, %v; want the old set %p back and the new one in force", prev, err, oldSet)
	}

	rec, span, err = env.invoke(t, "refund", `{"amount":5}`, &runs)
	var de *agentguard.DenyError
	if !errors.As(err, &de) || de.Step != agentguard.StepAuthorize || !slices.Equal(de.Policies, []string{"refunds-paused"}) || de.Reason != "refunds are paused" {
		t.Fatalf("under the new set: err = %v; want a denial by refunds-paused", err)
	}
	if runs.Load() != 1 {
		t.Errorf("tool ran %d times, want 1 (the new set forbids)", runs.Load())
	}
	if rec.Revision != newSet.Digest() || rec.Decision != audit.Deny || rec.Step != agentguard.StepAuthorize ||
		!slices.Equal(rec.Policies, []string{"refunds-paused"}) {
		t.Errorf("record = revision %q decision %q step %q policies %v; want %q, deny at authorize by [refunds-paused]",
			rec.Revision, rec.Decision, rec.Step, rec.Policies, newSet.Digest())
	}
	if v, _ := spanAttr(span, string(agentguard.AttrRevision)); v.AsString() != newSet.Digest() {
		t.Errorf("span %s = %q, want %q", agentguard.AttrRevision, v.Emit(), newSet.Digest())
	}

	// Back to the old set: allowed again, under the old digest.
	if _, err := engine.Swap(oldSet); err != nil {
		t.Fatal(err)
	}
	rec, _, err = env.invoke(t, "refund", `{"amount":5}`, &runs)
	if err != nil || rec.Revision != oldSet.Digest() || runs.Load() != 2 {
		t.Errorf("after swapping back: err = %v, revision %q, runs %d", err, rec.Revision, runs.Load())
	}
}

// TestShadowSet: a shadow set's decision is recorded where it differs from
// the enforced one, and never enforced.
func TestShadowSet(t *testing.T) {
	enforced := policy.MustParseSet("live.cedar", refundPermit)
	stricter := policy.MustParseSet("next.cedar", refundPermit+`
@id("next-no-big-refunds") @reason("refunds over 100 need a person")
forbid(principal, action == Action::"refund", resource) when { context.args.amount > 100 };
`)

	t.Run("enforced allows, shadow would deny", func(t *testing.T) {
		env := newRolloutEnv(t, mustCedar(t, enforced, policy.WithShadow(stricter)))
		var runs atomic.Int64
		rec, span, err := env.invoke(t, "refund", `{"amount":500}`, &runs)
		if err != nil || runs.Load() != 1 {
			t.Fatalf("err = %v, runs %d; the enforced set allows", err, runs.Load())
		}
		if rec.Decision != audit.Allow || rec.Outcome != audit.OutcomeOK || rec.Revision != enforced.Digest() ||
			!slices.Equal(rec.Policies, []string{"allow-refund"}) {
			t.Errorf("record = %+v; want allowed by allow-refund under %s", rec, enforced.Digest())
		}
		want := []audit.Shadow{{Mode: policy.ShadowSet, Revision: stricter.Digest(), Decision: audit.Deny,
			Policies: []string{"next-no-big-refunds"}, Reason: "refunds over 100 need a person"}}
		checkShadowRecord(t, rec, want)
		checkShadowSpan(t, span, want)

		// Where the shadow set agrees, nothing is recorded.
		rec, span, err = env.invoke(t, "refund", `{"amount":5}`, &runs)
		if err != nil || runs.Load() != 2 {
			t.Fatalf("small refund: err = %v", err)
		}
		checkShadowRecord(t, rec, nil)
		checkShadowSpan(t, span, nil)
	})

	t.Run("enforced denies, shadow would allow", func(t *testing.T) {
		// The live set forbids big refunds; the next version drops that.
		live := stricter
		next := policy.MustParseSet("next.cedar", refundPermit+`
@id("next-allow-lookup") permit(principal, action == Action::"lookup", resource);
`)
		env := newRolloutEnv(t, mustCedar(t, live, policy.WithShadow(next)))
		var runs atomic.Int64
		rec, span, err := env.invoke(t, "refund", `{"amount":500}`, &runs)
		var de *agentguard.DenyError
		if !errors.As(err, &de) || de.Step != agentguard.StepAuthorize || !slices.Equal(de.Policies, []string{"next-no-big-refunds"}) {
			t.Fatalf("err = %v; want the enforced set's denial", err)
		}
		if runs.Load() != 0 {
			t.Error("tool ran: the shadow set's allow was enforced")
		}
		if rec.Decision != audit.Deny || rec.Step != agentguard.StepAuthorize || rec.Revision != live.Digest() {
			t.Errorf("record = %+v; want a denial at authorize under %s", rec, live.Digest())
		}
		want := []audit.Shadow{{Mode: policy.ShadowSet, Revision: next.Digest(), Decision: audit.Allow,
			Policies: []string{"allow-refund"}}}
		checkShadowRecord(t, rec, want)
		checkShadowSpan(t, span, want)
	})

	t.Run("agreeing shadow set records nothing", func(t *testing.T) {
		// Same decisions, different set (and digest).
		same := policy.MustParseSet("same.cedar", refundPermit+`
@id("other-tool") permit(principal, action == Action::"lookup", resource);
`)
		env := newRolloutEnv(t, mustCedar(t, enforced, policy.WithShadow(same)))
		var runs atomic.Int64
		rec, span, err := env.invoke(t, "refund", `{"amount":500}`, &runs)
		if err != nil {
			t.Fatal(err)
		}
		checkShadowRecord(t, rec, nil)
		checkShadowSpan(t, span, nil)
		// Both deny a tool neither permits: still nothing.
		rec, span, err = env.invoke(t, "delete_account", `{}`, &runs)
		if !errors.Is(err, agentguard.ErrDenied) {
			t.Fatalf("delete_account: err = %v, want a denial", err)
		}
		checkShadowRecord(t, rec, nil)
		checkShadowSpan(t, span, nil)
	})

	t.Run("SetShadow and SetShadow(nil)", func(t *testing.T) {
		engine := mustCedar(t, enforced)
		env := newRolloutEnv(t, engine)
		var runs atomic.Int64
		rec, span, _ := env.invoke(t, "refund", `{"amount":500}`, &runs)
		checkShadowRecord(t, rec, nil)
		checkShadowSpan(t, span, nil)

		if err := engine.SetShadow(stricter); err != nil || engine.Shadow() != stricter {
			t.Fatalf("SetShadow: %v", err)
		}
		rec, span, err := env.invoke(t, "refund", `{"amount":500}`, &runs)
		if err != nil {
			t.Fatalf("with a shadow set: %v", err)
		}
		want := []audit.Shadow{{Mode: policy.ShadowSet, Revision: stricter.Digest(), Decision: audit.Deny,
			Policies: []string{"next-no-big-refunds"}, Reason: "refunds over 100 need a person"}}
		checkShadowRecord(t, rec, want)
		checkShadowSpan(t, span, want)

		if err := engine.SetShadow(nil); err != nil || engine.Shadow() != nil {
			t.Fatalf("SetShadow(nil): %v", err)
		}
		rec, span, err = env.invoke(t, "refund", `{"amount":500}`, &runs)
		if err != nil {
			t.Fatal(err)
		}
		checkShadowRecord(t, rec, nil)
		checkShadowSpan(t, span, nil)
		if runs.Load() != 3 {
			t.Errorf("tool ran %d times, want 3", runs.Load())
		}
	})

	t.Run("swapping the shadow set in", func(t *testing.T) {
		// The usual rollout: try next as a shadow, then swap it in and drop
		// the shadow. The call is then denied by, and recorded under, next.
		engine := mustCedar(t, enforced, policy.WithShadow(stricter))
		env := newRolloutEnv(t, engine)
		var runs atomic.Int64
		if _, err := engine.Swap(stricter); err != nil {
			t.Fatal(err)
		}
		// Shadow and enforced are now the same set: no shadow entry.
		rec, span, err := env.invoke(t, "refund", `{"amount":500}`, &runs)
		if !errors.Is(err, agentguard.ErrDenied) || rec.Revision != stricter.Digest() {
			t.Fatalf("err = %v, revision %q; want a denial under %s", err, rec.Revision, stricter.Digest())
		}
		checkShadowRecord(t, rec, nil)
		checkShadowSpan(t, span, nil)
	})
}

// TestShadowSetNotUsedForListing: listings follow the enforced set only.
func TestShadowSetNotUsedForListing(t *testing.T) {
	live := policy.MustParseSet("live.cedar", `
@id("read") permit(principal, action == Action::"read_ticket", resource);
@id("refund") permit(principal, action == Action::"refund", resource);
`)
	next := policy.MustParseSet("next.cedar", `
@id("read") permit(principal, action == Action::"read_ticket", resource);
@id("delete") permit(principal, action == Action::"delete_account", resource);
`)
	env := newRolloutEnv(t, mustCedar(t, live, policy.WithShadow(next)))
	reg := env.Guard.NewRegistry("helpdesk")
	var runs atomic.Int64
	if err := reg.Register(counted("read_ticket", &runs), counted("refund", &runs), counted("delete_account", &runs)); err != nil {
		t.Fatal(err)
	}
	tools, err := reg.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools {
		names = append(names, tl.Name)
	}
	if !slices.Equal(names, []string{"read_ticket", "refund"}) {
		t.Errorf("List = %v, want [read_ticket refund] (the enforced set's)", names)
	}
}

// TestLogOnlyPolicies: @log_only policies are evaluated and recorded where
// they would change the decision, never enforced.
func TestLogOnlyPolicies(t *testing.T) {
	t.Run("log-only forbid does not deny", func(t *testing.T) {
		set := policy.MustParseSet("p.cedar", refundPermit+`
@id("maybe-cap-refunds") @log_only @reason("refund over 100")
forbid(principal, action == Action::"refund", resource) when { context.args.amount > 100 };
`)
		if got := set.LogOnly(); !slices.Equal(got, []string{"maybe-cap-refunds"}) {
			t.Fatalf("LogOnly = %v", got)
		}
		env := newRolloutEnv(t, mustCedar(t, set))
		var runs atomic.Int64
		rec, span, err := env.invoke(t, "refund", `{"amount":500}`, &runs)
		if err != nil || runs.Load() != 1 {
			t.Fatalf("err = %v, runs %d; a log-only forbid must not deny", err, runs.Load())
		}
		if rec.Decision != audit.Allow || !slices.Equal(rec.Policies, []string{"allow-refund"}) || rec.Revision != set.Digest() {
			t.Errorf("record = %+v; want allowed by allow-refund", rec)
		}
		want := []audit.Shadow{{Mode: policy.ShadowLogOnly, Revision: set.Digest(), Decision: audit.Deny,
			Policies: []string{"maybe-cap-refunds"}, Reason: "refund over 100"}}
		checkShadowRecord(t, rec, want)
		checkShadowSpan(t, span, want)

		// Not matching: nothing recorded.
		rec, span, err = env.invoke(t, "refund", `{"amount":5}`, &runs)
		if err != nil {
			t.Fatal(err)
		}
		checkShadowRecord(t, rec, nil)
		checkShadowSpan(t, span, nil)
	})

	t.Run("log-only permit does not allow", func(t *testing.T) {
		set := policy.MustParseSet("p.cedar", `
@id("read") permit(principal, action == Action::"read_ticket", resource);
@id("maybe-allow-refunds") @log_only("trial")
permit(principal, action == Action::"refund", resource);
`)
		env := newRolloutEnv(t, mustCedar(t, set))
		var runs atomic.Int64
		rec, span, err := env.invoke(t, "refund", `{"amount":5}`, &runs)
		var de *agentguard.DenyError
		if !errors.As(err, &de) || de.Step != agentguard.StepAuthorize {
			t.Fatalf("err = %v; a log-only permit must not allow", err)
		}
		if runs.Load() != 0 {
			t.Error("tool ran")
		}
		if slices.Contains(de.Policies, "maybe-allow-refunds") || slices.Contains(rec.Policies, "maybe-allow-refunds") {
			t.Errorf("the log-only permit is named as deciding: error %v, record %v", de.Policies, rec.Policies)
		}
		want := []audit.Shadow{{Mode: policy.ShadowLogOnly, Revision: set.Digest(), Decision: audit.Allow,
			Policies: []string{"maybe-allow-refunds"}}}
		checkShadowRecord(t, rec, want)
		checkShadowSpan(t, span, want)
	})

	t.Run("log-only forbid that agrees records nothing", func(t *testing.T) {
		set := policy.MustParseSet("p.cedar", refundPermit+`
@id("no-big-refunds") forbid(principal, action == Action::"refund", resource) when { context.args.amount > 100 };
@id("also-no-big-refunds") @log_only forbid(principal, action == Action::"refund", resource) when { context.args.amount > 50 };
`)
		env := newRolloutEnv(t, mustCedar(t, set))
		var runs atomic.Int64
		rec, span, err := env.invoke(t, "refund", `{"amount":500}`, &runs)
		var de *agentguard.DenyError
		if !errors.As(err, &de) || !slices.Equal(de.Policies, []string{"no-big-refunds"}) {
			t.Fatalf("err = %v; want a denial by no-big-refunds only", err)
		}
		checkShadowRecord(t, rec, nil)
		checkShadowSpan(t, span, nil)
		// 75: enforced allows, the log-only forbid would deny.
		rec, span, err = env.invoke(t, "refund", `{"amount":75}`, &runs)
		if err != nil {
			t.Fatal(err)
		}
		want := []audit.Shadow{{Mode: policy.ShadowLogOnly, Revision: set.Digest(), Decision: audit.Deny,
			Policies: []string{"also-no-big-refunds"}, Reason: "forbidden by also-no-big-refunds"}}
		checkShadowRecord(t, rec, want)
		checkShadowSpan(t, span, want)
	})

	t.Run("log-only policy that fails to evaluate does not deny", func(t *testing.T) {
		// An erroring enforced policy denies (fail closed); an erroring
		// log-only one is recorded only.
		set := policy.MustParseSet("p.cedar", refundPermit+`
@id("lo-broken") @log_only
forbid(principal, action == Action::"refund", resource) when { context.args.customer.vip == false };
`)
		env := newRolloutEnv(t, mustCedar(t, set))
		var runs atomic.Int64
		rec, span, err := env.invoke(t, "refund", `{"amount":5}`, &runs)
		if err != nil || runs.Load() != 1 {
			t.Fatalf("err = %v, runs %d; a failing log-only policy must not deny", err, runs.Load())
		}
		want := []audit.Shadow{{Mode: policy.ShadowLogOnly, Revision: set.Digest(), Decision: audit.Deny,
			Policies: []string{"lo-broken"}, Reason: "policy evaluation error in lo-broken"}}
		checkShadowRecord(t, rec, want)
		checkShadowSpan(t, span, want)
	})

	t.Run("log-only and shadow set together", func(t *testing.T) {
		set := policy.MustParseSet("p.cedar", refundPermit+`
@id("lo-forbid") @log_only forbid(principal, action == Action::"refund", resource);
`)
		shadow := policy.MustParseSet("next.cedar", `
@id("next-read-only") permit(principal, action == Action::"read_ticket", resource);
`)
		env := newRolloutEnv(t, mustCedar(t, set, policy.WithShadow(shadow)))
		var runs atomic.Int64
		rec, span, err := env.invoke(t, "refund", `{}`, &runs)
		if err != nil || runs.Load() != 1 {
			t.Fatalf("err = %v; neither log-only nor shadow policies are enforced", err)
		}
		want := []audit.Shadow{
			{Mode: policy.ShadowLogOnly, Revision: set.Digest(), Decision: audit.Deny, Policies: []string{"lo-forbid"}, Reason: "forbidden by lo-forbid"},
			{Mode: policy.ShadowSet, Revision: shadow.Digest(), Decision: audit.Deny, Reason: "no policy permits this call"},
		}
		checkShadowRecord(t, rec, want)
		checkShadowSpan(t, span, want)
	})

	t.Run("log-only policies of the shadow set are not enforced there", func(t *testing.T) {
		// The shadow set's own @log_only forbid stays out of what it
		// would enforce: the shadow set agrees with the live one.
		shadow := policy.MustParseSet("next.cedar", refundPermit+`
@id("next-lo-forbid") @log_only forbid(principal, action == Action::"refund", resource);
`)
		env := newRolloutEnv(t, mustCedar(t, policy.MustParseSet("live.cedar", refundPermit), policy.WithShadow(shadow)))
		var runs atomic.Int64
		rec, span, err := env.invoke(t, "refund", `{}`, &runs)
		if err != nil {
			t.Fatal(err)
		}
		checkShadowRecord(t, rec, nil)
		checkShadowSpan(t, span, nil)
	})
}

// TestShadowOfDelegatingAgents: the guard asks policy for each agent up a
// delegated call's chain, and the shadow decisions for those agents are
// recorded too.
func TestShadowOfDelegatingAgents(t *testing.T) {
	live := policy.MustParseSet("live.cedar", `
@id("search") permit(principal, action == Action::"search", resource);
`)
	next := policy.MustParseSet("next.cedar", `
@id("search") permit(principal, action == Action::"search", resource);
@id("next-root-no-search") @reason("root may no longer search")
forbid(principal == Agent::"`+rolloutRoot+`", action == Action::"search", resource);
`)
	logOnly := policy.MustParseSet("live.cedar", `
@id("search") permit(principal, action == Action::"search", resource);
@id("lo-root-no-search") @log_only
forbid(principal == Agent::"`+rolloutRoot+`", action == Action::"search", resource);
`)
	subOfRoot := agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(rolloutSub, rolloutRoot)))
	alone := agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(rolloutSub)))

	t.Run("shadow set", func(t *testing.T) {
		engine := mustCedar(t, live, policy.WithShadow(next))
		// The sub-agent alone: the shadow set agrees.
		env := newRolloutEnv(t, engine, alone)
		var runs atomic.Int64
		rec, span, err := env.invoke(t, "search", `{}`, &runs)
		if err != nil {
			t.Fatal(err)
		}
		checkShadowRecord(t, rec, nil)
		checkShadowSpan(t, span, nil)

		// Delegated by root, which the shadow set would forbid.
		env = newRolloutEnv(t, engine, subOfRoot)
		rec, span, err = env.invoke(t, "search", `{}`, &runs)
		if err != nil || runs.Load() != 2 {
			t.Fatalf("delegated call: err = %v; the shadow set is not enforced", err)
		}
		if rec.Agent != rolloutSub || !slices.Equal(rec.Chain, []string{rolloutRoot}) {
			t.Errorf("record agent %q chain %v", rec.Agent, rec.Chain)
		}
		want := []audit.Shadow{{Mode: policy.ShadowSet, Revision: next.Digest(), Decision: audit.Deny,
			Policies: []string{"next-root-no-search"}, Reason: "delegating agent " + rolloutRoot + " may not make this call: root may no longer search"}}
		checkShadowRecord(t, rec, want)
		checkShadowSpan(t, span, want)
	})

	t.Run("log only", func(t *testing.T) {
		env := newRolloutEnv(t, mustCedar(t, logOnly), subOfRoot)
		var runs atomic.Int64
		rec, span, err := env.invoke(t, "search", `{}`, &runs)
		if err != nil || runs.Load() != 1 {
			t.Fatalf("delegated call: err = %v; a log-only forbid is not enforced", err)
		}
		want := []audit.Shadow{{Mode: policy.ShadowLogOnly, Revision: logOnly.Digest(), Decision: audit.Deny,
			Policies: []string{"lo-root-no-search"}, Reason: "delegating agent " + rolloutRoot + " may not make this call: forbidden by lo-root-no-search"}}
		checkShadowRecord(t, rec, want)
		checkShadowSpan(t, span, want)
	})
}

// TestLogOnlyNotUsedForListing: listings follow the enforced policies only.
func TestLogOnlyNotUsedForListing(t *testing.T) {
	set := policy.MustParseSet("p.cedar", `
@id("read") permit(principal, action == Action::"read_ticket", resource);
@id("lo-no-read") @log_only forbid(principal, action == Action::"read_ticket", resource);
@id("lo-delete") @log_only permit(principal, action == Action::"delete_account", resource);
`)
	env := newRolloutEnv(t, mustCedar(t, set))
	reg := env.Guard.NewRegistry("helpdesk")
	var runs atomic.Int64
	if err := reg.Register(counted("read_ticket", &runs), counted("delete_account", &runs)); err != nil {
		t.Fatal(err)
	}
	tools, err := reg.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(tools) != 1 || tools[0].Name != "read_ticket" {
		var names []string
		for _, tl := range tools {
			names = append(names, tl.Name)
		}
		t.Errorf("List = %v, want [read_ticket]", names)
	}
}

// TestShadowOfWholeChain: a delegated call's shadow decision is what the
// shadow policies would decide for the whole chain, not for one agent.
func TestShadowOfWholeChain(t *testing.T) {
	permit := func(id, agent string) string {
		return fmt.Sprintf("@id(%q) permit(principal == Agent::%q, action == Action::\"search\", resource);\n", id, agent)
	}
	subOfRoot := agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(rolloutSub, rolloutRoot)))
	tests := []struct {
		name       string
		live, next string
		allowed    bool
		want       []audit.Shadow // Revision filled in below
	}{
		// The sub-agent is denied now; the shadow set permits it but not
		// root, so the chain would still be denied: nothing to record.
		{name: "shadow permits only the sub-agent", live: permit("root-search", rolloutRoot),
			next: permit("sub-search", rolloutSub)},
		// Root is denied now; the shadow set permits root but not the
		// sub-agent: still denied.
		{name: "shadow permits only root", live: permit("sub-search", rolloutSub),
			next: permit("root-search", rolloutRoot)},
		// Both permitted by the shadow set only: the chain would be allowed.
		{name: "shadow permits both", live: permit("sub-search", rolloutSub),
			next: permit("sub-search", rolloutSub) + permit("root-search", rolloutRoot),
			want: []audit.Shadow{{Mode: policy.ShadowSet, Decision: audit.Allow, Policies: []string{"sub-search"}}}},
		// Allowed now; the shadow set drops root's permit.
		{name: "shadow drops root", live: permit("sub-search", rolloutSub) + permit("root-search", rolloutRoot),
			next: permit("sub-search", rolloutSub), allowed: true,
			want: []audit.Shadow{{Mode: policy.ShadowSet, Decision: audit.Deny,
				Reason: "delegating agent " + rolloutRoot + " may not make this call: no policy permits this call"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := policy.MustParseSet("next.cedar", tt.next)
			env := newRolloutEnv(t, mustCedar(t, policy.MustParseSet("live.cedar", tt.live), policy.WithShadow(next)), subOfRoot)
			var runs atomic.Int64
			rec, span, err := env.invoke(t, "search", `{}`, &runs)
			if (err == nil) != tt.allowed {
				t.Fatalf("err = %v, want allowed %v", err, tt.allowed)
			}
			for i := range tt.want {
				tt.want[i].Revision = next.Digest()
			}
			checkShadowRecord(t, rec, tt.want)
			checkShadowSpan(t, span, tt.want)
		})
	}
}

// TestShadowObligationsRecorded: a shadow decision that differs only in
// its obligations says which.
func TestShadowObligationsRecorded(t *testing.T) {
	live := policy.MustParseSet("live.cedar", `@id("s") permit(principal, action == Action::"search", resource);`)
	next := policy.MustParseSet("next.cedar", `@id("s") @approval("one") permit(principal, action == Action::"search", resource);`)
	env := newRolloutEnv(t, mustCedar(t, live, policy.WithShadow(next)))
	var runs atomic.Int64
	rec, span, err := env.invoke(t, "search", `{}`, &runs)
	if err != nil {
		t.Fatal(err)
	}
	want := []audit.Shadow{{Mode: policy.ShadowSet, Revision: next.Digest(), Decision: audit.Allow, Policies: []string{"s"},
		Obligations: []audit.Obligation{{Name: "approval", Value: "one", Policy: "s"}}}}
	checkShadowRecord(t, rec, want)
	checkShadowSpan(t, span, want)
	evs := spanEvents(span, agentguard.EventShadow)
	if len(evs) != 1 || !slices.Equal(evs[0][string(agentguard.AttrObligations)].AsStringSlice(), []string{"approval=one"}) {
		t.Fatalf("shadow event obligations = %v", evs)
	}
}
