package credentials_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/credentialstest"
)

// TestExpiredReplacedLeaseRevoked: a lease that expired (by its TTL) and
// was replaced is revoked at once, not left valid at an issuer whose
// tokens live longer until the task ends.
func TestExpiredReplacedLeaseRevoked(t *testing.T) {
	clk := newFakeClock()
	p := credentialstest.NewProvider(credentialstest.WithClock(clk.Now), credentialstest.WithTTL(time.Hour))
	// The fake caps its own expiry at req.TTL; an OAuth server does not.
	// Model that by issuing with a long-lived token and the broker's TTL.
	b := credentials.NewBroker(credentials.WithProvider("p", longLived{p}), credentials.WithClock(clk.Now))
	req := credentials.Request{TaskID: "t", Requirement: credentials.Requirement{Name: "n", Provider: "p", TTL: time.Minute}}
	ctx := context.Background()
	for range 5 {
		if _, err := b.Lease(ctx, req); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Minute)
	}
	if n := len(p.Active()); n > 1 {
		t.Errorf("TTL is 1m, but %d tokens are still valid at the issuer mid-task (replaced leases are only revoked at task end)", n)
	}
	_, _ = b.Revoke(ctx, "t")
}

// longLived issues with the provider's own TTL, ignoring req.TTL, as an
// authorization server does.
type longLived struct{ *credentialstest.Provider }

func (l longLived) Issue(ctx context.Context, req credentials.Request) (*credentials.Credential, error) {
	req.TTL = 0
	return l.Provider.Issue(ctx, req)
}

// TestTTLFromBrokerClock: the TTL cap counts from the broker's clock, so
// a credential dated in the future gets no longer lease.
func TestTTLFromBrokerClock(t *testing.T) {
	clk := newFakeClock()
	p := &futureDated{now: clk.Now}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clk.Now))
	c, err := b.Lease(context.Background(), credentials.Request{TaskID: "t", Requirement: credentials.Requirement{Name: "n", Provider: "p", TTL: 5 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if life := c.ExpiresAt.Sub(clk.Now()); life > 5*time.Minute {
		t.Errorf("TTL 5m, lease valid for %v from now", life)
	}
}

type futureDated struct{ now func() time.Time }

func (f *futureDated) Issue(context.Context, credentials.Request) (*credentials.Credential, error) {
	n := f.now()
	return &credentials.Credential{Secret: credentials.NewSecret("tok-xyz"), IssuedAt: n.Add(time.Hour), ExpiresAt: n.Add(2 * time.Hour)}, nil
}
func (f *futureDated) Revoke(context.Context, *credentials.Credential) error { return nil }

// TestLeaseIsACopy: a caller that changes the credential it got changes
// nothing for later calls: an expired lease is not handed out again.
func TestLeaseIsACopy(t *testing.T) {
	clk := newFakeClock()
	p := credentialstest.NewProvider(credentialstest.WithClock(clk.Now), credentialstest.WithTTL(time.Minute))
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clk.Now))
	req := credentials.Request{TaskID: "t", Requirement: credentials.Requirement{Name: "n", Provider: "p"}}
	c, err := b.Lease(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	c.ExpiresAt = c.ExpiresAt.Add(24 * time.Hour) // a tool "extends" its copy
	clk.Advance(time.Hour)
	c2, err := b.Lease(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if c2.LeaseID == c.LeaseID {
		t.Errorf("lease %s, issued for 1m, still handed out an hour later", c2.LeaseID)
	}
	_, _ = b.Revoke(context.Background(), "t")
}
