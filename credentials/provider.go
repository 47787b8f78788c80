package credentials

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Provider issues and revokes credentials. Implementations must be safe for
// concurrent use.
type Provider interface {
	// Issue returns a new credential for req, with Secret and ExpiresAt set.
	// The broker fills in the lease metadata.
	Issue(ctx context.Context, req Request) (*Credential, error)
	// Revoke ends the credential's validity at its issuer.
	Revoke(ctx context.Context, c *Credential) error
}

// ErrRevoked is returned by StaticProvider.Check for a revoked lease.
var ErrRevoked = errors.New("credentials: revoked")

// DefaultTTL is the life of a credential whose requirement sets no TTL.
const DefaultTTL = 5 * time.Minute

// StaticProvider hands out one fixed value for every request. It is for unit
// tests and local development: the value is not scoped to anything, and
// "revoking" it only records the lease as revoked. It counts what it did.
type StaticProvider struct {
	value Secret
	now   func() time.Time

	issued  atomic.Int64
	revoked sync.Map // lease ID -> struct{}
}

var _ Provider = (*StaticProvider)(nil)

// NewStaticProvider returns a provider that issues value.
func NewStaticProvider(value string) *StaticProvider {
	return &StaticProvider{value: NewSecret(value), now: time.Now}
}

// Issue returns the fixed value with an expiry of the requirement's TTL
// (DefaultTTL if unset), capped by req.NotAfter.
func (p *StaticProvider) Issue(ctx context.Context, req Request) (*Credential, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := p.now()
	ttl := req.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	exp := now.Add(ttl)
	if !req.NotAfter.IsZero() && req.NotAfter.Before(exp) {
		exp = req.NotAfter
	}
	p.issued.Add(1)
	return &Credential{Secret: p.value, IssuedAt: now, ExpiresAt: exp}, nil
}

// Revoke records the lease as revoked.
func (p *StaticProvider) Revoke(ctx context.Context, c *Credential) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.revoked.Store(c.LeaseID, struct{}{})
	return nil
}

// Issued returns how many credentials the provider issued.
func (p *StaticProvider) Issued() int { return int(p.issued.Load()) }

// Check returns ErrRevoked if the lease was revoked.
func (p *StaticProvider) Check(leaseID string) error {
	if _, ok := p.revoked.Load(leaseID); ok {
		return ErrRevoked
	}
	return nil
}
