package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestTranscript runs the example and checks that its transcript shows each
// behaviour it promises, in order, and never the credential's value.
func TestTranscript(t *testing.T) {
	var out bytes.Buffer
	rep, err := runDemo(context.Background(), &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	rest := s
	for _, want := range []string{
		"agent spiffe://example.org/agent/support-bot\n",
		"tools the model is shown: lookup_order, refund\n",
		`1. model calls lookup_order("O-1001")`,
		"audit credential_issue audience=orders-api scopes=orders:read outcome=ok",
		"audit tool_call tool=lookup_order agent=spiffe://example.org/agent/support-bot decision=allow policies=lookup-orders outcome=ok",
		"observation: order O-1001: headphones, delivered, paid 120.00 EUR (the orders API accepted a token for task task-T-7, scope orders:read)",
		`2. model calls refund("O-1001")`,
		`supervisor alice approves refund {"input":"O-1001"} (supervisor: refunds need a supervisor)`,
		"audit tool_call tool=refund agent=spiffe://example.org/agent/support-bot decision=allow policies=refunds-need-a-supervisor approval=granted(alice) outcome=ok",
		"observation: refunded order O-1001",
		`3. model calls refund("all other orders of customer C-7")`,
		"audit tool_call tool=refund agent=spiffe://example.org/agent/support-bot decision=deny policies=refund-one-order outcome=denied",
		`observation: The call to tool "refund" was denied (authorize): refunds are made one order at a time, by its ID.`,
		`4. model calls delete_customer("C-7")`,
		"audit tool_call tool=delete_customer agent=spiffe://example.org/agent/support-bot decision=deny outcome=denied",
		`observation: The call to tool "delete_customer" was denied (authorize): no policy permits this call.`,
		"final answer: Order O-1001 is refunded. Other orders need their IDs, one refund each.",
		"audit credential_revoke audience=orders-api scopes=orders:read outcome=ok",
		"task ended: its credentials are revoked",
	} {
		i := strings.Index(rest, want)
		if i < 0 {
			t.Fatalf("transcript lacks, or has out of order, %q:\n%s", want, s)
		}
		rest = rest[i+len(want):]
	}
	if n := strings.Count(s, "audit tool_call"); n != 4 {
		t.Errorf("%d tool call records, want 4 (the hidden tool's call is denied by the guard)", n)
	}
	if strings.Contains(s, "deleted customer") {
		t.Error("the hidden tool ran")
	}
	if len(rep.tokens) != 1 || len(rep.tokens[0]) < 20 {
		t.Fatalf("lookup_order saw tokens %d, want one", len(rep.tokens))
	}
	if strings.Contains(s, rep.tokens[0]) {
		t.Error("the transcript holds the credential's value")
	}
}
