package otelaudit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/log/embedded"
	"go.opentelemetry.io/otel/log/global"
	"go.opentelemetry.io/otel/log/logtest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/audit/otelaudit"
)

// otelRecords returns the records the sink's logger emitted.
func otelRecords(t *testing.T, rec *logtest.Recorder) []logtest.Record {
	t.Helper()
	var out []logtest.Record
	for scope, rs := range rec.Result() {
		if scope.Name != otelaudit.LoggerName {
			t.Errorf("records in scope %q, want %q", scope.Name, otelaudit.LoggerName)
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
	sink := otelaudit.NewSink(rec)
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

// fullEvent has every field of Event, and of the parts it holds, set.
func fullEvent() audit.Event {
	t := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	return audit.Event{
		Time: t, Kind: audit.KindCredentialRevoke,
		Agent: "spiffe://example.org/agent/support", Chain: []string{"spiffe://example.org/agent/root"},
		Task: "task-1", OnBehalfOf: "alice", Delegatee: "spiffe://example.org/b",
		Tool: "refund", Toolset: "billing", CallID: "call-9",
		ArgsDigest: "sha256:ab", Args: json.RawMessage(`{"amount":12,"card":"[REDACTED]"}`),
		Decision: audit.Deny, Policies: []string{"refund-limit", "base"}, Revision: "sha256:rev",
		Shadow: []audit.Shadow{{Mode: "shadow", Revision: "sha256:new", Decision: audit.Allow,
			Policies: []string{"new"}, Reason: "why",
			Obligations: []audit.Obligation{{Name: "approval", Value: "two-person", Policy: "new"}}}},
		Step: "approve", Reason: "approval refused",
		Approval: &audit.Approval{Required: true, Granted: true, Status: "granted", Kind: "two-person",
			RequestID: "req-1", Digest: "sha256:d", Approvers: []string{"bob", "carol"}, Reason: "ok"},
		Leases: []string{"lease-1"},
		Credential: &audit.Credential{Name: "pay", Provider: "idp", Audience: "api", Resources: []string{"r"},
			Scopes: []string{"a"}, ExpiresAt: t.Add(time.Minute), Replaces: "lease-0", Attempts: 2, NotRevocable: true},
		PolicyChange: &audit.PolicyChange{Source: "dir", OldRevision: "sha256:o", NewRevision: "sha256:n",
			Files: "sha256:f", Policies: 3},
		Change: &audit.Change{Action: "change_toolset", Name: "refund", Toolset: "billing",
			Fingerprint: "sha256:f", Previous: "sha256:p"},
		Target: "spiffe://example.org", Tasks: []string{"t1"},
		Identity: &audit.IdentityChange{Previous: "spiffe://example.org/old", Serial: "02", PreviousSerial: "01",
			NotAfter: t.Add(time.Hour), Reason: "SVID rotated"},
		Outcome: audit.OutcomeDenied, Error: "boom", Duration: 1500 * time.Microsecond,
		TraceID: "0102030405060708090a0b0c0d0e0f10", SpanID: "0102030405060708",
		Truncated: []string{"error:17825792 bytes"},
	}
}

// requireSet fails when a field of v, or of a struct v holds, is zero: a
// field added to Event must be set in fullEvent to be checked.
func requireSet(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			t.Errorf("fullEvent leaves %s unset", path)
			return
		}
		requireSet(t, v.Elem(), path)
	case reflect.Slice:
		if v.Len() == 0 {
			t.Errorf("fullEvent leaves %s unset", path)
		}
		for i := range v.Len() {
			requireSet(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			if v.IsZero() {
				t.Errorf("fullEvent leaves %s unset", path)
			}
			return
		}
		for i := range v.NumField() {
			requireSet(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	default:
		if v.IsZero() {
			t.Errorf("fullEvent leaves %s unset", path)
		}
	}
}

// attrJSON turns an attribute value into what encoding/json decodes (with
// UseNumber) from the same data.
func attrJSON(v attribute.Value) any {
	switch v.Type() {
	case attribute.STRING:
		return v.AsString()
	case attribute.BOOL:
		return v.AsBool()
	case attribute.INT64:
		return json.Number(strconv.FormatInt(v.AsInt64(), 10))
	case attribute.STRINGSLICE:
		out := []any{}
		for _, s := range v.AsStringSlice() {
			out = append(out, s)
		}
		return out
	case attribute.SLICE:
		out := []any{}
		for _, e := range v.AsSlice() {
			out = append(out, attrJSON(e))
		}
		return out
	case attribute.MAP:
		out := map[string]any{}
		for _, kv := range v.AsMap() {
			out[string(kv.Key)] = attrJSON(kv.Value)
		}
		return out
	default:
		return fmt.Sprintf("unexpected %v %s", v.Type(), v.Emit())
	}
}

// TestOTelSinkCompleteness: the attributes say what the event's JSON form
// says, field by field and at every depth (the arguments as their JSON
// text), so a field added to Event, or to a part of it, that the sink does
// not ship fails here.
func TestOTelSinkCompleteness(t *testing.T) {
	e := fullEvent()
	requireSet(t, reflect.ValueOf(e), "Event")

	rec := logtest.NewRecorder()
	if err := otelaudit.NewSink(rec).Write(context.Background(), e); err != nil {
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
	for k, raw := range fields {
		if k == "time" {
			continue
		}
		var want any = string(raw)
		if k != "args" {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(&want); err != nil {
				t.Fatal(err)
			}
		}
		v, ok := got["agentguard."+k]
		if !ok {
			t.Errorf("field %q is not an attribute", k)
			continue
		}
		if g := attrJSON(v); !reflect.DeepEqual(g, want) {
			gb, _ := json.Marshal(g)
			wb, _ := json.Marshal(want)
			t.Errorf("agentguard.%s = %s (%v), want %s", k, gb, v.Type(), wb)
		}
	}
	if len(got) != len(fields)-1+3 { // no time; three gen_ai aliases
		t.Errorf("%d attributes for %d fields", len(got), len(fields))
	}
	if got["agentguard.duration"].Type() != attribute.INT64 {
		t.Errorf("duration is %v, want nanoseconds as an integer", got["agentguard.duration"].Type())
	}
}

// TestOTelSinkArgsVerbatim: the recorded arguments go as one string, the
// canonical JSON as recorded, whatever numbers or nulls the model put in:
// nothing is lost or rounded, the digest checks them, argument keys never
// become attribute keys, and the write succeeds (through a Tee too).
func TestOTelSinkArgsVerbatim(t *testing.T) {
	tests := []struct{ name, args string }{
		{"huge float", `{"amount":1e400}`},
		{"30-digit integer", `{"id":123456789012345678901234567890}`},
		{"null", `{"n":null}`},
		{"all at once", `{"a":[null,-1e400,123456789012345678901234567890],"o":{"x":null}}`},
		{"not JSON", `{"unterminated`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sum := sha256.Sum256([]byte(tt.args))
			e := audit.Event{Kind: audit.KindToolCall, Tool: "pay", Decision: audit.Allow, Outcome: audit.OutcomeOK,
				ArgsDigest: "sha256:" + hex.EncodeToString(sum[:]), Args: json.RawMessage(tt.args)}
			rec, kept := logtest.NewRecorder(), audittest.NewRecorder()
			if err := audit.Tee(kept, otelaudit.NewSink(rec)).Write(context.Background(), e); err != nil {
				t.Fatalf("Write = %v", err)
			}
			if n := len(kept.Events()); n != 1 {
				t.Errorf("the Tee's other sink got %d events", n)
			}
			rs := otelRecords(t, rec)
			if len(rs) != 1 {
				t.Fatalf("%d records", len(rs))
			}
			a := attrMap(rs[0].Attributes)
			args := a["agentguard.args"]
			if args.Type() != attribute.STRING || args.AsString() != tt.args {
				t.Fatalf("agentguard.args = %v (%v), want the string %s", args.Emit(), args.Type(), tt.args)
			}
			got := sha256.Sum256([]byte(args.AsString()))
			if "sha256:"+hex.EncodeToString(got[:]) != a["agentguard.args_digest"].AsString() {
				t.Error("agentguard.args does not match agentguard.args_digest")
			}
			for k := range a {
				if !strings.HasPrefix(k, "agentguard.") && !strings.HasPrefix(k, "gen_ai.") {
					t.Errorf("attribute %q", k)
				}
			}
			if len(a) != 7 { // kind, tool, args_digest, args, decision, outcome, gen_ai.tool.name
				t.Errorf("%d attributes: %v", len(a), rs[0].Attributes)
			}
		})
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
			if err := otelaudit.NewSink(rec).Write(context.Background(), tt.e); err != nil {
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
	if err := otelaudit.NewSink(rec).Write(context.Background(), denialEvent()); err != nil {
		t.Fatal(err)
	}
	if rs := otelRecords(t, rec); len(rs) != 0 {
		t.Errorf("%d records emitted by a disabled logger", len(rs))
	}
	if asked.EventName != "agentguard.audit.tool_call" || asked.Severity != log.SeverityWarn {
		t.Errorf("Enabled asked with %+v", asked)
	}
}

// TestOTelSinkAlwaysEmits: an event without a JSON form (a year past
// 9999) still becomes a record, so no value in an event makes a strict
// guard deny a call the OTel copy could have recorded.
func TestOTelSinkAlwaysEmits(t *testing.T) {
	rec := logtest.NewRecorder()
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	e := audit.Event{Time: far, Kind: audit.KindCredentialIssue,
		Credential: &audit.Credential{Provider: "idp", ExpiresAt: far.Add(time.Hour)}}
	if _, err := json.Marshal(e); err == nil {
		t.Fatal("the event has a JSON form; the test needs one without")
	}
	if err := otelaudit.NewSink(rec).Write(context.Background(), e); err != nil {
		t.Fatalf("Write = %v", err)
	}
	rs := otelRecords(t, rec)
	if len(rs) != 1 {
		t.Fatalf("%d records emitted", len(rs))
	}
	if !rs[0].Timestamp.Equal(far) {
		t.Errorf("timestamp %v", rs[0].Timestamp)
	}
	c := attrMap(attrMap(rs[0].Attributes)["agentguard.credential"].AsMap())
	if got := c["expires_at"].AsString(); got != "10000-01-01T01:00:00Z" {
		t.Errorf("credential.expires_at = %q", got)
	}
}

// TestOTelSinkOptionsAndGlobal: a nil provider is the global one, and
// logger options reach the provider.
func TestOTelSinkOptionsAndGlobal(t *testing.T) {
	prev := global.GetLoggerProvider()
	t.Cleanup(func() { global.SetLoggerProvider(prev) })
	rec := logtest.NewRecorder()
	global.SetLoggerProvider(rec)

	sink := otelaudit.NewSink(nil, otelaudit.WithLoggerOptions(log.WithInstrumentationVersion("v9")))
	//nolint:staticcheck // a nil context must not panic in an audit sink
	if err := sink.Write(nil, audit.Event{Kind: audit.KindTaskEnd, Task: "t"}); err != nil {
		t.Fatal(err)
	}
	res := rec.Result()
	if len(res) != 1 {
		t.Fatalf("%d scopes", len(res))
	}
	for scope, rs := range res {
		if scope.Name != otelaudit.LoggerName || scope.Version != "v9" {
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
func ExampleNewSink() {
	lp := logtest.NewRecorder()
	sink := otelaudit.NewSink(lp)
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

// discardLogs is a LoggerProvider whose loggers are enabled and drop every
// record: what the sink costs without an exporter's.
type discardLogs struct{ embedded.LoggerProvider }

func (discardLogs) Logger(string, ...log.LoggerOption) log.Logger { return discardLogger{} }

type discardLogger struct{ embedded.Logger }

func (discardLogger) Emit(context.Context, log.Record)                    {}
func (discardLogger) Enabled(context.Context, log.EnabledParameters) bool { return true }

// BenchmarkOTelSink measures writing a typical tool_call event, alone and
// behind a Tee, against the event's JSON encoding as a baseline.
func BenchmarkOTelSink(b *testing.B) {
	e := audit.Event{
		Time: time.Now(), Kind: audit.KindToolCall,
		Agent: "spiffe://example.org/agent/support", Task: "task-1", Tool: "refund", CallID: "call-1",
		ArgsDigest: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Decision:   audit.Allow, Policies: []string{"refund-limit"}, Revision: "sha256:rev",
		Outcome: audit.OutcomeOK, Duration: 1500 * time.Microsecond,
		TraceID: "0102030405060708090a0b0c0d0e0f10", SpanID: "0102030405060708",
	}
	ctx := context.Background()
	b.Run("otel", func(b *testing.B) {
		sink := otelaudit.NewSink(discardLogs{})
		b.ReportAllocs()
		for b.Loop() {
			if err := sink.Write(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tee", func(b *testing.B) {
		sink := audit.Tee(audit.Discard, otelaudit.NewSink(discardLogs{}))
		b.ReportAllocs()
		for b.Loop() {
			if err := sink.Write(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json_baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
