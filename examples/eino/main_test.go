package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestTranscript runs the example and checks that its transcript shows each
// behaviour it promises, and never a token a tool was given.
func TestTranscript(t *testing.T) {
	var out bytes.Buffer
	var tokens []string
	if err := run(context.Background(), &out, func(tok string) { tokens = append(tokens, tok) }); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"tools the model sees: lookup_order, refund\n",
		"shop API: token for spiffe://example.org/agent/shop-bot accepted (task task-T-1001, scope orders:read",
		"audit: lookup_order call-1 allow ok policies=shop-lookups\n",
		"model ← call-1 lookup_order: order O-1: shipped",
		"audit: close_account call-2 deny denied policies=no-account-closing\n",
		`model ← call-2 close_account: The call to tool "close_account" was denied (authorize): accounts are closed by people, not by agents.`,
		"audit: refund call-3 deny denied policies=shop-refunds approval=pending\n",
		`run paused: refund {"amount":40,"order":"O-1"} needs approval (manager): refunds need a manager's approval`,
		"scope refunds:write",
		"audit: refund call-3 allow ok policies=shop-refunds approval=granted(alice)\n",
		"model ← call-3 refund: refunded 40 on order O-1\n",
		"assistant: Your order O-1 arrives on Thursday",
		"task ended: 2 task tokens revoked\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the transcript lacks %q:\n%s", want, s)
		}
	}
	// The denied call never ran, and the refund ran once, after approval.
	if n := strings.Count(s, "shop API: token"); n != 2 {
		t.Errorf("the shop API was called %d times, want 2", n)
	}
	if granted, refunded := strings.Index(s, "manager alice grants request approval-"), strings.Index(s, "scope refunds:write"); granted < 0 || refunded < granted {
		t.Errorf("the refund ran before the manager granted it (grant at %d, refund at %d)", granted, refunded)
	}
	if len(tokens) != 2 {
		t.Fatalf("the tools were given %d tokens, want 2", len(tokens))
	}
	for _, tok := range tokens {
		if tok == "" || strings.Contains(s, tok) {
			t.Fatal("a task token is empty or in the transcript")
		}
	}
}
