package identity_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/identity/identitytest"
)

// ByID of a zero SPIFFE ID (an ID that failed to parse, an unset
// configuration value) is the same Selector as OnlySVID: it binds whatever
// single SVID the workload has, instead of failing.
func TestByIDZeroSelectsNothing(t *testing.T) {
	iss := issuer(t, "example.org")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: mustID(t, "spiffe://example.org/agent/admin")})
	src := newSource(t, wl.Addr())
	var unset spiffeid.ID // e.g. spiffeid.FromString(os.Getenv("AGENT_ID")) failed
	if a, err := src.Agent(identity.ByID(unset)); err == nil {
		t.Errorf("Agent(ByID(zero ID)) bound %s; want an error", a.ID())
	}
}

// Likewise ByHint("") binds the only SVID.
func TestByHintEmptySelectsNothing(t *testing.T) {
	iss := issuer(t, "example.org")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: mustID(t, "spiffe://example.org/agent/admin"), Hint: "admin"})
	src := newSource(t, wl.Addr())
	if a, err := src.Agent(identity.ByHint("")); err == nil {
		t.Errorf("Agent(ByHint(\"\")) bound %s; want an error", a.ID())
	}
}

// ErrIdentityInUse is promised per process ("bound to another live agent
// of this process"), but the binding table is per SPIFFESource: a second
// source in the same process binds the same SPIFFE ID again.
func TestIdentityInUseAcrossSources(t *testing.T) {
	iss := issuer(t, "example.org")
	id := mustID(t, "spiffe://example.org/agent/a")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: id})
	src1 := newSource(t, wl.Addr())
	src2 := newSource(t, wl.Addr())
	if _, err := src1.Agent(identity.ByID(id)); err != nil {
		t.Fatal(err)
	}
	if _, err := src1.Agent(identity.ByID(id)); !errors.Is(err, identity.ErrIdentityInUse) {
		t.Fatalf("same source: err = %v, want ErrIdentityInUse", err)
	}
	if _, err := src2.Agent(identity.ByID(id)); !errors.Is(err, identity.ErrIdentityInUse) {
		t.Errorf("second source in the same process bound %s again: err = %v, want ErrIdentityInUse", id, err)
	}
}

// WithTrustDomains restricts the source's own SVIDs but not the bundles it
// serves as a jwtbundle.Source, which a guard uses (by default, through the
// agent) to verify handoffs: a JWT-SVID of a federated trust domain the
// source was told not to accept verifies.
func TestTrustDomainRestrictionCoversJWTBundles(t *testing.T) {
	iss := issuer(t, "example.org")
	other := issuer(t, "other.org")
	self := mustID(t, "spiffe://example.org/agent/callee")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: self})
	wl.Federate(other)
	src := newSource(t, wl.Addr(), identity.WithTrustDomains(iss.TrustDomain()))
	agent, err := src.Agent(identity.OnlySVID())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Agent("/agent/x")
	if err != nil {
		t.Fatal(err)
	}
	h, err := identity.NewHandoff(context.Background(), foreign, nil, self)
	if err != nil {
		t.Fatal(err)
	}
	// Give the federated bundle time to arrive, as in TestSPIFFEJWTSVIDs.
	deadline := time.Now().Add(3 * time.Second)
	var chain []spiffeid.ID
	for time.Now().Before(deadline) {
		if chain, err = h.Verify(agent, self, 4); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err == nil {
		t.Errorf("handoff from %v (trust domain other.org, excluded by WithTrustDomains) verified", chain)
	}
}

// A handoff's tokens are not bound to each other: any suffix of a valid
// handoff is itself a valid handoff, so whoever holds A>B>C's header can
// present B>C only, and the checks for A (attenuation) are dropped.
func TestHandoffTailWithoutHeadRefused(t *testing.T) {
	iss := issuer(t, "example.org")
	a, _ := iss.Agent("/agent/a")
	b, _ := iss.Agent("/agent/b")
	c, _ := iss.Agent("/agent/c")
	ctx := context.Background()
	h1, err := identity.NewHandoff(ctx, a, nil, b.ID())
	if err != nil {
		t.Fatal(err)
	}
	h2, err := identity.NewHandoff(ctx, b, h1, c.ID())
	if err != nil {
		t.Fatal(err)
	}
	if chain, err := h2.Verify(iss, c.ID(), 4); err != nil || len(chain) != 2 {
		t.Fatalf("full handoff: %v, %v", chain, err)
	}
	toks := strings.Split(h2.Marshal(), ",")
	cut, err := identity.ParseHandoff(toks[1])
	if err != nil {
		t.Fatal(err)
	}
	if chain, err := cut.Verify(iss, c.ID(), 4); err == nil {
		t.Errorf("handoff with its root hop removed verifies, chain %v: the root agent's checks are dropped", chain)
	}
}

// Verify and VerifyJWTSVID check for a nil bundle source, but a typed nil
// (a nil *SPIFFESource or *DevIssuer in the interface) panics.
func TestVerifyTypedNilBundlesRefused(t *testing.T) {
	iss := issuer(t, "example.org")
	a, _ := iss.Agent("/agent/a")
	b, _ := iss.Agent("/agent/b")
	h, err := identity.NewHandoff(context.Background(), a, nil, b.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("Verify with a typed-nil bundle source panicked: %v", r)
		}
	}()
	var src *identity.SPIFFESource
	if _, err := h.Verify(src, b.ID(), 4); err == nil {
		t.Error("verified against a nil source")
	}
}

// Pins: nil and zero values of the handoff and JWT-SVID types neither panic
// nor verify, and none prints its tokens.
func TestNilAndZeroValues(t *testing.T) {
	iss := issuer(t, "example.org")
	b, _ := iss.Agent("/agent/b")
	var h *identity.Handoff
	if h.Hops() != 0 || h.Marshal() != "" {
		t.Error("nil handoff has tokens")
	}
	if _, err := h.Verify(iss, b.ID(), 4); !errors.Is(err, identity.ErrHandoff) {
		t.Errorf("nil handoff Verify: %v", err)
	}
	if _, err := (&identity.Handoff{}).Verify(iss, b.ID(), 4); !errors.Is(err, identity.ErrHandoff) {
		t.Errorf("zero handoff Verify: %v", err)
	}
	_ = fmt.Sprintf("%v %+v %#v %s", h, h, h, h)
	var j *identity.JWTSVID
	if j.Marshal() != "" || (&identity.JWTSVID{}).Marshal() != "" {
		t.Error("zero JWT-SVID has a token")
	}
	if _, err := identity.NewHandoff(context.Background(), b, nil, spiffeid.ID{}); err == nil {
		t.Error("handoff to a zero ID")
	}
	if _, err := identity.NewHandoff(context.Background(), nil, nil, b.ID()); err == nil {
		t.Error("handoff from a nil issuer")
	}
	a, _ := iss.Agent("/agent/a")
	h1, _ := identity.NewHandoff(context.Background(), a, nil, b.ID())
	if _, err := h1.Verify(iss, spiffeid.ID{}, 4); !errors.Is(err, identity.ErrHandoff) {
		t.Errorf("Verify for a zero recipient: %v", err)
	}
	if _, err := h1.Verify(nil, b.ID(), 4); !errors.Is(err, identity.ErrHandoff) {
		t.Errorf("Verify with nil bundles: %v", err)
	}
}

// Pins: a handoff signed by another CA of the same trust domain (a forged
// issuer) does not verify, and a handoff's depth limit is exact.
func TestHandoffForgedAndDepth(t *testing.T) {
	iss := issuer(t, "example.org")
	forger := issuer(t, "example.org")
	a, _ := forger.Agent("/agent/a")
	b, _ := iss.Agent("/agent/b")
	c, _ := iss.Agent("/agent/c")
	ctx := context.Background()
	h, _ := identity.NewHandoff(ctx, a, nil, b.ID())
	if _, err := h.Verify(iss, b.ID(), 4); !errors.Is(err, identity.ErrHandoff) {
		t.Errorf("forged handoff: %v", err)
	}
	a2, _ := iss.Agent("/agent/a")
	h1, _ := identity.NewHandoff(ctx, a2, nil, b.ID())
	h2, _ := identity.NewHandoff(ctx, b, h1, c.ID())
	if _, err := h2.Verify(iss, c.ID(), 2); err != nil {
		t.Errorf("2 hops, limit 2: %v", err)
	}
	if _, err := h2.Verify(iss, c.ID(), 1); !errors.Is(err, identity.ErrHandoff) {
		t.Errorf("2 hops, limit 1: %v", err)
	}
	// Addressed to b, not to c: replay to another recipient fails.
	if _, err := h1.Verify(iss, c.ID(), 4); !errors.Is(err, identity.ErrHandoff) {
		t.Errorf("replayed to another recipient: %v", err)
	}
}

// Pins: Close leaves no goroutine of the source behind.
func TestSourceCloseLeavesNoGoroutines(t *testing.T) {
	iss := issuer(t, "example.org")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: mustID(t, "spiffe://example.org/a")})
	// Warm up gRPC's package-level goroutines.
	warm := newSource(t, wl.Addr())
	_ = warm.Close()
	time.Sleep(200 * time.Millisecond)
	before := runtime.NumGoroutine()
	for range 5 {
		src := newSource(t, wl.Addr())
		a, err := src.Agent(identity.OnlySVID())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.JWTSVID(context.Background(), "spiffe://example.org/x"); err != nil {
			t.Fatal(err)
		}
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after 5 sources were closed\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// Pins: no data race between rotations, identity and JWT-SVID requests,
// Release, re-binding and Close (run with -race); after Close nothing
// answers with an identity.
func TestSourceConcurrentUseAndClose(t *testing.T) {
	iss := issuer(t, "example.org")
	id := mustID(t, "spiffe://example.org/a")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: id})
	src := newSource(t, wl.Addr())
	agent, err := src.Agent(identity.OnlySVID())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	done := make(chan struct{})
	errc := make(chan error, 8)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errc <- nil
					return
				default:
				}
				_, _ = agent.Identity(ctx)
				_, _ = agent.JWTSVID(ctx, "spiffe://example.org/b")
				_ = src.IDs()
				_, _ = src.GetX509BundleForTrustDomain(iss.TrustDomain())
			}
		}()
	}
	for range 5 {
		wl.Rotate()
		time.Sleep(20 * time.Millisecond)
	}
	_ = src.Close()
	close(done)
	for range 4 {
		<-errc
	}
	if _, err := agent.Identity(ctx); !errors.Is(err, identity.ErrNoIdentity) {
		t.Errorf("Identity after Close: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // a late watch update must not bring SVIDs back
	if ids := src.IDs(); len(ids) != 0 {
		t.Errorf("IDs after Close = %v", ids)
	}
}
