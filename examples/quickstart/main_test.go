package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/identity/identitytest"
)

// TestQuickstartTranscript runs the quickstart and checks that its
// transcript shows each behaviour it promises.
func TestQuickstartTranscript(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AGENTGUARD_AUDIT_DIR", dir)
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	// The audit file holds what the transcript showed, in a chain that
	// verifies (the signing key was the run's own: hashes only here, explicitly).
	runs, _ := filepath.Glob(filepath.Join(dir, "agentguard-audit-*"))
	if len(runs) != 1 {
		t.Fatalf("audit directories %v, want one", runs)
	}
	if _, err := audit.VerifyDir(runs[0], audit.VerifyOptions{Unsigned: true}); err != nil {
		t.Errorf("audit file: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(runs[0], "audit-*.jsonl"))
	events := audittest.ReadEvents(t, files...)
	audittest.Expect(t, events, audittest.Want{Kind: audit.KindToolCall, Tool: "issue_refund", Decision: audit.Deny, Policies: []string{"refund-limit"}})
	audittest.Expect(t, events, audittest.Want{Kind: audit.KindToolCall, CallID: "sub-call-1", Decision: audit.Allow, Policies: []string{"lookup-read-tickets"}})
	audittest.ExpectCount(t, events, audittest.Want{Kind: audit.KindIdentityChange}, 2)
	s := out.String()
	for _, want := range []string{
		"tools the agent may see: read_ticket, issue_refund, send_email\n",
		"policies=support-read-tickets outcome=ok",
		"ALLOWED → refunded 40",
		"policies=refund-limit outcome=denied",
		"DENIED refunds over 1000 are never made by an agent",
		"approval asked of supervisor@example.com: call_tool issue_refund: \"refunds over 100 need a supervisor\"",
		"policies=support-refunds-approved approval=granted(supervisor@example.com) outcome=ok",
		"ALLOWED → refunded 250 on O-78",
		"tools the agent may see now: read_ticket, issue_refund\n",
		"pending review: changed send_email, pinned sha256:",
		"DENIED tool definition not trusted",
		"toolset_change    tool=send_email decision=deny policies=support-tool-review approval=refused(supervisor@example.com) outcome=denied",
		"NOT TRUSTED: agentguard: change of tool \"send_email\" denied at approve",
		"DENIED the task has read personal data",
		"ALLOWED → sent to team@example.com",
		"tool=export_customers decision=deny",
		"credential_revoke outcome=ok",
		"task_end          outcome=ok",
		"credential_issue  tool=issue_refund outcome=ok task=task-refund-T-1001 leases=lease-",
		"aud=https://payments.example.com scopes=refunds:write expires_in=",
		"refunded 40 on O-77 (token of spiffe://example.org/agent/support-bot for task task-refund-T-1001, scopes refunds:write)",
		"payments tokens issued: 1, for the whole task; on the issuer's revocation list: 1\n",
		"replayed after the task ended: payments API answered 401 Unauthorized",
		"The access token was revoked",
		"AgentGuard quickstart: agent spiffe://example.org/agent/support-bot\n",
		"identity: development issuer for example.org (in memory, not for production)",
		"to=spiffe://example.org/agent/shell-runner decision=deny",
		"DENIED no policy permits this handoff",
		"to=spiffe://example.org/agent/order-lookup decision=allow policies=support-delegates-lookups",
		"tool=read_ticket agent=spiffe://example.org/agent/order-lookup chain=spiffe://example.org/agent/support-bot decision=allow policies=lookup-read-tickets",
		"DENIED delegating agent spiffe://example.org/agent/support-bot may not make this call",
		"identity_change   agent=spiffe://example.org/agent/support-bot serial=",
		`reason="identity acquired" outcome=ok`,
		`args={"body":"[REDACTED]","to":"team@example.com"}`,
		"checkpoints signed by ed25519:",
		"anchors kept elsewhere found: chain intact",
		"a copy cut back by its last 3 records passes as a log still open, but not against the anchors: the log ends at seq 20 but an anchor was kept for seq 23",
		"a copy with one denial edited into an allow fails at line 8 (seq 8): hash mismatch",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if strings.Contains(s, "eyJ") {
		t.Error("transcript shows a token") // every JWT starts with eyJ
	}
	if t.Failed() {
		t.Log(s)
	}
}

// TestQuickstartWorkloadAPI runs the quickstart with SPIFFE_ENDPOINT_SOCKET
// set: the agents' identities come from the Workload API (here a fake one,
// serving SVIDs for two registration entries with hints), not from the
// development issuer.
func TestQuickstartWorkloadAPI(t *testing.T) {
	t.Setenv("AGENTGUARD_AUDIT_DIR", t.TempDir())
	iss, err := identity.NewDevIssuer("prod.example")
	if err != nil {
		t.Fatal(err)
	}
	wl := identitytest.NewWorkloadAPI(t, iss,
		identitytest.Entry{ID: spiffeid.RequireFromString("spiffe://prod.example/agent/support-bot"), Hint: "support-bot"},
		identitytest.Entry{ID: spiffeid.RequireFromString("spiffe://prod.example/agent/order-lookup"), Hint: "order-lookup"},
	)
	t.Setenv(identity.EndpointSocketEnv, wl.Addr())
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"identity: SPIFFE Workload API at " + wl.Addr(),
		"AgentGuard quickstart: agent spiffe://prod.example/agent/support-bot\n",
		"policies=support-read-tickets outcome=ok",
		"to=spiffe://prod.example/agent/order-lookup decision=allow",
		"tool=read_ticket agent=spiffe://prod.example/agent/order-lookup chain=spiffe://prod.example/agent/support-bot decision=allow",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if strings.Contains(s, "development issuer") {
		t.Error("transcript says the development issuer was used")
	}
	if t.Failed() {
		t.Log(s)
	}
}

// TestQuickstartWorkloadAPIWithoutEntry: with SPIFFE_ENDPOINT_SOCKET set and
// no registration entry, the quickstart fails with a clear error instead of
// hanging or falling back to the development issuer.
func TestQuickstartWorkloadAPIWithoutEntry(t *testing.T) {
	t.Setenv("AGENTGUARD_AUDIT_DIR", t.TempDir())
	iss, err := identity.NewDevIssuer("prod.example")
	if err != nil {
		t.Fatal(err)
	}
	wl := identitytest.NewWorkloadAPI(t, iss)
	t.Setenv(identity.EndpointSocketEnv, wl.Addr())
	t.Setenv("AGENTGUARD_SPIFFE_START_TIMEOUT", "1s")
	var out bytes.Buffer
	err = run(context.Background(), &out)
	if !errors.Is(err, identity.ErrNoIdentity) || !strings.Contains(err.Error(), "registration entry") {
		t.Fatalf("err = %v, want ErrNoIdentity naming registration entries", err)
	}
}
