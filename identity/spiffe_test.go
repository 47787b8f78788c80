package identity_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/identity/identitytest"
)

var quiet = identity.WithSPIFFELogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

func issuer(t *testing.T, td string, opts ...identity.DevOption) *identity.DevIssuer {
	t.Helper()
	iss, err := identity.NewDevIssuer(td, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func mustID(t *testing.T, s string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newSource(t *testing.T, addr string, opts ...identity.SPIFFEOption) *identity.SPIFFESource {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	src, err := identity.NewSPIFFESource(ctx, append([]identity.SPIFFEOption{identity.WithSocket(addr), quiet}, opts...)...)
	if err != nil {
		t.Fatalf("NewSPIFFESource: %v", err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// eventually polls cond for up to 10 s: the Workload API pushes updates
// asynchronously.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSPIFFESourceIdentity(t *testing.T) {
	iss := issuer(t, "example.org")
	id := mustID(t, "spiffe://example.org/agent/support")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: id})
	src := newSource(t, wl.Addr())
	agent, err := src.Agent(identity.OnlySVID())
	if err != nil {
		t.Fatal(err)
	}
	got, err := agent.Identity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || len(got.Chain) != 0 {
		t.Errorf("Identity = %v, want %s", got, id)
	}
	svid, err := agent.SVID()
	if err != nil {
		t.Fatal(err)
	}
	// The SVID verifies against the issuer's bundle: it is a real one.
	if _, err := identity.NewDevIssuer("example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := svid.Certificates[0].Verify(x509Opts(iss)); err != nil {
		t.Errorf("SVID does not verify against the issuer's CA: %v", err)
	}
}

func TestSPIFFESourceFromEnvironment(t *testing.T) {
	iss := issuer(t, "example.org")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: mustID(t, "spiffe://example.org/a")})
	t.Setenv(identity.EndpointSocketEnv, wl.Addr())
	src, err := identity.NewSPIFFESource(context.Background(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if ids := src.IDs(); len(ids) != 1 || ids[0].String() != "spiffe://example.org/a" {
		t.Errorf("IDs = %v", ids)
	}

	t.Setenv(identity.EndpointSocketEnv, "")
	if _, err := identity.NewSPIFFESource(context.Background(), quiet); !errors.Is(err, identity.ErrNoIdentity) || !strings.Contains(err.Error(), identity.EndpointSocketEnv) {
		t.Errorf("no socket: err = %v", err)
	}
	if _, err := identity.NewSPIFFESource(context.Background(), quiet, identity.WithSocket("tcp://not-an-ip:1")); err == nil {
		t.Error("bad address accepted")
	}
}

func TestSPIFFESourceRotation(t *testing.T) {
	iss := issuer(t, "example.org")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: mustID(t, "spiffe://example.org/a")})
	src := newSource(t, wl.Addr())
	agent, err := src.Agent(identity.OnlySVID())
	if err != nil {
		t.Fatal(err)
	}
	first, err := agent.SVID()
	if err != nil {
		t.Fatal(err)
	}
	serial := first.Certificates[0].SerialNumber
	wl.Rotate()
	eventually(t, "the rotated SVID", func() bool {
		s, err := agent.SVID()
		return err == nil && s.Certificates[0].SerialNumber.Cmp(serial) != 0
	})
	// And after the CA itself rotates, new SVIDs chain to the new CA and
	// still verify.
	if err := iss.Rotate(); err != nil {
		t.Fatal(err)
	}
	before, _ := agent.SVID()
	wl.Rotate()
	eventually(t, "an SVID of the new CA", func() bool {
		s, err := agent.SVID()
		return err == nil && s.Certificates[0].SerialNumber.Cmp(before.Certificates[0].SerialNumber) != 0
	})
	if _, err := agent.Identity(context.Background()); err != nil {
		t.Errorf("after CA rotation: %v", err)
	}
}

func TestSPIFFESourceRefusesExpiredAndUnverifiable(t *testing.T) {
	iss := issuer(t, "example.org")
	past := issuer(t, "example.org", identity.WithDevClock(func() time.Time { return time.Now().Add(-2 * time.Hour) }))
	id := mustID(t, "spiffe://example.org/a")

	t.Run("expired at start", func(t *testing.T) {
		// An issuer whose clock is two hours behind mints an SVID that
		// expired an hour ago; the fake serves it with that issuer's bundle.
		old, err := past.MintX509SVID(id)
		if err != nil {
			t.Fatal(err)
		}
		wl := identitytest.NewWorkloadAPI(t, past)
		wl.SetX509SVIDs(old)
		start := time.Now()
		_, err = identity.NewSPIFFESource(context.Background(), identity.WithSocket(wl.Addr()), identity.WithStartTimeout(time.Second), quiet)
		if !errors.Is(err, identity.ErrNoIdentity) {
			t.Fatalf("err = %v, want ErrNoIdentity", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("start-up wait took %s", d)
		}
	})
	t.Run("expires while served", func(t *testing.T) {
		wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: id})
		src := newSource(t, wl.Addr())
		agent, err := src.Agent(identity.ByID(id))
		if err != nil {
			t.Fatal(err)
		}
		// The Workload API now serves only an expired SVID for the agent.
		old, err := past.MintX509SVID(id)
		if err != nil {
			t.Fatal(err)
		}
		wl.SetX509SVIDs(old)
		eventually(t, "the expired SVID to be refused", func() bool {
			_, err := agent.Identity(context.Background())
			return errors.Is(err, identity.ErrNoIdentity)
		})
	})
	t.Run("not signed by the bundle's CA", func(t *testing.T) {
		forger := issuer(t, "example.org")
		forged, err := forger.MintX509SVID(id)
		if err != nil {
			t.Fatal(err)
		}
		wl := identitytest.NewWorkloadAPI(t, iss) // serves iss's bundle
		wl.SetX509SVIDs(forged)
		_, err = identity.NewSPIFFESource(context.Background(), identity.WithSocket(wl.Addr()), identity.WithStartTimeout(time.Second), quiet)
		if !errors.Is(err, identity.ErrNoIdentity) || !strings.Contains(err.Error(), "no usable X.509-SVID") {
			t.Fatalf("err = %v, want ErrNoIdentity", err)
		}
	})
}

func TestSPIFFESourceRestrictions(t *testing.T) {
	iss := issuer(t, "example.org")
	a := mustID(t, "spiffe://example.org/agent/a")
	other := mustID(t, "spiffe://example.org/service/db")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: a, Hint: "a"}, identitytest.Entry{ID: other, Hint: "db"})

	t.Run("trust domain not allowed", func(t *testing.T) {
		_, err := identity.NewSPIFFESource(context.Background(), identity.WithSocket(wl.Addr()), identity.WithStartTimeout(time.Second),
			identity.WithTrustDomains(spiffeid.RequireTrustDomainFromString("prod.example.com")), quiet)
		if !errors.Is(err, identity.ErrNoIdentity) || !strings.Contains(err.Error(), "accepts") {
			t.Fatalf("err = %v, want ErrNoIdentity", err)
		}
	})
	t.Run("trust domain allowed", func(t *testing.T) {
		src := newSource(t, wl.Addr(), identity.WithTrustDomains(spiffeid.RequireTrustDomainFromString("example.org")))
		if len(src.IDs()) != 2 {
			t.Errorf("IDs = %v", src.IDs())
		}
	})
	t.Run("path prefix", func(t *testing.T) {
		src := newSource(t, wl.Addr(), identity.WithIDs(identity.MatchPathPrefix(iss.TrustDomain(), "/agent")))
		if ids := src.IDs(); len(ids) != 1 || ids[0] != a {
			t.Errorf("IDs = %v, want only %s", ids, a)
		}
		if _, err := src.Agent(identity.ByID(other)); !errors.Is(err, identity.ErrNoIdentity) {
			t.Errorf("Agent(excluded ID): err = %v", err)
		}
	})
}

func TestMatchPathPrefix(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	m := identity.MatchPathPrefix(td, "/agent/")
	for s, want := range map[string]bool{
		"spiffe://example.org/agent":         true,
		"spiffe://example.org/agent/a":       true,
		"spiffe://example.org/agent/a/b":     true,
		"spiffe://example.org/agents":        false,
		"spiffe://example.org/agentx/a":      false,
		"spiffe://example.org":               false,
		"spiffe://other.org/agent/a":         false,
		"spiffe://example.org/service/agent": false,
	} {
		if got := m(spiffeid.RequireFromString(s)) == nil; got != want {
			t.Errorf("%s: match = %v, want %v", s, got, want)
		}
	}
}

func TestSPIFFESourceSeveralAgents(t *testing.T) {
	iss := issuer(t, "example.org")
	planner := mustID(t, "spiffe://example.org/agent/planner")
	coder := mustID(t, "spiffe://example.org/agent/coder")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: planner, Hint: "planner"}, identitytest.Entry{ID: coder, Hint: "coder"})
	src := newSource(t, wl.Addr())
	ctx := context.Background()

	if _, err := src.Agent(identity.OnlySVID()); err == nil || !strings.Contains(err.Error(), "2 SVIDs match") {
		t.Errorf("OnlySVID with two SVIDs: err = %v", err)
	}
	p, err := src.Agent(identity.ByHint("planner"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := src.Agent(identity.ByID(coder))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := p.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cid, err := c.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pid.ID != planner || cid.ID != coder {
		t.Errorf("identities = %s, %s", pid, cid)
	}
	ps, _ := p.SVID()
	cs, _ := c.SVID()
	if ps.Certificates[0].Equal(cs.Certificates[0]) {
		t.Error("two agents share one certificate")
	}
	// No second agent gets an identity already bound, by ID or by hint.
	if _, err := src.Agent(identity.ByID(planner)); !errors.Is(err, identity.ErrIdentityInUse) {
		t.Errorf("second binding by ID: err = %v", err)
	}
	if _, err := src.Agent(identity.ByHint("coder")); !errors.Is(err, identity.ErrIdentityInUse) {
		t.Errorf("second binding by hint: err = %v", err)
	}
	if _, err := src.Agent(identity.ByHint("nobody")); !errors.Is(err, identity.ErrNoIdentity) {
		t.Errorf("unknown hint: err = %v", err)
	}
	// Released, the identity may be bound again; the released handle has
	// none.
	p.Release()
	if _, err := p.Identity(ctx); !errors.Is(err, identity.ErrNoIdentity) {
		t.Errorf("released agent: err = %v", err)
	}
	p2, err := src.Agent(identity.ByHint("planner"))
	if err != nil {
		t.Fatalf("rebind after Release: %v", err)
	}
	if id, err := p2.Identity(ctx); err != nil || id.ID != planner {
		t.Errorf("rebound: %v, %v", id, err)
	}
	// JWT-SVIDs are each agent's own.
	jp, err := p2.JWTSVID(ctx, "spiffe://example.org/service/x")
	if err != nil {
		t.Fatal(err)
	}
	jc, err := c.JWTSVID(ctx, "spiffe://example.org/service/x")
	if err != nil {
		t.Fatal(err)
	}
	if jp.ID != planner || jc.ID != coder {
		t.Errorf("JWT-SVID subjects = %s, %s", jp.ID, jc.ID)
	}
}

func TestSPIFFESourceEntryDeletedAndOutage(t *testing.T) {
	iss := issuer(t, "example.org")
	id := mustID(t, "spiffe://example.org/a")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: id})
	src := newSource(t, wl.Addr())
	agent, err := src.Agent(identity.OnlySVID())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// An outage keeps the SVID the source has: it is still valid.
	wl.Fail(codes.Unavailable)
	time.Sleep(200 * time.Millisecond) // let the stream end with Unavailable
	if _, err := agent.Identity(ctx); err != nil {
		t.Errorf("during an outage: %v", err)
	}
	wl.Recover()

	// Permission denied: the workload no longer has an entry; the agent
	// loses its identity at once.
	wl.SetEntries()
	eventually(t, "the identity to be withdrawn", func() bool {
		_, err := agent.Identity(ctx)
		return errors.Is(err, identity.ErrNoIdentity)
	})
	_, err = agent.Identity(ctx)
	if !strings.Contains(err.Error(), "no longer serves") {
		t.Errorf("err = %v", err)
	}
	// The entry comes back: so does the identity.
	wl.SetEntries(identitytest.Entry{ID: id})
	eventually(t, "the identity to come back", func() bool {
		_, err := agent.Identity(ctx)
		return err == nil
	})
}

func TestSPIFFESourceBoundedStart(t *testing.T) {
	iss := issuer(t, "example.org")
	for _, tc := range []struct {
		name string
		prep func(*identitytest.WorkloadAPI)
		want string
	}{
		{name: "no registration entry", prep: func(*identitytest.WorkloadAPI) {}, want: "PermissionDenied"},
		{name: "permission denied", prep: func(w *identitytest.WorkloadAPI) { w.Fail(codes.PermissionDenied) }, want: "PermissionDenied"},
		{name: "unavailable", prep: func(w *identitytest.WorkloadAPI) { w.Fail(codes.Unavailable) }, want: "Unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wl := identitytest.NewWorkloadAPI(t, iss)
			tc.prep(wl)
			start := time.Now()
			_, err := identity.NewSPIFFESource(context.Background(), identity.WithSocket(wl.Addr()), identity.WithStartTimeout(500*time.Millisecond), quiet)
			if !errors.Is(err, identity.ErrNoIdentity) {
				t.Fatalf("err = %v, want ErrNoIdentity", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "registration entry") {
				t.Errorf("err = %v, want it to name %s and registration entries", err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("bounded wait took %s", d)
			}
		})
	}
	t.Run("nothing listening", func(t *testing.T) {
		_, err := identity.NewSPIFFESource(context.Background(), identity.WithSocket("unix:///nonexistent/agentguard.sock"), identity.WithStartTimeout(300*time.Millisecond), quiet)
		if !errors.Is(err, identity.ErrNoIdentity) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("caller's context ends first", func(t *testing.T) {
		wl := identitytest.NewWorkloadAPI(t, iss)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := identity.NewSPIFFESource(ctx, identity.WithSocket(wl.Addr()), identity.WithStartTimeout(time.Minute), quiet)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the context's deadline", err)
		}
	})
}

func TestSPIFFESourceClose(t *testing.T) {
	iss := issuer(t, "example.org")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: mustID(t, "spiffe://example.org/a")})
	src := newSource(t, wl.Addr())
	agent, err := src.Agent(identity.OnlySVID())
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := agent.Identity(context.Background()); !errors.Is(err, identity.ErrNoIdentity) {
		t.Errorf("after Close: err = %v", err)
	}
	if _, err := agent.JWTSVID(context.Background(), "x"); err == nil {
		t.Error("JWT-SVID after Close")
	}
	if _, err := src.Agent(identity.OnlySVID()); !errors.Is(err, identity.ErrClosed) {
		t.Errorf("Agent after Close: err = %v", err)
	}
}

func TestSPIFFEJWTSVIDs(t *testing.T) {
	iss := issuer(t, "example.org")
	other := issuer(t, "other.org")
	caller := mustID(t, "spiffe://example.org/agent/caller")
	callee := mustID(t, "spiffe://example.org/agent/callee")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: caller})
	src := newSource(t, wl.Addr())
	agent, err := src.Agent(identity.OnlySVID())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	j, err := agent.JWTSVID(ctx, callee.String())
	if err != nil {
		t.Fatal(err)
	}
	if j.ID != caller || len(j.Audience) != 1 || j.Audience[0] != callee.String() || time.Until(j.Expiry) <= 0 || time.Until(j.Expiry) > 10*time.Minute {
		t.Errorf("JWT-SVID = %s %v %v", j.ID, j.Audience, j.Expiry)
	}
	tok := j.Marshal()
	for _, s := range []string{fmt.Sprint(j), fmt.Sprintf("%+v %#v %q %s", j, j, j, j)} {
		if strings.Contains(s, tok) || strings.Contains(s, strings.Split(tok, ".")[1]) {
			t.Errorf("JWT-SVID formats with its token: %s", s)
		}
	}
	// The callee verifies it against the bundles the Workload API serves.
	v, err := identity.VerifyJWTSVID(tok, src, callee.String())
	if err != nil || v.ID != caller {
		t.Fatalf("VerifyJWTSVID = %v, %v", v, err)
	}
	if _, err := identity.VerifyJWTSVID(tok, src, "spiffe://example.org/agent/someone-else"); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("wrong audience: err = %v", err)
	}
	if strings.Contains(fmt.Sprint(err), tok) {
		t.Error("error shows the token")
	}
	// A token of a trust domain the Workload API has no bundle for.
	foreign, err := other.MintJWTSVID(mustID(t, "spiffe://other.org/agent/x"), callee.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.VerifyJWTSVID(foreign.Marshal(), src, callee.String()); err == nil || !strings.Contains(err.Error(), `"other.org"`) {
		t.Errorf("foreign trust domain: err = %v", err)
	}
	// Federated, it verifies.
	wl.Federate(other)
	eventually(t, "the federated bundle", func() bool {
		_, err := identity.VerifyJWTSVID(foreign.Marshal(), src, callee.String())
		return err == nil
	})
	if _, err := agent.JWTSVID(ctx, ""); err == nil {
		t.Error("JWT-SVID without audience")
	}
}
