package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// TestHugeToolErrorBounded: a tool that ran and failed with a 1 MiB error
// (an upstream service echoing a body, say) is recorded, with a bounded
// part of the error in its record and span; the caller gets all of it.
func TestHugeToolErrorBounded(t *testing.T) {
	rec := audittest.NewRecorder()
	sr := tracetest.NewSpanRecorder()
	g, err := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(agentguardtest.AgentID))),
		agentguard.WithPolicy(policytest.AllowAll()),
		agentguard.WithAudit(rec),
		agentguard.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	huge := "upstream said: " + strings.Repeat("é", 512<<10) // 1 MiB of two-byte runes
	tool := &agentguard.Tool{Name: "transfer", Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
		return nil, errors.New(huge)
	}}
	_, err = g.Invoke(context.Background(), tool, agentguard.Call{ID: "c1", Name: "transfer", Args: []byte(`{}`)})
	var te *agentguard.ToolError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), huge) {
		t.Fatalf("err is not the whole tool error (%d bytes)", len(err.Error()))
	}
	ev := audittest.Expect(t, rec.Events(), audittest.Want{Kind: audit.KindToolCall, CallID: "c1", Outcome: audit.OutcomeError})
	if len(ev.Error) > 9<<10 || !strings.HasPrefix(ev.Error, "upstream said: é") || !strings.Contains(ev.Error, "bytes cut]") {
		t.Errorf("recorded error: %d bytes, %q…", len(ev.Error), ev.Error[:min(40, len(ev.Error))])
	}
	if !strings.HasSuffix(strings.SplitN(ev.Error, "…", 2)[0], "é") {
		t.Error("the recorded error is not cut at a rune boundary")
	}
	spans := sr.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	if st := spans[0].Status(); st.Code != codes.Error || st.Description != ev.Error {
		t.Errorf("span status %v %d bytes, want the recorded error", st.Code, len(st.Description))
	}
}
