package agentguard_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/identity/identitytest"
	"github.com/agentguard/go-sdk/policy"
)

// workloadAgent is an agent of a process of its own: its identity comes
// from its own (fake) Workload API.
func workloadAgent(t *testing.T, iss *identity.DevIssuer, id string, policies string) (*identitytest.WorkloadAPI, *identity.SPIFFEAgent, *agentguard.Guard, *audittest.Recorder) {
	t.Helper()
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: spiffeid.RequireFromString(id)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	src, err := identity.NewSPIFFESource(ctx, identity.WithSocket(wl.Addr()),
		identity.WithSPIFFELogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	agent, err := src.Agent(identity.OnlySVID())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.NewCedarEngine(policy.MustParseSet("p.cedar", policies))
	if err != nil {
		t.Fatal(err)
	}
	rec := audittest.NewRecorder()
	g, err := agentguard.New(agentguard.WithIdentity(agent), agentguard.WithPolicy(eng), agentguard.WithAudit(rec))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	return wl, agent, g, rec
}

func TestGuardWithWorkloadAPIIdentity(t *testing.T) {
	iss := newIssuer(t, "example.org")
	wl, _, g, rec := workloadAgent(t, iss, "spiffe://example.org/agent/a",
		`@id("a-search") permit(principal == Agent::"spiffe://example.org/agent/a", action == Action::"search", resource);`)
	ctx := context.Background()
	if err := call(ctx, g, "search"); err != nil {
		t.Fatalf("call: %v", err)
	}
	if last, _ := rec.Last(); last.Agent != "spiffe://example.org/agent/a" || last.Decision != audit.Allow {
		t.Errorf("audit = %+v", last)
	}
	// The registration entry is deleted: the agent loses access.
	wl.SetEntries()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for err = call(ctx, g, "search"); err == nil && time.Now().Before(deadline); err = call(ctx, g, "search") {
		time.Sleep(20 * time.Millisecond)
	}
	var de *agentguard.DenyError
	if !errors.As(err, &de) || de.Step != agentguard.StepIdentify || !errors.Is(err, agentguard.ErrNoIdentity) {
		t.Fatalf("after the entry was deleted: err = %v, want ErrNoIdentity", err)
	}
	if last, _ := rec.Last(); last.Decision != audit.Deny || last.Step != agentguard.StepIdentify {
		t.Errorf("denial not audited: %+v", last)
	}
}

// TestHandoffBetweenWorkloads: agents of two processes, each with its own
// Workload API (the fake one), hand a task over with JWT-SVIDs from those
// Workload APIs: allowed, refused by policy, attenuated, and refused for a
// wrong audience, an expired token and a foreign trust domain.
func TestHandoffBetweenWorkloads(t *testing.T) {
	var offset atomic.Int64
	iss := newIssuer(t, "example.org", identity.WithDevClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }))
	const policies = `
@id("deleg") permit(principal == Agent::"spiffe://example.org/agent/parent", action == Action::"delegate", resource == Agent::"spiffe://example.org/agent/child");
@id("search") permit(principal, action == Action::"search", resource);
@id("child-deletes") permit(principal == Agent::"spiffe://example.org/agent/child", action == Action::"delete", resource);
`
	_, parentAgent, parent, _ := workloadAgent(t, iss, "spiffe://example.org/agent/parent", policies)
	_, child, childGuard, childAudit := workloadAgent(t, iss, "spiffe://example.org/agent/child", policies)
	_, other, otherGuard, _ := workloadAgent(t, iss, "spiffe://example.org/agent/other", policies)
	ctx := context.Background()

	// Policy does not let the parent hand work to "other".
	if _, err := parent.Handoff(ctx, other.ID()); !errors.Is(err, agentguard.ErrDenied) {
		t.Errorf("handoff to other: err = %v, want denied", err)
	}
	// The child alone may delete; on the parent's task it may not.
	if err := call(ctx, childGuard, "delete"); err != nil {
		t.Fatalf("child alone: delete: %v", err)
	}

	// The parent's JWT-SVID comes from its Workload API; the child verifies
	// it with the JWT bundle its own Workload API serves.
	h, err := parent.Handoff(ctx, child.ID())
	if err != nil {
		t.Fatalf("Handoff: %v", err)
	}
	wire, err := identity.ParseHandoff(h.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	cctx, err := childGuard.AcceptHandoff(ctx, wire)
	if err != nil {
		t.Fatalf("AcceptHandoff: %v", err)
	}
	if err := call(cctx, childGuard, "search"); err != nil {
		t.Fatal(err)
	}
	if last, _ := childAudit.Last(); len(last.Chain) != 1 || last.Chain[0] != "spiffe://example.org/agent/parent" {
		t.Errorf("child's call chain = %q", last.Chain)
	}
	if err := call(cctx, childGuard, "delete"); !errors.Is(err, agentguard.ErrDenied) {
		t.Errorf("delegated delete: err = %v, want denied (attenuation)", err)
	}
	// Addressed to the child, presented by another agent.
	if _, err := otherGuard.AcceptHandoff(ctx, wire); !errors.Is(err, agentguard.ErrDelegation) || !strings.Contains(err.Error(), "audience") {
		t.Errorf("wrong audience: err = %v", err)
	}
	// Signed by the same CA an hour ago: expired. (go-spiffe's client itself
	// refuses to hand out an expired JWT-SVID, so the issuer mints it.)
	devParent, err := iss.Agent(parentAgent.ID().Path())
	if err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(-time.Hour))
	old, err := identity.NewHandoff(ctx, devParent, nil, child.ID())
	offset.Store(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := childGuard.AcceptHandoff(ctx, old); !errors.Is(err, agentguard.ErrDelegation) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired: err = %v", err)
	}

	// A parent in a trust domain the child's Workload API has no bundle for.
	otherTD := newIssuer(t, "other.org")
	foreignParent, _ := otherTD.Agent("/agent/parent")
	foreign, err := identity.NewHandoff(ctx, foreignParent, nil, child.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := childGuard.AcceptHandoff(ctx, foreign); !errors.Is(err, agentguard.ErrDelegation) {
		t.Errorf("foreign trust domain: err = %v", err)
	}
}
