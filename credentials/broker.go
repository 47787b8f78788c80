package credentials

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// ErrUnknownProvider is returned for a requirement that names a provider the
// broker does not have.
var ErrUnknownProvider = errors.New("credentials: unknown provider")

// ErrTaskEnded is returned by Lease for a task whose leases were revoked
// while the lease was being made.
var ErrTaskEnded = errors.New("credentials: task ended while leasing")

// renewBefore is how long before expiry a cached lease is replaced, so a
// tool never starts with a credential about to expire: a tenth of the
// lease's life, at most 30 seconds.
func renewBefore(c *Credential) time.Duration {
	return min(30*time.Second, c.ExpiresAt.Sub(c.IssuedAt)/10)
}

// Defaults of a Broker's retries; see WithRetry and WithAttemptTimeout.
const (
	DefaultAttempts       = 3
	DefaultBackoff        = 100 * time.Millisecond
	DefaultAttemptTimeout = 5 * time.Second
	maxBackoff            = 2 * time.Second
)

// Broker leases credentials to tasks. It caches one lease per task and per
// (agent, provider, audience, resources, sorted scopes, TTL), issues a new
// one when the cached one is near expiry, and revokes every lease of a task
// when asked. Concurrent requests for the same lease cause one issuance.
//
// Issuing and revoking are retried on temporary failures (see [Temporary]):
// at most a few attempts, each bounded by an attempt timeout, with
// exponential backoff, and never past the caller's deadline.
//
// A Broker is safe for concurrent use; its zero value is not usable, use
// NewBroker.
type Broker struct {
	providers      map[string]Provider
	now            func() time.Time
	attempts       int
	backoff        time.Duration
	attemptTimeout time.Duration
	observers      []Observer

	mu    sync.Mutex
	tasks map[string]*taskLeases
}

type taskLeases struct {
	byKey map[string]*leaseSlot
	all   []*Credential // every lease issued to the task, for revocation
}

// leaseSlot holds the lease of one cache key and the issuance under way.
type leaseSlot struct {
	mu     sync.Mutex
	cred   *Credential
	flight *flight
}

// flight is one issuance that concurrent callers wait for.
type flight struct {
	done chan struct{}
	cred *Credential
	err  error
	// abandoned is set when the issuance failed because of the limits of
	// the caller that made it (it went away, or its deadline cut the
	// retries short); a waiter then tries itself.
	abandoned bool
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

// WithRetry sets how many attempts an issuance or revocation gets (at least
// one) and the backoff before the second; each later backoff doubles, up to
// two seconds, with jitter. The defaults are DefaultAttempts and
// DefaultBackoff. Only temporary failures are retried.
func WithRetry(attempts int, backoff time.Duration) BrokerOption {
	return func(b *Broker) { b.attempts, b.backoff = max(attempts, 1), max(backoff, 0) }
}

// WithAttemptTimeout bounds each attempt to issue or revoke; the caller's
// deadline bounds them all. The default is DefaultAttemptTimeout.
func WithAttemptTimeout(d time.Duration) BrokerOption {
	return func(b *Broker) {
		if d > 0 {
			b.attemptTimeout = d
		}
	}
}

// WithObserver adds an observer that sees every event of the broker: each
// lease issued, refreshed or revoked, and each failure. See also
// [WithObserverContext], for the events of one call.
func WithObserver(o Observer) BrokerOption {
	return func(b *Broker) {
		if o != nil {
			b.observers = append(b.observers, o)
		}
	}
}

// NewBroker returns a broker with the given providers.
func NewBroker(opts ...BrokerOption) *Broker {
	b := &Broker{
		providers:      map[string]Provider{},
		now:            time.Now,
		attempts:       DefaultAttempts,
		backoff:        DefaultBackoff,
		attemptTimeout: DefaultAttemptTimeout,
		tasks:          map[string]*taskLeases{},
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Lease returns a credential for req, from the task's cache when a valid one
// is there; it never returns an expired credential, nor one that would
// expire after req.NotAfter. Errors never contain a credential value.
func (b *Broker) Lease(ctx context.Context, req Request) (*Credential, error) {
	if req.TaskID == "" {
		return nil, errors.New("credentials: lease without a task")
	}
	p, ok := b.providers[req.Provider]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownProvider, req.Provider)
	}
	tl, slot := b.slot(req)
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		if !req.NotAfter.IsZero() && !b.now().Before(req.NotAfter) {
			return nil, errors.New("credentials: the task's deadline has passed")
		}
		slot.mu.Lock()
		if !b.open(req.taskKey(), tl) {
			slot.mu.Unlock()
			return nil, ErrTaskEnded // revoked while this call waited
		}
		if c := slot.cred; c != nil && fits(c, req, b.now()) {
			slot.mu.Unlock()
			return named(c, req.Name), nil
		}
		if f := slot.flight; f != nil {
			slot.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, fmt.Errorf("credentials: %w", ctx.Err())
			}
			if f.abandoned {
				continue // its caller left; try again, perhaps as the leader
			}
			if f.err != nil {
				return nil, f.err
			}
			if !b.open(req.taskKey(), tl) {
				return nil, ErrTaskEnded // its lease was revoked with the task
			}
			if fits(f.cred, req, b.now()) {
				return named(f.cred, req.Name), nil
			}
			continue
		}
		f := &flight{done: make(chan struct{})}
		slot.flight = f
		old := slot.cred
		slot.mu.Unlock()
		return b.lead(ctx, p, req, tl, slot, f, old)
	}
}

// slot returns the task's lease set and the slot of req's cache key.
func (b *Broker) slot(req Request) (*taskLeases, *leaseSlot) {
	key := req.key()
	b.mu.Lock()
	defer b.mu.Unlock()
	tl := b.tasks[req.taskKey()]
	if tl == nil {
		tl = &taskLeases{byKey: map[string]*leaseSlot{}}
		b.tasks[req.taskKey()] = tl
	}
	slot := tl.byKey[key]
	if slot == nil {
		slot = &leaseSlot{}
		tl.byKey[key] = slot
	}
	return tl, slot
}

// lead issues the lease of slot for every caller waiting on f, then
// publishes the outcome. old is the lease it replaces, if any.
func (b *Broker) lead(ctx context.Context, p Provider, req Request, tl *taskLeases, slot *leaseSlot, f *flight, old *Credential) (*Credential, error) {
	var (
		issued    *Credential // the lease as cached; callers get copies
		err       error
		published bool
	)
	// publish hands the outcome to the waiters and, on success, caches it.
	publish := func() {
		published = true
		slot.mu.Lock()
		slot.flight = nil
		if err == nil {
			slot.cred = issued
		}
		f.cred, f.err = issued, err
		var cut errCut
		f.abandoned = err != nil && (ctx.Err() != nil || errors.As(err, &cut))
		slot.mu.Unlock()
		close(f.done)
	}
	defer func() {
		if r := recover(); r != nil && !published {
			// A panicking provider must not leave the waiters hanging.
			issued, err = nil, fmt.Errorf("credentials: provider %q panicked", req.Provider)
			publish()
			panic(r)
		} else if r != nil {
			panic(r)
		}
		if !published {
			publish()
		}
	}()

	c, attempts, ierr := b.issue(ctx, p, req)
	if ierr != nil {
		err = ierr
		b.emit(ctx, failedEvent(req, attempts, err))
		return nil, err
	}
	b.mu.Lock()
	if b.tasks[req.taskKey()] != tl {
		// The task was revoked while this lease was being issued: revoke
		// the new lease at once rather than let it outlive its task.
		b.mu.Unlock()
		err = ErrTaskEnded
		publish()
		rctx, cancel := detached(ctx, time.Duration(b.attempts)*b.attemptTimeout)
		defer cancel()
		b.revokeOne(rctx, p, c)
		return nil, err
	}
	tl.all = append(tl.all, c)
	b.mu.Unlock()

	e := leaseEvent(EventIssued, c)
	e.Attempts = attempts
	if old != nil {
		e.Kind, e.Replaces = EventRefreshed, old.LeaseID
	}
	b.emit(ctx, e)
	issued = c
	publish()
	if old != nil && old.Expired(b.now()) {
		b.retire(ctx, p, tl, old)
	}
	if !b.open(req.taskKey(), tl) {
		return nil, ErrTaskEnded // revoked with the task just now
	}
	return named(c, req.Name), nil
}

// retire revokes old, a lease that has been replaced and has expired (by
// the broker's reckoning: its issuer may have granted it longer), rather
// than leave it valid at its issuer until the task ends. A lease replaced
// before it expired may still be in use by a call, and is revoked with the
// task. If revoking fails, the task's end tries again.
func (b *Broker) retire(ctx context.Context, p Provider, tl *taskLeases, old *Credential) {
	rctx, cancel := detached(ctx, b.attemptTimeout)
	defer cancel()
	if r := b.revokeOneAttempts(rctx, p, old, 1); r.Err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	tl.all = slices.DeleteFunc(tl.all, func(c *Credential) bool { return c == old })
}

// issue asks p for a credential with retries, and checks and completes what
// it returns.
func (b *Broker) issue(ctx context.Context, p Provider, req Request) (*Credential, int, error) {
	var c *Credential
	attempts, cut, err := b.retry(ctx, func(actx context.Context) error {
		var err error
		c, err = p.Issue(actx, req)
		return err
	})
	if err != nil {
		// An issuer may quote what it was sent, the user's token included.
		err = ScrubError(err, &Credential{Secret: req.UserToken})
		err = fmt.Errorf("credentials: provider %q: %w", req.Provider, err)
		if cut {
			err = errCut{err}
		}
		return nil, attempts, err
	}
	now := b.now()
	if c == nil || c.Secret.IsZero() {
		return nil, attempts, fmt.Errorf("credentials: provider %q issued an empty credential", req.Provider)
	}
	if c.Expired(now) {
		return nil, attempts, fmt.Errorf("credentials: provider %q issued an expired credential", req.Provider)
	}
	c.Name = req.Name
	c.Provider = req.Provider
	c.Audience = req.Audience
	c.Resources = slices.Clone(req.Resources)
	c.TaskID = req.TaskID
	c.Agent = req.Agent
	if c.LeaseID == "" {
		c.LeaseID = NewLeaseID()
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = now
	}
	if len(c.Scopes) == 0 {
		c.Scopes = sortedSet(req.Scopes)
	} else if wider := excess(c.Scopes, req.Scopes); len(wider) > 0 {
		// Never wider than the requirement: give it back.
		return nil, attempts, b.giveBack(ctx, p, c,
			fmt.Errorf("credentials: provider %q granted scopes %q beyond those required", req.Provider, wider))
	}
	// The lease never outlives the task nor the requirement's TTL, whatever
	// the provider granted: the broker stops handing it out then.
	if !req.NotAfter.IsZero() && (c.ExpiresAt.IsZero() || c.ExpiresAt.After(req.NotAfter)) {
		c.ExpiresAt = req.NotAfter
	}
	if req.TTL > 0 {
		// From the earlier of the provider's IssuedAt and the broker's
		// clock: a credential dated in the future gets no longer.
		start := c.IssuedAt
		if now.Before(start) {
			start = now
		}
		if c.ExpiresAt.IsZero() || c.ExpiresAt.After(start.Add(req.TTL)) {
			c.ExpiresAt = start.Add(req.TTL)
		}
	}
	if c.Expired(b.now()) {
		// The task's deadline passed while it was issued, or the provider
		// dated it so far back that its TTL is over: give it back.
		return nil, attempts, b.giveBack(ctx, p, c,
			fmt.Errorf("credentials: provider %q issued a credential that expired before it could be used", req.Provider))
	}
	return c, attempts, nil
}

// errCut marks an issuance whose retries the caller's context cut short:
// it was done, or its deadline left no time for another attempt.
type errCut struct{ error }

func (e errCut) Unwrap() error { return e.error }

// giveBack revokes c, which will not be used, and returns why, with the
// revocation's failure if it failed. The revocation is reported to the
// observers like any other. It does not stop because ctx is done.
func (b *Broker) giveBack(ctx context.Context, p Provider, c *Credential, why error) error {
	rctx, cancel := detached(ctx, time.Duration(b.attempts)*b.attemptTimeout)
	defer cancel()
	if r := b.revokeOne(rctx, p, c); r.Err != nil {
		return errors.Join(why, fmt.Errorf("credentials: revoking it failed: %w", r.Err))
	}
	return why
}

// retry runs op until it succeeds, fails for good, runs out of attempts, or
// the next attempt could not start before ctx's deadline. Each attempt gets
// its own timeout. It returns how many attempts ran, and whether ctx cut
// the retries of a temporary failure short.
func (b *Broker) retry(ctx context.Context, op func(context.Context) error) (attempts int, cut bool, err error) {
	return b.retryN(ctx, b.attempts, op)
}

// retryN is retry with at most max attempts.
func (b *Broker) retryN(ctx context.Context, max int, op func(context.Context) error) (attempts int, cut bool, err error) {
	backoff := b.backoff
	for attempt := 1; ; attempt++ {
		err := b.attempt(ctx, op)
		if err == nil {
			return attempt, false, nil
		}
		if !Temporary(err) || attempt >= max {
			return attempt, false, err
		}
		if ctx.Err() != nil {
			return attempt, true, err
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if d, ok := ctx.Deadline(); ok && time.Until(d) <= wait {
			return attempt, true, err // no time left for another attempt
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, true, err
		case <-t.C:
		}
		if ctx.Err() != nil {
			return attempt, true, err
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// attempt runs op once, bounded by the attempt timeout. A temporary
// failure, or one of an attempt that timed out, wraps ErrUnavailable.
func (b *Broker) attempt(ctx context.Context, op func(context.Context) error) error {
	actx, cancel := context.WithTimeout(ctx, b.attemptTimeout)
	defer cancel()
	err := op(actx)
	switch {
	case err == nil, errors.Is(err, ErrUnavailable):
	case actx.Err() != nil && ctx.Err() == nil:
		err = fmt.Errorf("%w: attempt timed out after %s: %w", ErrUnavailable, b.attemptTimeout, err)
	case Temporary(err):
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// excess returns the scopes of granted that are not in required.
func excess(granted, required []string) []string {
	var out []string
	for _, g := range granted {
		if !slices.Contains(required, g) {
			out = append(out, g)
		}
	}
	return out
}

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

// named returns a copy of c as the credential named name: requirements
// with different names may share one lease, and each tool finds it under
// its own name. The cached lease itself is never handed out, so nothing a
// caller does to its copy changes what later calls get.
func named(c *Credential, name string) *Credential {
	cp := c.clone()
	cp.Name = name
	return cp
}

// Revocation is the outcome of revoking one lease.
type Revocation struct {
	Credential *Credential
	// Attempts is how many times revocation was tried.
	Attempts int
	// NotRevocable is set when the provider cannot revoke the credential
	// (ErrNotRevocable): it stays valid at its issuer until it expires.
	NotRevocable bool
	Err          error
}

// maxConcurrentRevocations bounds how many revocations of one task run at
// once, so that ending a task does not flood its issuer.
const maxConcurrentRevocations = 8

// Revoke revokes every lease the task holds (taskKey is the requests'
// TaskKey, or their TaskID when they set none), concurrently, each with
// bounded retries, and forgets the task. It returns each outcome, and an
// error joining the failures. Revocation stops when ctx is done.
func (b *Broker) Revoke(ctx context.Context, taskKey string) ([]Revocation, error) {
	b.mu.Lock()
	tl := b.tasks[taskKey]
	delete(b.tasks, taskKey)
	b.mu.Unlock()
	if tl == nil {
		return nil, nil
	}
	out := make([]Revocation, len(tl.all))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxConcurrentRevocations)
	for i, c := range tl.all {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i] = b.revokeOne(ctx, b.providers[c.Provider], c)
		})
	}
	wg.Wait()
	var errs []error
	for _, r := range out {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return out, errors.Join(errs...)
}

// revokeOne revokes c at p with retries, and reports the outcome to the
// observers.
func (b *Broker) revokeOne(ctx context.Context, p Provider, c *Credential) Revocation {
	return b.revokeOneAttempts(ctx, p, c, b.attempts)
}

// revokeOneAttempts is revokeOne with at most max attempts.
func (b *Broker) revokeOneAttempts(ctx context.Context, p Provider, c *Credential, max int) Revocation {
	attempts, _, err := b.retryN(ctx, max, func(actx context.Context) error { return p.Revoke(actx, c) })
	r := Revocation{Credential: c, Attempts: attempts}
	switch {
	case errors.Is(err, ErrNotRevocable):
		r.NotRevocable = true
	case err != nil:
		r.Err = ScrubError(fmt.Errorf("credentials: revoke lease %s after %d attempt(s): %w", c.LeaseID, attempts, err), c)
	}
	b.emit(ctx, r.Event())
	return r
}

// Event describes the revocation as a lease event: EventRevoked, or
// EventRevokeFailed with its error. Time is left for the caller to set.
func (r Revocation) Event() Event {
	e := leaseEvent(EventRevoked, r.Credential)
	e.Attempts, e.NotRevocable = r.Attempts, r.NotRevocable
	if r.Err != nil {
		e.Kind, e.Err = EventRevokeFailed, ScrubError(r.Err, r.Credential)
	}
	return e
}

// detached returns a context for revoking credentials that must be revoked
// whatever becomes of ctx: not cancelled with it, bounded by d.
func detached(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}
