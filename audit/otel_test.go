package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/log/global"
	"go.opentelemetry.io/otel/log/logtest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/audit"
)

// otelRecords returns the records the sink's logger emitted.
func otelRecords(t *testing.T, rec *logtest.Recorder) []logtest.Record {
	t.Helper()
	var out []logtest.Record
	for scope, rs := range rec.Result() {
		if scope.Name != audit.OTelLoggerName {
			t.Errorf("records in scope %q, want %q", scope.Name, audit.OTelLoggerName)
		}
		out = append(out, rs...)
	}
	return out
}

func attrMap(kvs []attribute.KeyValue) map[string]attribute.Value {
	m := make(map[string]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

func denialEvent() audit.Event {
	return audit.Event{
		Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Kind: audit.KindToolCall,
		Agent: "spiffe://example.org/agent/support", Chain: []string{"spiffe://example.org/agent/root"},
		Task: "task-1", Tool: "refund", Toolset: "billing", CallID: "call-9",
		ArgsDigest: "sha256:ab", Decision: audit.Deny, Policies: []string{"refund-limit", "base"},
		Revision: "sha256:rev", Step: "approve", Reason: "approval refused",
		Approval: &audit.Approval{Required: true, Granted: false, Status: "refused", Kind: "two-person",
			Approvers: []string{"bob", "carol"}},
		Shadow:   []audit.Shadow{{Mode: "shadow", Decision: audit.Allow, Policies: []string{"new"}}},
		Outcome:  audit.OutcomeDenied,
		Duration: 1500 * time.Microsecond,
		TraceID:  "0102030405060708090a0b0c0d0e0f10", SpanID: "0102030405060708",
	}
}

// TestOTelSinkRecord: one event becomes one record with the event name,
// severity, body, timestamps, attributes (nested ones included) and the
// span context of the context given to Write.
func TestOTelSinkRecord(t *testing.T) {
	rec := logtest.NewRecorder()
	sink := audit.NewOTelSink(rec)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}, TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	e := denialEvent()
	before := time.Now()
	if err := sink.Write(ctx, e); err != nil {
		t.Fatal(err)
	}
	after := time.Now()

	rs := otelRecords(t, rec)
	if len(rs) != 1 {
		t.Fatalf("%d records, want 1", len(rs))
	}
	r := rs[0]
	if r.EventName != "agentguard.audit.tool_call" {
		t.Errorf("event name %q", r.EventName)
	}
	if r.Severity != log.SeverityWarn || r.SeverityText != "WARN" {
		t.Errorf("severity %v %q, want WARN", r.Severity, r.SeverityText)
	}
	if got := r.Body.AsString(); got != "tool_call deny refund" {
		t.Errorf("body %q", got)
	}
	if !r.Timestamp.Equal(e.Time) {
		t.Errorf("timestamp %v, want %v", r.Timestamp, e.Time)
	}
	if r.ObservedTimestamp.Before(before) || r.ObservedTimestamp.After(after) {
		t.Errorf("observed timestamp %v not within the write", r.ObservedTimestamp)
	}
	if got := trace.SpanContextFromContext(r.Context); !got.Equal(sc) {
		t.Errorf("record's span context %v, want %v", got, sc)
	}

	a := attrMap(r.Attributes)
	for k, want := range map[string]string{
		"agentguard.kind":            "tool_call",
		"agentguard.agent":           e.Agent,
		"agentguard.tool":            "refund",
		"agentguard.toolset":         "billing",
		"agentguard.call_id":         "call-9",
		"agentguard.decision":        "deny",
		"agentguard.policy_revision": "sha256:rev",
		"agentguard.step":            "approve",
		"agentguard.reason":          "approval refused",
		"agentguard.outcome":         "denied",
		"agentguard.trace_id":        e.TraceID,
		"agentguard.span_id":         e.SpanID,
		"gen_ai.agent.id":            e.Agent,
		"gen_ai.tool.name":           "refund",
		"gen_ai.tool.call.id":        "call-9",
	} {
		if v, ok := a[k]; !ok || v.Type() != attribute.STRING || v.AsString() != want {
			t.Errorf("%s = %v, want %q", k, v.Emit(), want)
		}
	}
	if v := a["agentguard.policies"]; v.Type() != attribute.STRINGSLICE || fmt.Sprint(v.AsStringSlice()) != "[refund-limit base]" {
		t.Errorf("agentguard.policies = %v (%v)", v.Emit(), v.Type())
	}
	if v := a["agentguard.duration"]; v.Type() != attribute.INT64 || v.AsInt64() != int64(1500*time.Microsecond) {
		t.Errorf("agentguard.duration = %v (%v)", v.Emit(), v.Type())
	}
	if _, ok := a["agentguard.time"]; ok {
		t.Error("the time is an attribute; it is the record's timestamp")
	}

	ap := a["agentguard.approval"]
	if ap.Type() != attribute.MAP {
		t.Fatalf("agentguard.approval is %v, want a map", ap.Type())
	}
	am := attrMap(ap.AsMap())
	if v := am["required"]; v.Type() != attribute.BOOL || !v.AsBool() {
		t.Errorf("approval.required = %v", v.Emit())
	}
	if v := am["granted"]; v.Type() != attribute.BOOL || v.AsBool() {
		t.Errorf("approval.granted = %v", v.Emit())
	}
	if v := am["status"]; v.AsString() != "refused" {
		t.Errorf("approval.status = %v", v.Emit())
	}
	if v := am["approvers"]; v.Type() != attribute.STRINGSLICE || fmt.Sprint(v.AsStringSlice()) != "[bob carol]" {
		t.Errorf("approval.approvers = %v", v.Emit())
	}

	sh := a["agentguard.shadow"]
	if sh.Type() != attribute.SLICE || len(sh.AsSlice()) != 1 || sh.AsSlice()[0].Type() != attribute.MAP {
		t.Fatalf("agentguard.shadow = %v (%v), want a slice of one map", sh.Emit(), sh.Type())
	}
	if m := attrMap(sh.AsSlice()[0].AsMap()); m["mode"].AsString() != "shadow" || m["decision"].AsString() != "allow" {
		t.Errorf("shadow[0] = %v", sh.AsSlice()[0].Emit())
	}
}

// TestOTelSinkCompleteness: every field of the event's JSON form is an
// attribute, so a field added to Event reaches the collector.
func TestOTelSinkCompleteness(t *testing.T) {
	e := denialEvent()
	e.Kind = audit.KindCredentialRevoke
	e.Leases = []string{"lease-1"}
	e.Credential = &audit.Credential{Name: "pay", Provider: "idp", Scopes: []string{"a"}, Attempts: 2,
		ExpiresAt: e.Time.Add(time.Minute), NotRevocable: true}
	e.PolicyChange = &audit.PolicyChange{Source: "dir", Policies: 3}
	e.Change = &audit.Change{Action: "change_toolset", Name: "refund", Fingerprint: "sha256:f"}
	e.Target, e.Tasks, e.Delegatee, e.OnBehalfOf, e.Error = "spiffe://example.org", []string{"t1"}, "spiffe://example.org/b", "alice", "boom"

	rec := logtest.NewRecorder()
	if err := audit.NewOTelSink(rec).Write(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	rs := otelRecords(t, rec)
	if len(rs) != 1 {
		t.Fatalf("%d records", len(rs))
	}
	got := attrMap(rs[0].Attributes)

	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for k := range fields {
		if k == "time" {
			continue
		}
		if _, ok := got["agentguard."+k]; !ok {
			t.Errorf("field %q is not an attribute", k)
		}
	}
	if len(got) != len(fields)-1+3 { // no time; three gen_ai aliases
		t.Errorf("%d attributes for %d fields", len(got), len(fields))
	}
	c := attrMap(got["agentguard.credential"].AsMap())
	if c["attempts"].Type() != attribute.INT64 || c["attempts"].AsInt64() != 2 || !c["not_revocable"].AsBool() {
		t.Errorf("credential = %v", got["agentguard.credential"].Emit())
	}
	if c["expires_at"].AsString() != e.Credential.ExpiresAt.Format(time.RFC3339Nano) {
		t.Errorf("credential.expires_at = %v", c["expires_at"].Emit())
	}
}

// TestOTelSinkSeverityAndBody: Info for what went as expected, Warn for a
// denial, a failure or a refused policy version.
func TestOTelSinkSeverityAndBody(t *testing.T) {
	tests := []struct {
		name string
		e    audit.Event
		sev  log.Severity
		body string
	}{
		{"allowed call", audit.Event{Kind: audit.KindToolCall, Tool: "read", Decision: audit.Allow, Outcome: audit.OutcomeOK}, log.SeverityInfo, "tool_call allow read"},
		{"failed call", audit.Event{Kind: audit.KindToolCall, Tool: "read", Decision: audit.Allow, Outcome: audit.OutcomeError}, log.SeverityWarn, "tool_call allow read"},
		{"task start", audit.Event{Kind: audit.KindTaskStart, Task: "t"}, log.SeverityInfo, "task_start"},
		{"revocation", audit.Event{Kind: audit.KindCredentialRevoke, Outcome: audit.OutcomeOK}, log.SeverityInfo, "credential_revoke ok"},
		{"failed revocation", audit.Event{Kind: audit.KindCredentialRevoke, Outcome: audit.OutcomeError, Error: "x"}, log.SeverityWarn, "credential_revoke error"},
		{"policy rejected", audit.Event{Kind: audit.KindPolicyReject}, log.SeverityWarn, "policy_reject"},
		{"suspension", audit.Event{Kind: audit.KindSuspend, Target: "spiffe://example.org/a"}, log.SeverityInfo, "suspend spiffe://example.org/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := logtest.NewRecorder()
			if err := audit.NewOTelSink(rec).Write(context.Background(), tt.e); err != nil {
				t.Fatal(err)
			}
			rs := otelRecords(t, rec)
			if len(rs) != 1 {
				t.Fatalf("%d records", len(rs))
			}
			text := "INFO"
			if tt.sev == log.SeverityWarn {
				text = "WARN"
			}
			if rs[0].Severity != tt.sev || rs[0].SeverityText != text {
				t.Errorf("severity %v %q, want %v", rs[0].Severity, rs[0].SeverityText, tt.sev)
			}
			if got := rs[0].Body.AsString(); got != tt.body {
				t.Errorf("body %q, want %q", got, tt.body)
			}
		})
	}
}

// TestOTelSinkDisabled: a logger that does not emit is not given records.
func TestOTelSinkDisabled(t *testing.T) {
	var asked log.EnabledParameters
	rec := logtest.NewRecorder(logtest.WithEnabledFunc(func(_ context.Context, p log.EnabledParameters) bool {
		asked = p
		return false
	}))
	if err := audit.NewOTelSink(rec).Write(context.Background(), denialEvent()); err != nil {
		t.Fatal(err)
	}
	if rs := otelRecords(t, rec); len(rs) != 0 {
		t.Errorf("%d records emitted by a disabled logger", len(rs))
	}
	if asked.EventName != "agentguard.audit.tool_call" || asked.Severity != log.SeverityWarn {
		t.Errorf("Enabled asked with %+v", asked)
	}
}

// TestOTelSinkUnconvertible: an event that has no JSON form is an error,
// so a strict guard does not count it as recorded.
func TestOTelSinkUnconvertible(t *testing.T) {
	rec := logtest.NewRecorder()
	e := audit.Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Kind: audit.KindToolCall}
	err := audit.NewOTelSink(rec).Write(context.Background(), e)
	if err == nil || !strings.HasPrefix(err.Error(), "audit: ") {
		t.Fatalf("Write = %v, want an audit: error", err)
	}
	if rs := otelRecords(t, rec); len(rs) != 0 {
		t.Errorf("%d records emitted", len(rs))
	}
}

// TestOTelSinkOptionsAndGlobal: a nil provider is the global one, and
// logger options reach the provider.
func TestOTelSinkOptionsAndGlobal(t *testing.T) {
	prev := global.GetLoggerProvider()
	t.Cleanup(func() { global.SetLoggerProvider(prev) })
	rec := logtest.NewRecorder()
	global.SetLoggerProvider(rec)

	sink := audit.NewOTelSink(nil, audit.WithOTelLoggerOptions(log.WithInstrumentationVersion("v9")))
	//nolint:staticcheck // a nil context must not panic in an audit sink
	if err := sink.Write(nil, audit.Event{Kind: audit.KindTaskEnd, Task: "t"}); err != nil {
		t.Fatal(err)
	}
	res := rec.Result()
	if len(res) != 1 {
		t.Fatalf("%d scopes", len(res))
	}
	for scope, rs := range res {
		if scope.Name != audit.OTelLoggerName || scope.Version != "v9" {
			t.Errorf("scope %+v", scope)
		}
		if len(rs) != 1 || rs[0].EventName != "agentguard.audit.task_end" {
			t.Errorf("records %+v", rs)
		}
	}
}

// An OTelSink emits each event as an OpenTelemetry log record; here a
// logtest.Recorder stands in for the SDK's LoggerProvider. Pair it with a
// durable sink through Tee.
func ExampleNewOTelSink() {
	lp := logtest.NewRecorder()
	sink := audit.NewOTelSink(lp)
	_ = sink.Write(context.Background(), audit.Event{
		Time: time.Now(), Kind: audit.KindToolCall,
		Agent: "spiffe://example.org/agent/a", Tool: "refund", Decision: audit.Deny,
		Policies: []string{"refund-limit"}, Outcome: audit.OutcomeDenied,
	})
	for _, rs := range lp.Result() {
		for _, r := range rs {
			fmt.Println(r.EventName, r.SeverityText, r.Body.AsString())
			for _, kv := range r.Attributes {
				fmt.Printf("  %s=%s\n", kv.Key, kv.Value.Emit())
			}
		}
	}
	// Output:
	// agentguard.audit.tool_call WARN tool_call deny refund
	//   agentguard.kind=tool_call
	//   agentguard.agent=spiffe://example.org/agent/a
	//   agentguard.tool=refund
	//   agentguard.decision=deny
	//   agentguard.policies=["refund-limit"]
	//   agentguard.outcome=denied
	//   gen_ai.agent.id=spiffe://example.org/agent/a
	//   gen_ai.tool.name=refund
}
