package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestTranscript runs the example and checks that its transcript shows
// each behaviour it promises.
func TestTranscript(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"agent spiffe://example.org/agent/support",
		"tools the model is shown: lookup_order, issue_refund (export_customers is hidden",
		"audit: lookup_order call=call_01 decision=allow policies=support-lookup credentials=1 outcome=ok",
		`tool call_01: {"checked_with":"orders-api token for task task-O-1`,
		"audit: export_customers call=call_02 decision=deny outcome=denied",
		`tool call_02: The call to tool "export_customers" was denied (authorize)`,
		"audit: issue_refund call=call_03 decision=deny policies=refund-limit outcome=denied",
		"tool call_03: The call to tool \"issue_refund\" was denied (authorize): refunds over 1000 are never made by an agent.",
		"audit: issue_refund call=call_04 decision=deny policies=support-refunds-approved approval=pending outcome=denied",
		`supervisor asked: issue_refund {"amount":250,"order":"O-1"}, kind supervisor: "refunds over 100 need a supervisor"`,
		"audit: issue_refund call=call_04 decision=allow policies=support-refunds-approved approval=granted(alice@example.com) credentials=1 outcome=ok",
		"tool call_04: refunded 250 on O-1\n",
		"model: Refunded 250 on order O-1.",
		"the model was sent 4 requests; none holds a credential",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	// One record per guarded call: four calls, one of them made twice
	// (waiting, then approved).
	if n := strings.Count(s, "audit: "); n != 5 {
		t.Errorf("%d audit lines, want 5\n%s", n, s)
	}
	if t.Failed() {
		t.Log(s)
	}
}
