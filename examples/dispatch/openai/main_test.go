package main

import (
	"testing"

	"github.com/agentguard/go-sdk/examples/dispatch/helpdesk"
)

// TestTranscript runs the example and checks that its transcript shows
// each behaviour it promises (helpdesk.Check adds what both programs
// print), with one audit record per guarded call.
func TestTranscript(t *testing.T) {
	transcript, err := helpdesk.Check(run, []string{
		"audit: lookup_order call=call_01 decision=allow policies=support-lookup credentials=1 outcome=ok",
		`tool call_01: {"checked_with":"orders-api token for task task-O-1`,
		"audit: export_customers call=call_02 decision=deny outcome=denied",
		`tool call_02: The call to tool "export_customers" was denied (authorize)`,
		"audit: issue_refund call=call_03 decision=deny policies=refund-limit outcome=denied",
		"tool call_03: The call to tool \"issue_refund\" was denied (authorize): refunds over 1000 are never made by an agent.",
		"audit: issue_refund call=call_04 decision=deny policies=support-refunds-approved approval=pending outcome=denied",
		"audit: issue_refund call=call_04 decision=allow policies=support-refunds-approved approval=granted(alice@example.com) credentials=1 outcome=ok",
		"tool call_04: refunded 250 on O-1\n",
	})
	if err != nil {
		t.Errorf("%v\ntranscript:\n%s", err, transcript)
	}
}
