// Package credentialstest provides a counting fake credential provider for
// unit tests of agents and of code that uses a credentials.Broker.
package credentialstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/agentguard/go-sdk/credentials"
)

// Provider is a fake credentials.Provider. It issues random tokens with a
// fixed TTL (capped by the request's TTL and NotAfter), remembers every
// request, counts issuances and revocations, and can be told to fail or to
// hold issuances until released. It is safe for concurrent use.
type Provider struct {
	mu         sync.Mutex
	prefix     string
	ttl        time.Duration
	now        func() time.Time
	reqs       []credentials.Request
	issued     map[string]string // lease ID -> token
	revoked    map[string]bool
	issueErrs  []error
	revokeErrs []error
	gate       chan struct{}
	issuing    int
	revokes    int
}

var _ credentials.Provider = (*Provider)(nil)

// Option configures a Provider.
type Option func(*Provider)

// WithTokenPrefix makes every token start with prefix (a canary, say).
func WithTokenPrefix(prefix string) Option { return func(p *Provider) { p.prefix = prefix } }

// WithTTL sets the life of the tokens; the default is credentials.DefaultTTL.
func WithTTL(d time.Duration) Option { return func(p *Provider) { p.ttl = d } }

// WithClock sets the provider's clock.
func WithClock(now func() time.Time) Option { return func(p *Provider) { p.now = now } }

// NewProvider returns a fake provider.
func NewProvider(opts ...Option) *Provider {
	p := &Provider{prefix: "fake-token-", ttl: credentials.DefaultTTL, now: time.Now,
		issued: map[string]string{}, revoked: map[string]bool{}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Issue records req and returns a new token, or the next queued failure.
func (p *Provider) Issue(ctx context.Context, req credentials.Request) (*credentials.Credential, error) {
	p.mu.Lock()
	p.reqs = append(p.reqs, req)
	p.issuing++
	gate := p.gate
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.issuing--
		p.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.issueErrs) > 0 {
		err := p.issueErrs[0]
		p.issueErrs = p.issueErrs[1:]
		return nil, err
	}
	now := p.now()
	ttl := p.ttl
	if req.TTL > 0 {
		ttl = min(ttl, req.TTL)
	}
	exp := now.Add(ttl)
	if !req.NotAfter.IsZero() && req.NotAfter.Before(exp) {
		exp = req.NotAfter
	}
	id := credentials.NewLeaseID()
	tok := p.prefix + randomHex()
	p.issued[id] = tok
	return &credentials.Credential{LeaseID: id, Secret: credentials.NewSecret(tok), IssuedAt: now, ExpiresAt: exp}, nil
}

// Revoke marks the lease revoked, or returns the next queued failure.
func (p *Provider) Revoke(ctx context.Context, c *credentials.Credential) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.revokes++
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(p.revokeErrs) > 0 {
		err := p.revokeErrs[0]
		p.revokeErrs = p.revokeErrs[1:]
		return err
	}
	if _, ok := p.issued[c.LeaseID]; !ok {
		return fmt.Errorf("credentialstest: lease %s was not issued here", c.LeaseID)
	}
	p.revoked[c.LeaseID] = true
	return nil
}

// FailIssue makes the next len(errs) issuances fail with errs, in order.
// Wrap an error with credentials.ErrUnavailable to have the broker retry it.
func (p *Provider) FailIssue(errs ...error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.issueErrs = append(p.issueErrs, errs...)
}

// FailRevoke makes the next len(errs) revocation attempts fail with errs.
func (p *Provider) FailRevoke(errs ...error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.revokeErrs = append(p.revokeErrs, errs...)
}

// Hold makes issuances wait until the returned release is called (or their
// context is done). Release may be called more than once.
func (p *Provider) Hold() (release func()) {
	gate := make(chan struct{})
	p.mu.Lock()
	p.gate = gate
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			if p.gate == gate {
				p.gate = nil
			}
			p.mu.Unlock()
			close(gate)
		})
	}
}

// Issuing returns how many Issue calls are under way.
func (p *Provider) Issuing() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.issuing
}

// Requests returns every request the provider was asked, in order.
func (p *Provider) Requests() []credentials.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reqs)
}

// Issued returns how many credentials the provider issued.
func (p *Provider) Issued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.issued)
}

// RevokeAttempts returns how many times Revoke was called.
func (p *Provider) RevokeAttempts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.revokes
}

// Revoked reports whether the lease was revoked.
func (p *Provider) Revoked(leaseID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.revoked[leaseID]
}

// Active returns the IDs of the leases issued and not revoked, sorted.
func (p *Provider) Active() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for id := range p.issued {
		if !p.revoked[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Tokens returns every token issued, for canary checks.
func (p *Provider) Tokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.issued))
	for _, t := range p.issued {
		out = append(out, t)
	}
	return out
}

// ErrFake is a ready-made failure for FailIssue and FailRevoke.
var ErrFake = errors.New("credentialstest: injected failure")

func randomHex() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
