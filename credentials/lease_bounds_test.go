package credentials_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
)

// TestSharedLeaseKeepsEachName: two requirements with different names but
// the same provider, audience and scopes share one lease, and each finds it
// under its own name.
func TestSharedLeaseKeepsEachName(t *testing.T) {
	p := &clockProvider{clock: newFakeClock()}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(p.clock.Now))
	r1 := lreq("t", "p", "api", "a", "b")
	r1.Name = "github"
	r2 := lreq("t", "p", "api", "b", "a")
	r2.Name = "gh"
	c1, err1 := b.Lease(context.Background(), r1)
	c2, err2 := b.Lease(context.Background(), r2)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if p.Issued() != 1 || c1.LeaseID != c2.LeaseID {
		t.Fatalf("issued %d, leases %s and %s; want one shared lease", p.Issued(), c1.LeaseID, c2.LeaseID)
	}
	ctx := credentials.NewContext(context.Background(), c1, c2)
	for _, name := range []string{"github", "gh"} {
		if c, ok := credentials.FromContext(ctx, name); !ok || c.Name != name {
			t.Errorf("FromContext(%q) = %v, %v", name, c, ok)
		}
	}
	if revs, _ := b.Revoke(context.Background(), "t"); len(revs) != 1 {
		t.Errorf("revoked %d leases, want the one shared lease", len(revs))
	}
}

// TestCachedLeaseHonoursBounds: a cached lease is reused only if it also
// fits the new request's deadline and TTL.
func TestCachedLeaseHonoursBounds(t *testing.T) {
	clock := newFakeClock()
	p := &clockProvider{clock: clock, ttl: 5 * time.Minute}
	p.issue = func(_ context.Context, req credentials.Request) (*credentials.Credential, error) {
		exp := clock.Now().Add(5 * time.Minute)
		if req.TTL > 0 && clock.Now().Add(req.TTL).Before(exp) {
			exp = clock.Now().Add(req.TTL)
		}
		if !req.NotAfter.IsZero() && req.NotAfter.Before(exp) {
			exp = req.NotAfter
		}
		return &credentials.Credential{Secret: credentials.NewSecret("v"), ExpiresAt: exp}, nil
	}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now))
	long, err := b.Lease(context.Background(), lreq("t", "p", "api"))
	if err != nil {
		t.Fatal(err)
	}
	short := lreq("t", "p", "api")
	short.NotAfter = clock.Now().Add(time.Minute)
	c, err := b.Lease(context.Background(), short)
	if err != nil {
		t.Fatal(err)
	}
	if c.LeaseID == long.LeaseID || c.ExpiresAt.After(short.NotAfter) {
		t.Errorf("deadline %v: got lease %s expiring %v", short.NotAfter, c.LeaseID, c.ExpiresAt)
	}
	ttl := lreq("t", "p", "api")
	ttl.TTL = 40 * time.Second
	c, err = b.Lease(context.Background(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if c.ExpiresAt.Sub(c.IssuedAt) > ttl.TTL {
		t.Errorf("TTL %v: got a lease living %v", ttl.TTL, c.ExpiresAt.Sub(c.IssuedAt))
	}
	// A request the current lease fits reuses it.
	again, err := b.Lease(context.Background(), ttl)
	if err != nil || again.LeaseID != c.LeaseID {
		t.Errorf("fitting request: lease %v, %v; want the cached %s", again, err, c.LeaseID)
	}
	if revs, _ := b.Revoke(context.Background(), "t"); len(revs) != 3 {
		t.Errorf("revoked %d leases, want all 3 ever issued", len(revs))
	}
}

// TestWaiterDoesNotGetRevokedLease: a Lease waiting on another's issuance
// of the same key, when the task is revoked meanwhile, gets no credential.
func TestWaiterDoesNotGetRevokedLease(t *testing.T) {
	clock := newFakeClock()
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	p := &clockProvider{clock: clock}
	p.issue = func(context.Context, credentials.Request) (*credentials.Credential, error) {
		once.Do(func() { close(entered) })
		<-release
		return &credentials.Credential{Secret: credentials.NewSecret("late"), ExpiresAt: clock.Now().Add(time.Hour)}, nil
	}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now))
	type result struct {
		c   *credentials.Credential
		err error
	}
	results := make(chan result, 2)
	lease := func() {
		c, err := b.Lease(context.Background(), lreq("t", "p", "a"))
		results <- result{c, err}
	}
	go lease()
	<-entered
	go lease() // waits on the same slot
	time.Sleep(50 * time.Millisecond)
	if _, err := b.Revoke(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	close(release)
	got := []result{<-results, <-results}
	if p.Issued() != 1 {
		// The second Lease came after Revoke and rightly made a lease of its
		// own; only the first result speaks to this test.
		t.Logf("second Lease was not waiting on the slot (%d issues)", p.Issued())
		if got[0].err != nil && got[1].err != nil {
			t.Fatal("both leases failed")
		}
		return
	}
	for _, r := range got {
		if r.err == nil || r.c != nil {
			t.Errorf("Lease after revocation = %+v, %v; want no credential and an error", r.c, r.err)
		} else if !errors.Is(r.err, credentials.ErrTaskEnded) {
			t.Errorf("err = %v, want ErrTaskEnded", r.err)
		}
	}
}
