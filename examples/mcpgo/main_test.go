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
	got := out.String()
	for _, want := range []string{
		"agent spiffe://example.org/agent/support-bot\n",
		`connected to MCP server "orders": 3 tools waiting for review`,
		"the model is offered: lookup_order, refund\n",
		"<- order O-1001: shipped (with the task's orders-api credential)",
		`<- [isError] The call to tool "delete_orders" was denied (authorize): agents may not run destructive tools.`,
		`<- [isError] The call to tool "refund" needs a human's approval (approval: supervisor). The request approval-`,
		"supervisor bob granted request approval-",
		"<- refunded 120 on O-1001 (with the task's orders-api credential)",
		"the bot lists the tools again: lookup_order (changed)",
		`<- [isError] The call to tool "lookup_order" was denied (integrity)`,
		"waiting for review: lookup_order (changed)",
		"5 tool-call records: lookup_order allow ok; delete_orders deny at authorize; refund deny at approve; refund allow ok; lookup_order deny at integrity",
		"support-bot is shown: balance\n",
		"audit[billing] balance by spiffe://example.org/agent/support-bot: allow, ok",
		"<- balance of A-7: 12.00 EUR (read with the task's ledger credential)",
		"audit[billing] close_account by spiffe://example.org/agent/support-bot: deny at authorize",
		`<- [isError] The call to tool "close_account" was denied (authorize): closing an account is for people, not agents.`,
		"anonymous is shown: nothing\n",
		"audit[billing] balance by nobody: deny at identify",
		`<- [isError] The call to tool "balance" was denied (identify)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("transcript lacks %q\n%s", want, got)
		}
	}
	// The credential's value never reaches what the model reads.
	if strings.Contains(got, "example-orders-token") || strings.Contains(got, "example-ledger-token") {
		t.Errorf("the transcript holds the credential:\n%s", got)
	}
}
