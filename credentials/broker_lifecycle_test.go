package credentials_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/credentialstest"
)

// Was a review finding: a lease replaced by a refresh (or past its TTL) is not revoked
// until the whole task ends. With an issuer whose tokens live longer than
// the requirement's TTL (any OAuth server: expires_in is its choice), every
// replaced token stays valid at the issuer for the rest of the task.
func TestReviewReplacedLeaseNotRevokedUntilTaskEnd(t *testing.T) {
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

// Was a review finding: the TTL cap is measured from the provider's IssuedAt, not from
// the broker's clock: a provider (or a skewed server clock) dating the
// credential in the future gets a lease far longer than the TTL.
func TestReviewTTLMeasuredFromProviderIssuedAt(t *testing.T) {
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

// Was a review finding: Lease returns the cached *Credential itself (named() copies only
// when the name differs). A tool that writes to it (ExpiresAt, Resources,
// Secret) changes the broker's cache for every later call of the task: here
// an expired lease keeps being handed out.
func TestReviewLeaseAliasesCache(t *testing.T) {
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
