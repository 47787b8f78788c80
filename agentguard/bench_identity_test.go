package agentguard_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/identity/identitytest"
	"github.com/agentguard/go-sdk/policy"
)

const benchDelegationPolicies = `
@id("search") permit(principal, action == Action::"search", resource);
@id("deleg") permit(principal == Agent::"spiffe://example.org/agent/parent", action == Action::"delegate", resource);
`

// BenchmarkIdentity measures the identity step's share of a guarded call
// (Cedar, one policy): a static identity; a verified SVID from the
// development issuer; an SVID from a Workload API (the fake one, on a unix
// socket: the call itself never leaves the process); a call delegated once,
// which policy decides for the sub-agent and its parent. And the handoff
// operations themselves, which mint and verify JWT-SVIDs.
func BenchmarkIdentity(b *testing.B) {
	iss, err := identity.NewDevIssuer("example.org")
	if err != nil {
		b.Fatal(err)
	}
	parent, _ := iss.Agent("/agent/parent")
	child, _ := iss.Agent("/agent/child")
	eng, err := policy.NewCedarEngine(policy.MustParseSet("b.cedar", benchDelegationPolicies))
	if err != nil {
		b.Fatal(err)
	}
	newGuard := func(src identity.Source) *agentguard.Guard {
		g, err := agentguard.New(agentguard.WithIdentity(src), agentguard.WithPolicy(eng), agentguard.WithAudit(audit.Discard))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = g.Close(context.Background()) })
		return g
	}
	tool := echoTool("search")
	args := json.RawMessage(`{"q":"x"}`)
	run := func(b *testing.B, ctx context.Context, g *agentguard.Guard) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := g.Invoke(ctx, tool, agentguard.Call{ID: "c", Args: args}); err != nil {
				b.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	b.Run("call/static", func(b *testing.B) {
		run(b, ctx, newGuard(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/child"))))
	})
	b.Run("call/dev-issuer", func(b *testing.B) { run(b, ctx, newGuard(child)) })
	b.Run("call/workload-api", func(b *testing.B) {
		wl := identitytest.NewWorkloadAPI(b, iss, identitytest.Entry{ID: spiffeid.RequireFromString("spiffe://example.org/agent/child")})
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		src, err := identity.NewSPIFFESource(sctx, identity.WithSocket(wl.Addr()), identity.WithSPIFFELogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			b.Fatal(err)
		}
		defer src.Close()
		a, err := src.Agent(identity.OnlySVID())
		if err != nil {
			b.Fatal(err)
		}
		run(b, ctx, newGuard(a))
	})
	b.Run("call/delegated-depth-1", func(b *testing.B) {
		dctx, err := newGuard(parent).Delegate(ctx, child.ID())
		if err != nil {
			b.Fatal(err)
		}
		run(b, dctx, newGuard(child))
	})
	b.Run("handoff/mint", func(b *testing.B) {
		g := newGuard(parent)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := g.Handoff(ctx, child.ID()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("handoff/accept", func(b *testing.B) {
		h, err := newGuard(parent).Handoff(ctx, child.ID())
		if err != nil {
			b.Fatal(err)
		}
		g := newGuard(child)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := g.AcceptHandoff(ctx, h); err != nil {
				b.Fatal(err)
			}
		}
	})
}
