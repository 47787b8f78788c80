package agentguard_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
)

// TestDelegationSpans: a handoff and its acceptance each leave a span with
// the delegatee, decision and hops, linked to the audit record by trace ID,
// and no token in any attribute or event.
func TestDelegationSpans(t *testing.T) {
	iss := newIssuer(t, "example.org")
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies, agentguard.WithTracerProvider(tp))
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies, agentguard.WithTracerProvider(tp))
	ctx := context.Background()

	h, err := planner.guard.Handoff(ctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := researcher.guard.AcceptHandoff(ctx, h); err != nil {
		t.Fatal(err)
	}
	archivist, _ := iss.ID("/agent/archivist")
	if _, err := planner.guard.Delegate(ctx, archivist); err == nil {
		t.Fatal("delegation to the archivist allowed")
	}

	spans := sr.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	want := []struct{ name, delegatee, decision string }{
		{"delegate", researcher.agent.ID().String(), audit.Allow},
		{"accept_handoff", researcher.agent.ID().String(), audit.Allow},
		{"delegate", archivist.String(), audit.Deny},
	}
	events := append(planner.audit.Kind(audit.KindDelegate)[:1], append(researcher.audit.Kind(audit.KindHandoffAccept), planner.audit.Kind(audit.KindDelegate)[1:]...)...)
	for i, s := range spans {
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		if s.Name() != want[i].name || attrs[string(agentguard.AttrDelegatee)] != want[i].delegatee || attrs[string(agentguard.AttrDecision)] != want[i].decision {
			t.Errorf("span %d = %s %v, want %+v", i, s.Name(), attrs, want[i])
		}
		if i < 2 && attrs[string(agentguard.AttrHops)] != "1" {
			t.Errorf("span %d hops = %q, want 1", i, attrs[string(agentguard.AttrHops)])
		}
		if events[i].TraceID != s.SpanContext().TraceID().String() {
			t.Errorf("span %d not linked to its audit record (%s vs %s)", i, events[i].TraceID, s.SpanContext().TraceID())
		}
		all := fmt.Sprint(s.Attributes(), s.Events(), s.Status())
		for _, tok := range strings.Split(h.Marshal(), ",") {
			if strings.Contains(all, tok) || strings.Contains(all, strings.Split(tok, ".")[2]) {
				t.Errorf("span %d holds a token", i)
			}
		}
	}
}
