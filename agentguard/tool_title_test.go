package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/internal/canonical"
)

// TestFingerprintTitleAndOutputSchema: a tool's title and output schema
// are part of its definition when set, and leave the fingerprints of
// tools without them as they were (pinned lock files stay valid).
func TestFingerprintTitleAndOutputSchema(t *testing.T) {
	base := &agentguard.Tool{Name: "search", Description: "Search.", InputSchema: json.RawMessage(`{"type":"object"}`)}
	// The fingerprint of this definition as it was before titles existed.
	old, _ := canonical.Marshal(map[string]any{"name": "search", "description": "Search.",
		"input_schema": map[string]any{"type": "object"}, "annotations": agentguard.Annotations{}})
	fp := base.Fingerprint()
	if fp != canonical.Digest(old) {
		t.Fatalf("fingerprint without title or output schema changed: %s", fp)
	}
	titled := *base
	titled.Title = "Web search"
	out := *base
	out.OutputSchema = json.RawMessage(`{"type":"object","properties":{"hits":{"type":"array"}}}`)
	out2 := out
	out2.OutputSchema = json.RawMessage(`{ "properties":{"hits":{"type":"array"}}, "type":"object"}`)
	if titled.Fingerprint() == fp || out.Fingerprint() == fp || titled.Fingerprint() == out.Fingerprint() {
		t.Fatal("title or output schema do not change the fingerprint")
	}
	if out.Fingerprint() != out2.Fingerprint() {
		t.Fatal("the output schema's formatting changes the fingerprint")
	}
	if fp != (&agentguard.Tool{Name: "search", Description: "Search.", InputSchema: json.RawMessage(`{ "type" : "object" }`)}).Fingerprint() {
		t.Fatalf("fingerprint %q is not stable", fp)
	}
	bad := *base
	bad.OutputSchema = json.RawMessage(`[`)
	bad.Handler = func(context.Context, json.RawMessage) (*agentguard.Result, error) { return nil, nil }
	env := agentguardtest.New(t, nil, "tok")
	if _, err := env.Guard.Invoke(context.Background(), &bad, agentguard.Call{}); !errors.Is(err, agentguard.ErrInvalidTool) {
		t.Fatalf("a malformed output schema: err = %v, want ErrInvalidTool", err)
	}
}

// TestSyncCatchesOutputSchemaChange: a server that changes only a tool's
// output schema or title changes its definition.
func TestSyncCatchesOutputSchemaChange(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	var runs atomic.Int64
	reg := env.Guard.NewRegistry("srv")
	v1 := counted("lookup", &runs)
	if err := reg.Register(v1); err != nil {
		t.Fatal(err)
	}
	v2 := counted("lookup", &runs)
	v2.OutputSchema = json.RawMessage(`{"type":"object"}`)
	v3 := counted("lookup", &runs)
	v3.Title = "Look up"
	for _, v := range []*agentguard.Tool{v2, v3} {
		changes, err := reg.Sync(v)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(changes, func(c agentguard.ToolChange) bool { return c.Change == agentguard.ChangeChanged && c.Name == "lookup" }) {
			t.Fatalf("Sync = %+v, want a changed lookup", changes)
		}
		if _, err := reg.Call(context.Background(), agentguard.Call{Name: "lookup"}); !errors.Is(err, agentguard.ErrIntegrity) {
			t.Fatalf("call of the changed tool: %v, want ErrIntegrity", err)
		}
	}
	if runs.Load() != 0 {
		t.Fatal("a changed tool ran")
	}
}
