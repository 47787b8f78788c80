package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	// The transcript, in order: listing, an allowed call with a task
	// credential, a denied call the model reads and gets past, a refund
	// paused for approval, granted, run once, and the credentials revoked.
	want := []string{
		"tools offered to the model: lookup_order, issue_refund\n",
		"  model  sees tools issue_refund, lookup_order\n",
		"  model  calls lookup_order {\"order\":\"O-1001\"}\n",
		"  tool   presents its orders-api token (orders:read), leased to task task-ticket-T-7; orders-api accepts it\n",
		"  audit  lookup_order decision=allow outcome=ok leases=1\n",
		"  model  calls close_account {\"account\":\"C-7\"}\n",
		"  audit  close_account decision=deny step=authorize outcome=denied\n",
		`  model  reads close_account: {"error":"The call to tool \"close_account\" was denied (authorize): accounts are closed by people, not agents.`,
		"  model  calls issue_refund {\"amount\":250,\"order\":\"O-1001\"}\n",
		"  audit  issue_refund decision=deny step=approve approval=pending outcome=denied\n",
		"paused: issue_refund {\"amount\":250,\"order\":\"O-1001\"} waits for a supervisor approval (refunds over 100 need a supervisor)\n",
		"supervisor alice: granted=true (photo of the damage checked)\n",
		"  tool   presents its payments-api token (refunds:write), leased to task task-ticket-T-7; payments-api accepts it\n",
		"  audit  issue_refund decision=allow approval=granted(alice) outcome=ok leases=1\n",
		"  model  reads issue_refund: {\"order\":\"O-1001\",\"refunded\":250}\n",
		"assistant: I refunded 250 for order O-1001.",
		"task ended: 2 credential leases revoked\n",
	}
	rest := got
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("transcript lacks (in order) %q:\n%s", w, got)
		}
		rest = rest[i+len(w):]
	}
	for _, never := range []string{"closed account", "eyJ"} {
		if strings.Contains(got, never) {
			t.Errorf("transcript holds %q:\n%s", never, got)
		}
	}
	if n := strings.Count(got, "presents its payments-api token"); n != 1 {
		t.Errorf("the refund ran %d times", n)
	}
}
