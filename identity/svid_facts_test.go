package identity_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/identity/identitytest"
)

// manualClock is a clock a test moves by hand.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestDevAgentSVIDFacts: the identity a DevAgent gives names the serial and
// expiry of the X.509-SVID that proved it, and a renewed SVID (past half
// its life) gives a new serial for the same ID. What an Identity means
// (String, chain, zero test) does not change.
func TestDevAgentSVIDFacts(t *testing.T) {
	clock := &manualClock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	iss := issuer(t, "example.org", identity.WithDevClock(clock.Now), identity.WithDevTTL(10*time.Minute, 0))
	agent, err := iss.Agent("/agent/a")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := agent.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := agent.SVID()
	if err != nil {
		t.Fatal(err)
	}
	leaf := sv.Certificates[0]
	if want := leaf.SerialNumber.Text(16); first.Serial != want || first.Serial == "" {
		t.Errorf("Serial = %q, want the leaf's %q", first.Serial, want)
	}
	if !first.NotAfter.Equal(leaf.NotAfter) || first.NotAfter.IsZero() {
		t.Errorf("NotAfter = %v, want the leaf's %v", first.NotAfter, leaf.NotAfter)
	}
	if got, want := first.String(), "spiffe://example.org/agent/a"; got != want {
		t.Errorf("String() = %q, want %q: the SVID facts are not part of it", got, want)
	}
	if first.IsZero() || first.Depth() != 0 || first.ChainStrings() != nil {
		t.Errorf("identity = %+v: zero %t, depth %d, chain %v", first, first.IsZero(), first.Depth(), first.ChainStrings())
	}

	// Before half its life, the same SVID.
	clock.Advance(4 * time.Minute)
	same, err := agent.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if same.Serial != first.Serial || !same.NotAfter.Equal(first.NotAfter) {
		t.Errorf("before renewal: serial %q until %v, want %q until %v", same.Serial, same.NotAfter, first.Serial, first.NotAfter)
	}

	// Past half its life, a new one.
	clock.Advance(2 * time.Minute)
	renewed, err := agent.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.ID != first.ID {
		t.Errorf("renewed ID = %s, want %s", renewed.ID, first.ID)
	}
	if renewed.Serial == first.Serial || renewed.Serial == "" {
		t.Errorf("renewed serial = %q, want a new one (was %q)", renewed.Serial, first.Serial)
	}
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed NotAfter = %v, want after %v", renewed.NotAfter, first.NotAfter)
	}
}

// TestSPIFFEAgentSVIDFacts: the identity a SPIFFEAgent gives names the
// serial and expiry of the SVID the Workload API serves, and follows its
// rotation.
func TestSPIFFEAgentSVIDFacts(t *testing.T) {
	iss := issuer(t, "example.org")
	id := mustID(t, "spiffe://example.org/agent/a")
	wl := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: id})
	src := newSource(t, wl.Addr())
	agent, err := src.Agent(identity.ByID(id))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := agent.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := agent.SVID()
	if err != nil {
		t.Fatal(err)
	}
	if want := sv.Certificates[0].SerialNumber.Text(16); first.Serial != want {
		t.Errorf("Serial = %q, want the leaf's %q", first.Serial, want)
	}
	if !first.NotAfter.Equal(sv.Certificates[0].NotAfter) {
		t.Errorf("NotAfter = %v, want %v", first.NotAfter, sv.Certificates[0].NotAfter)
	}
	if first.String() != id.String() {
		t.Errorf("String() = %q, want %q", first.String(), id)
	}
	wl.Rotate()
	var rotated identity.Identity
	eventually(t, "the rotated SVID", func() bool {
		rotated, err = agent.Identity(ctx)
		return err == nil && rotated.Serial != first.Serial
	})
	sv, err = agent.SVID()
	if err != nil {
		t.Fatal(err)
	}
	if rotated.ID != id || rotated.Serial != sv.Certificates[0].SerialNumber.Text(16) {
		t.Errorf("after rotation: %s serial %q, want %s serial %q", rotated.ID, rotated.Serial, id, sv.Certificates[0].SerialNumber.Text(16))
	}
}

// TestSourcesWithoutSVID: sources that hold no SVID give no SVID facts.
func TestSourcesWithoutSVID(t *testing.T) {
	want := identity.MustParse("spiffe://example.org/a")
	for name, src := range map[string]identity.Source{
		"static": identity.NewStaticSource(want),
		"func":   identity.SourceFunc(func(context.Context) (identity.Identity, error) { return want, nil }),
	} {
		got, err := src.Identity(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Serial != "" || !got.NotAfter.IsZero() || got.ID != want.ID {
			t.Errorf("%s: %+v, want %s with no serial or expiry", name, got, want.ID)
		}
	}
}
