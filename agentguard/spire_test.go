package agentguard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/internal/spiretest"
	"github.com/agentguard/go-sdk/policy"
)

// TestRealSPIRE runs guarded tool calls with identities from a real SPIRE
// server and agent (v1.13.3, started by the test). It is skipped when the
// binaries are absent, unless AGENTGUARD_REQUIRE_SPIRE=1 (as in .ci/run):
// build them with .ci/spire.sh.
func TestRealSPIRE(t *testing.T) {
	spiretest.Require(t)
	const td = "agentguard.test"
	s := spiretest.Start(t, td)
	ctx := context.Background()
	quiet := identity.WithSPIFFELogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	selector := fmt.Sprintf("unix:uid:%d", os.Getuid())

	// No registration entry matches this process yet: the Workload API
	// never answers, and the source gives up after its bounded wait.
	start := time.Now()
	_, err := identity.NewSPIFFESource(ctx, identity.WithSocket(s.Addr()), identity.WithStartTimeout(2*time.Second), quiet)
	if !errors.Is(err, identity.ErrNoIdentity) || !strings.Contains(err.Error(), "registration entry") {
		t.Fatalf("no entry: err = %v, want ErrNoIdentity", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("bounded wait took %s", d)
	}
	t.Logf("no entry: %v (after %s)", err, time.Since(start).Round(time.Millisecond))

	// Two agents in this process, one registration entry each.
	supportEntry := s.CreateEntry(t, "spiffe://"+td+"/agent/support", "support", selector)
	s.CreateEntry(t, "spiffe://"+td+"/agent/lookup", "lookup", selector)
	start = time.Now()
	src, err := identity.NewSPIFFESource(ctx, identity.WithSocket(s.Addr()), identity.WithStartTimeout(60*time.Second), quiet)
	if err != nil {
		t.Fatalf("NewSPIFFESource: %v", err)
	}
	defer src.Close()
	waitFor(t, "both SVIDs", func() bool { return len(src.IDs()) == 2 })
	t.Logf("first SVIDs after %s", time.Since(start).Round(time.Millisecond))

	support, err := src.Agent(identity.ByHint("support"))
	if err != nil {
		t.Fatal(err)
	}
	lookup, err := src.Agent(identity.ByHint("lookup"))
	if err != nil {
		t.Fatal(err)
	}
	if support.ID().String() != "spiffe://"+td+"/agent/support" || lookup.ID().String() != "spiffe://"+td+"/agent/lookup" {
		t.Fatalf("agents bound to %s and %s", support.ID(), lookup.ID())
	}
	if _, err := src.Agent(identity.ByHint("support")); !errors.Is(err, identity.ErrIdentityInUse) {
		t.Errorf("second binding of support: err = %v", err)
	}
	svid, err := support.SVID()
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID != support.ID() || len(svid.Certificates) == 0 {
		t.Fatalf("SVID = %v", svid.ID)
	}

	policies := policy.MustParseSet("spire.cedar", `
@id("support-search") permit(principal == Agent::"spiffe://agentguard.test/agent/support", action == Action::"search", resource);
@id("lookup-search") permit(principal == Agent::"spiffe://agentguard.test/agent/lookup", action == Action::"search", resource);
@id("lookup-refund") permit(principal == Agent::"spiffe://agentguard.test/agent/lookup", action == Action::"refund", resource);
@id("support-delegates") permit(principal == Agent::"spiffe://agentguard.test/agent/support", action == Action::"delegate", resource == Agent::"spiffe://agentguard.test/agent/lookup");
`)
	engine, err := policy.NewCedarEngine(policies)
	if err != nil {
		t.Fatal(err)
	}
	guardFor := func(src identity.Source) (*agentguard.Guard, *audittest.Recorder) {
		rec := audittest.NewRecorder()
		g, err := agentguard.New(agentguard.WithIdentity(src), agentguard.WithPolicy(engine), agentguard.WithAudit(rec))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Close(ctx) })
		return g, rec
	}
	supportGuard, supportAudit := guardFor(support)
	lookupGuard, lookupAudit := guardFor(lookup)

	// A guarded call whose policy names the SPIFFE ID SPIRE issued.
	if err := call(ctx, supportGuard, "search"); err != nil {
		t.Fatalf("support search: %v", err)
	}
	if last, _ := supportAudit.Last(); last.Agent != "spiffe://agentguard.test/agent/support" || last.Decision != audit.Allow ||
		strings.Join(last.Policies, ",") != "support-search" {
		t.Errorf("support audit = %+v", last)
	}
	// Each agent is itself: policy lets lookup refund, not support.
	if err := call(ctx, supportGuard, "refund"); !errors.Is(err, agentguard.ErrDenied) {
		t.Errorf("support refund: err = %v, want denied", err)
	}
	if err := call(ctx, lookupGuard, "refund"); err != nil {
		t.Errorf("lookup refund: %v", err)
	}

	// Delegation with SPIRE's JWT-SVIDs: support hands a task to lookup, as
	// if to another process; lookup verifies the handoff against SPIRE's
	// JWT bundle. On the task, lookup may not refund (support may not).
	h, err := supportGuard.Handoff(ctx, lookup.ID())
	if err != nil {
		t.Fatalf("Handoff: %v", err)
	}
	wire, err := identity.ParseHandoff(h.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	lctx, err := lookupGuard.AcceptHandoff(ctx, wire)
	if err != nil {
		t.Fatalf("AcceptHandoff: %v", err)
	}
	if err := call(lctx, lookupGuard, "search"); err != nil {
		t.Errorf("delegated search: %v", err)
	}
	if last, _ := lookupAudit.Last(); strings.Join(last.Chain, ",") != "spiffe://agentguard.test/agent/support" {
		t.Errorf("delegated call chain = %q", last.Chain)
	}
	if err := call(lctx, lookupGuard, "refund"); !errors.Is(err, agentguard.ErrDenied) {
		t.Errorf("delegated refund: err = %v, want denied (attenuation)", err)
	}
	// A handoff addressed to lookup is worthless to support.
	if _, err := supportGuard.AcceptHandoff(ctx, wire); !errors.Is(err, agentguard.ErrDelegation) {
		t.Errorf("support accepting lookup's handoff: err = %v", err)
	}

	// The support entry is deleted: SPIRE stops serving its SVID and the
	// support agent loses access; lookup keeps its own.
	s.DeleteEntry(t, supportEntry)
	start = time.Now()
	waitFor(t, "support to lose its identity", func() bool {
		return errors.Is(call(ctx, supportGuard, "search"), agentguard.ErrNoIdentity)
	})
	t.Logf("support lost its identity %s after its entry was deleted", time.Since(start).Round(time.Millisecond))
	if last, _ := supportAudit.Last(); last.Decision != audit.Deny || last.Step != agentguard.StepIdentify {
		t.Errorf("denial not audited: %+v", last)
	}
	if err := call(ctx, lookupGuard, "search"); err != nil {
		t.Errorf("lookup after support's entry was deleted: %v", err)
	}
}

// waitFor polls cond for up to 60 s: SPIRE needs a moment to issue or
// withdraw an SVID after an entry changes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
