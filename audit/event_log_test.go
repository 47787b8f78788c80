package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/audit"
)

// TestLogValueArgsAndIdentity: recorded arguments are logged as the JSON
// they are (nested under a JSON handler), and an identity change as a
// group with its set fields.
func TestLogValueArgsAndIdentity(t *testing.T) {
	notAfter := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []audit.Event{
		{Kind: audit.KindToolCall, Tool: "pay", Args: json.RawMessage(`{"amount":40,"card":"[REDACTED]"}`)},
		{Kind: audit.KindIdentityChange, Agent: "spiffe://example.org/a", Identity: &audit.IdentityChange{
			Previous: "spiffe://example.org/a", Serial: "0b", PreviousSerial: "0a", NotAfter: notAfter, Reason: "SVID rotated"}},
		{Kind: audit.KindIdentityChange, Identity: &audit.IdentityChange{Previous: "spiffe://example.org/a", Reason: "identity lost"}},
	}
	var js bytes.Buffer
	sink := audit.NewSlogSink(slog.New(slog.NewJSONHandler(&js, nil)))
	for _, e := range events {
		if err := sink.Write(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	type logLine struct {
		Event struct {
			Args     map[string]any    `json:"args"`
			Identity map[string]string `json:"identity"`
		} `json:"event"`
	}
	var rec []logLine
	for _, l := range lines {
		var r logLine
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("log line %s: %v", l, err)
		}
		rec = append(rec, r)
	}
	if len(rec) != 3 {
		t.Fatalf("%d log lines, want 3", len(rec))
	}
	if rec[0].Event.Args["amount"] != 40.0 || rec[0].Event.Args["card"] != "[REDACTED]" {
		t.Errorf("args logged as %v, want the nested object", rec[0].Event.Args)
	}
	want := map[string]string{"previous": "spiffe://example.org/a", "serial": "0b", "previous_serial": "0a",
		"not_after": "2030-01-01T00:00:00Z", "reason": "SVID rotated"}
	for k, v := range want {
		if rec[1].Event.Identity[k] != v {
			t.Errorf("identity.%s = %q, want %q", k, rec[1].Event.Identity[k], v)
		}
	}
	if got := rec[2].Event.Identity; len(got) != 2 || got["reason"] != "identity lost" {
		t.Errorf("loss logged as %v, want only its previous identity and reason", got)
	}

	// A text handler shows the arguments as text, not as bytes.
	var txt bytes.Buffer
	_ = audit.NewSlogSink(slog.New(slog.NewTextHandler(&txt, nil))).Write(context.Background(), events[0])
	if !strings.Contains(txt.String(), `event.args="{\"amount\":40,\"card\":\"[REDACTED]\"}"`) {
		t.Errorf("text log = %s", txt.String())
	}

	// JSON of the event itself.
	b, err := json.Marshal(events[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"identity":{"previous":"spiffe://example.org/a","serial":"0b","previous_serial":"0a","not_after":"2030-01-01T00:00:00Z","reason":"SVID rotated"}`) {
		t.Errorf("JSON = %s", b)
	}
}
