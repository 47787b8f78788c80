package credentials

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// ErrUnknownProvider is returned for a requirement that names a provider the
// broker does not have.
var ErrUnknownProvider = errors.New("credentials: unknown provider")

// renewBefore is how long before expiry a cached lease is replaced, so a
// tool never starts with a credential about to expire: a tenth of the
// lease's life, at most 30 seconds.
func renewBefore(c *Credential) time.Duration {
	return min(30*time.Second, c.ExpiresAt.Sub(c.IssuedAt)/10)
}

// Broker leases credentials to tasks. It caches one lease per task and per
// (agent, provider, audience, sorted scopes), issues a new one when the cached one is
// near expiry, and revokes every lease of a task when asked. Concurrent
// requests for the same lease cause one issuance. A Broker is safe for
// concurrent use; its zero value is not usable, use NewBroker.
type Broker struct {
	providers map[string]Provider
	now       func() time.Time

	mu    sync.Mutex
	tasks map[string]*taskLeases
}

type taskLeases struct {
	byKey map[string]*leaseSlot
	all   []*Credential // every lease issued to the task, for revocation
}

type leaseSlot struct {
	mu   sync.Mutex
	cred *Credential
}

// BrokerOption configures a Broker.
type BrokerOption func(*Broker)

// WithProvider registers p under name, the name requirements use.
func WithProvider(name string, p Provider) BrokerOption {
	return func(b *Broker) { b.providers[name] = p }
}

// WithClock sets the broker's clock, for tests.
func WithClock(now func() time.Time) BrokerOption {
	return func(b *Broker) { b.now = now }
}

// NewBroker returns a broker with the given providers.
func NewBroker(opts ...BrokerOption) *Broker {
	b := &Broker{providers: map[string]Provider{}, now: time.Now, tasks: map[string]*taskLeases{}}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Lease returns a credential for req, from the task's cache when a valid one
// is there. Errors never contain a credential value.
func (b *Broker) Lease(ctx context.Context, req Request) (*Credential, error) {
	if req.TaskID == "" {
		return nil, errors.New("credentials: lease without a task")
	}
	p, ok := b.providers[req.Provider]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownProvider, req.Provider)
	}
	key := req.key()

	b.mu.Lock()
	tl := b.tasks[req.TaskID]
	if tl == nil {
		tl = &taskLeases{byKey: map[string]*leaseSlot{}}
		b.tasks[req.TaskID] = tl
	}
	slot := tl.byKey[key]
	if slot == nil {
		slot = &leaseSlot{}
		tl.byKey[key] = slot
	}
	b.mu.Unlock()

	slot.mu.Lock()
	defer slot.mu.Unlock()
	if !b.open(req.TaskID, tl) {
		return nil, ErrTaskEnded // revoked while this call waited for the slot
	}
	now := b.now()
	if c := slot.cred; c != nil && fits(c, req, now) {
		return named(c, req.Name), nil
	}
	c, err := p.Issue(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("credentials: provider %q: %w", req.Provider, err)
	}
	if c == nil || c.Secret.IsZero() {
		return nil, fmt.Errorf("credentials: provider %q issued an empty credential", req.Provider)
	}
	if c.Expired(now) {
		return nil, fmt.Errorf("credentials: provider %q issued an expired credential", req.Provider)
	}
	c.Name = req.Name
	c.Provider = req.Provider
	c.Audience = req.Audience
	c.Resources = slices.Clone(req.Resources)
	c.Scopes = slices.Clone(req.Scopes)
	c.TaskID = req.TaskID
	if c.LeaseID == "" {
		c.LeaseID = NewLeaseID()
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = now
	}

	b.mu.Lock()
	if b.tasks[req.TaskID] != tl {
		// The task was revoked while this lease was being issued: revoke
		// the new lease at once rather than let it outlive its task.
		b.mu.Unlock()
		_ = p.Revoke(context.WithoutCancel(ctx), c)
		return nil, ErrTaskEnded
	}
	tl.all = append(tl.all, c)
	b.mu.Unlock()
	slot.cred = c
	return named(c, req.Name), nil
}

// ErrTaskEnded is returned by Lease for a task whose leases were revoked
// while the lease was being made.
var ErrTaskEnded = errors.New("credentials: task ended while leasing")

// open reports whether tl is still the live lease set of the task.
func (b *Broker) open(taskID string, tl *taskLeases) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tasks[taskID] == tl
}

// fits reports whether cached credential c may serve req at now: it is not
// about to expire, it expires no later than req.NotAfter, and it lives no
// longer than req.TTL.
func fits(c *Credential, req Request, now time.Time) bool {
	if c.ExpiresAt.IsZero() {
		return req.NotAfter.IsZero() && req.TTL <= 0
	}
	if !now.Add(renewBefore(c)).Before(c.ExpiresAt) {
		return false
	}
	if !req.NotAfter.IsZero() && c.ExpiresAt.After(req.NotAfter) {
		return false
	}
	if req.TTL > 0 && c.ExpiresAt.Sub(c.IssuedAt) > req.TTL {
		return false
	}
	return true
}

// named returns c as the credential named name: requirements with different
// names may share one lease, and each tool finds it under its own name.
func named(c *Credential, name string) *Credential {
	if c.Name == name {
		return c
	}
	cp := *c
	cp.Name = name
	return &cp
}

// Revocation is the outcome of revoking one lease.
type Revocation struct {
	Credential *Credential
	Err        error
}

// Revoke revokes every lease the task holds and forgets the task. It
// returns each outcome, and an error joining the failures.
func (b *Broker) Revoke(ctx context.Context, taskID string) ([]Revocation, error) {
	b.mu.Lock()
	tl := b.tasks[taskID]
	delete(b.tasks, taskID)
	b.mu.Unlock()
	if tl == nil {
		return nil, nil
	}
	out := make([]Revocation, 0, len(tl.all))
	var errs []error
	for _, c := range tl.all {
		err := b.providers[c.Provider].Revoke(ctx, c)
		if err != nil {
			err = fmt.Errorf("credentials: revoke lease %s: %w", c.LeaseID, err)
			errs = append(errs, err)
		}
		out = append(out, Revocation{Credential: c, Err: err})
	}
	return out, errors.Join(errs...)
}
