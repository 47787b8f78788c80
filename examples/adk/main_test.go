package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The example's transcript shows an allowed call with a task token, a call
// policy forbids, a tool the model is never offered, and a refund that runs
// once, after the signed-in supervisor's confirmation through ADK.
func TestTranscript(t *testing.T) {
	var buf bytes.Buffer
	if err := run(context.Background(), &buf); err != nil {
		t.Fatalf("run: %v\n%s", err, buf.String())
	}
	out := buf.String()
	for _, want := range []string{
		"model is offered: lookup_order, refund\n",
		"tool lookup_order(A-1) runs with a task token: true",
		"audit: lookup_order call=call-1 decision=allow outcome=ok policies=read-orders leases=1",
		"audit: refund call=call-2 decision=deny outcome=denied policies=refund-limit",
		`result [call-2]: {"error":"The call to tool \"refund\" was denied (authorize): refunds over 1000 are never made by an agent.`,
		"audit: refund call=call-3 decision=deny outcome=denied policies=refund-approval approval=pending",
		"adk: asks for a confirmation",
		`bob signs in as supervisor and is asked to confirm refund {"amount":250,"order":"A-1"} (approval "supervisor": refunds over 100 need a supervisor)`,
		"tool refund(A-1, 250) runs with a task token: true",
		"audit: refund call=call-3 decision=allow outcome=ok policies=refund-approval approval=granted(bob) leases=1",
		"model: Done: map[order:A-1 refunded:250]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if n := strings.Count(out, "tool refund("); n != 1 {
		t.Errorf("refund ran %d times, want once", n)
	}
	if strings.Contains(out, "delete_account") {
		t.Error("delete_account appears in the transcript")
	}
	if t.Failed() {
		t.Log(out)
	}
}
