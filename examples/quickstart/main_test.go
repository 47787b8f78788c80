package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestQuickstartTranscript runs the quickstart and checks that its
// transcript shows each behaviour it promises.
func TestQuickstartTranscript(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"tools the agent may see: read_ticket, issue_refund, send_email\n",
		"policies=support-read-tickets outcome=ok",
		"ALLOWED → refunded 40",
		"policies=refund-limit outcome=denied",
		"DENIED refunds over 100 need a human",
		"DENIED the task has read personal data",
		"ALLOWED → sent to team@example.com",
		"tool=export_customers decision=deny",
		"credential_revoke outcome=ok",
		"task_end          outcome=ok",
		"payments credentials issued: 1,",
		"AgentGuard quickstart: agent spiffe://example.org/agent/support-bot\n",
		"identity: development issuer for example.org (in memory, not for production)",
		"to=spiffe://example.org/agent/shell-runner decision=deny",
		"DENIED no policy permits this handoff",
		"to=spiffe://example.org/agent/order-lookup decision=allow policies=support-delegates-lookups",
		"tool=read_ticket agent=spiffe://example.org/agent/order-lookup chain=spiffe://example.org/agent/support-bot decision=allow policies=lookup-read-tickets",
		"DENIED delegating agent spiffe://example.org/agent/support-bot may not make this call",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if strings.Contains(s, "pay-token-for-quickstart-only") {
		t.Error("transcript shows the credential's value")
	}
	if t.Failed() {
		t.Log(s)
	}
}
