package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/credentialstest"
)

// This file holds the helpers shared by broker_{flight,retry,revoke,events}_test.go,
// and the tests of single-flight, waiters, panics and refresh ahead of expiry.

// canary starts every token the tests' fake providers issue: no error text
// nor event may ever contain it.
const canary = "CANARY-tok-5e1f-"

// guard bounds every wait of these tests, so that a bug shows as a failure
// rather than a hung test binary. It is never waited out on success.
const guard = 10 * time.Second

// signalCtx is a context that closes Called the first time its Done method
// is called. The broker calls Done on a caller's context only where that
// caller blocks: a waiter selecting on another caller's issuance, or a
// leader deriving its attempt's context. It lets a test know, without
// sleeping, that a Lease call has joined a flight.
type signalCtx struct {
	context.Context
	once   sync.Once
	Called chan struct{}
}

func newSignalCtx(parent context.Context) *signalCtx {
	return &signalCtx{Context: parent, Called: make(chan struct{})}
}

func (c *signalCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.Called) })
	return c.Context.Done()
}

// entering wraps a provider and tells, on Entered, each time Issue is
// called (before the wrapped provider runs).
type entering struct {
	credentials.Provider
	Entered chan credentials.Request
}

func newEntering(p credentials.Provider) *entering {
	return &entering{Provider: p, Entered: make(chan credentials.Request, 1024)}
}

func (p *entering) Issue(ctx context.Context, req credentials.Request) (*credentials.Credential, error) {
	p.Entered <- req
	return p.Provider.Issue(ctx, req)
}

// eventLog records the events an observer sees.
type eventLog struct {
	mu     sync.Mutex
	events []credentials.Event
}

func (l *eventLog) Observe(_ context.Context, e credentials.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) All() []credentials.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func (l *eventLog) Kinds() []credentials.EventKind {
	var out []credentials.EventKind
	for _, e := range l.All() {
		out = append(out, e.Kind)
	}
	return out
}

// Of returns the events of kind k.
func (l *eventLog) Of(k credentials.EventKind) []credentials.Event {
	var out []credentials.Event
	for _, e := range l.All() {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// noCanary fails the test if any of texts contains the canary or one of
// the given token values.
func noCanary(t *testing.T, what string, texts []string, tokens ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, canary) {
			t.Errorf("%s leaks a token (canary %q): %s", what, canary, s)
		}
		for _, tok := range tokens {
			if tok != "" && strings.Contains(s, tok) {
				t.Errorf("%s leaks token %q: %s", what, tok, s)
			}
		}
	}
}

// errTexts returns the forms in which err is usually printed.
func errTexts(err error) []string {
	if err == nil {
		return nil
	}
	return []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), fmt.Sprintf("%q", err)}
}

// eventTexts returns the forms in which an event is usually printed.
func eventTexts(e credentials.Event) []string {
	out := []string{fmt.Sprintf("%v", e), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)}
	return append(out, errTexts(e.Err)...)
}

// leaseResult is the outcome of a Lease run in a goroutine.
type leaseResult struct {
	i   int
	c   *credentials.Credential
	err error
}

// goLease runs b.Lease(ctx, req) in a goroutine and returns its outcome's channel.
func goLease(b *credentials.Broker, ctx context.Context, req credentials.Request) <-chan leaseResult {
	ch := make(chan leaseResult, 1)
	go func() {
		c, err := b.Lease(ctx, req)
		ch <- leaseResult{c: c, err: err}
	}()
	return ch
}

// recv waits (bounded by guard) for a value on ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitClosed waits (bounded by guard) until ch is closed.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitUntil polls cond, yielding the processor in between, until it holds
// (bounded by guard). It is for state that offers no channel to wait on,
// such as credentialstest.Provider.Issuing.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		runtime.Gosched()
	}
}

// leaseReq returns a request of task for provider "p" with the given audience
// and scopes.
func leaseReq(task, audience string, scopes ...string) credentials.Request {
	return credentials.Request{
		Requirement: credentials.Requirement{Name: "tool-cred", Provider: "p", Audience: audience,
			Resources: []string{"https://api.example.com/"}, Scopes: scopes},
		TaskID: task,
		Agent:  "spiffe://example.org/agent/main",
	}
}

// fakeBroker returns a fake provider with canary tokens and the given TTL,
// and a broker using it under the name "p", both on clock.
func fakeBroker(clock *fakeClock, ttl time.Duration, opts ...credentials.BrokerOption) (*credentialstest.Provider, *credentials.Broker) {
	p := credentialstest.NewProvider(credentialstest.WithTokenPrefix(canary), credentialstest.WithTTL(ttl),
		credentialstest.WithClock(clock.Now))
	opts = append([]credentials.BrokerOption{credentials.WithProvider("p", p), credentials.WithClock(clock.Now)}, opts...)
	return p, credentials.NewBroker(opts...)
}

// TestFlightManyCallersOneIssue: 200 concurrent Lease calls for the same task
// and key, all of them waiting on the issuance at once, cause exactly one
// Issue and all get the same lease, each under its own name.
func TestFlightManyCallersOneIssue(t *testing.T) {
	clock := newFakeClock()
	fake, _ := fakeBroker(clock, time.Hour)
	p := newEntering(fake)
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now))
	release := fake.Hold()
	defer release()

	const n = 200
	ctxs := make([]*signalCtx, n)
	results := make(chan leaseResult, n)
	for i := range n {
		ctxs[i] = newSignalCtx(context.Background())
		r := leaseReq("task", "api", "read", "write", "admin")
		if i%2 == 1 {
			r.Scopes = []string{"admin", "write", "read", "read"} // same set, another order
			r.Resources = slices.Clone(r.Resources)
		}
		r.Name = fmt.Sprintf("name-%d", i%7) // the name is not part of the key
		go func() {
			c, err := b.Lease(ctxs[i], r)
			results <- leaseResult{i: i, c: c, err: err}
		}()
	}
	// Every caller is now blocked on the one issuance: the leader in Issue,
	// held, and the others waiting on its flight.
	for i, c := range ctxs {
		waitClosed(t, c.Called, fmt.Sprintf("caller %d to block", i))
	}
	recv(t, p.Entered, "the leader's Issue")
	// (entering tells before the fake counts the call: wait for the count.)
	waitUntil(t, "the leader's Issue is held", func() bool { return fake.Issuing() >= 1 })
	if got := fake.Issuing(); got != 1 {
		t.Fatalf("%d Issue calls under way with %d callers blocked, want 1", got, n)
	}
	release()

	var lease string
	for range n {
		r := recv(t, results, "a Lease to return")
		if r.err != nil {
			t.Fatalf("Lease %d: %v", r.i, r.err)
		}
		if lease == "" {
			lease = r.c.LeaseID
		}
		if r.c.LeaseID != lease {
			t.Errorf("Lease %d got lease %s, want the shared %s", r.i, r.c.LeaseID, lease)
		}
		if want := fmt.Sprintf("name-%d", r.i%7); r.c.Name != want {
			t.Errorf("Lease %d got name %q, want %q", r.i, r.c.Name, want)
		}
		if !r.c.ExpiresAt.After(clock.Now()) {
			t.Errorf("Lease %d got a credential expiring at %v, now %v", r.i, r.c.ExpiresAt, clock.Now())
		}
	}
	if got := len(fake.Requests()); got != 1 {
		t.Errorf("provider asked %d times, want 1", got)
	}
	if got := fake.Issued(); got != 1 {
		t.Errorf("provider issued %d, want 1", got)
	}
	if revs, err := b.Revoke(context.Background(), "task"); err != nil || len(revs) != 1 {
		t.Errorf("Revoke = %d revocations, %v; want the one lease", len(revs), err)
	}
}

// keyVariants are requests that each differ from leaseReq("t", "api", "read",
// "write") in one part of the cache key, or (shared) in none.
func keyVariants() []struct {
	name   string
	mod    func(*credentials.Request)
	shared bool
} {
	return []struct {
		name   string
		mod    func(*credentials.Request)
		shared bool
	}{
		{"identical", func(*credentials.Request) {}, true},
		{"other name", func(r *credentials.Request) { r.Name = "other" }, true},
		{"scopes in another order", func(r *credentials.Request) { r.Scopes = []string{"write", "read"} }, true},
		{"scopes repeated", func(r *credentials.Request) { r.Scopes = []string{"write", "read", "write"} }, true},
		{"resources in another order", func(r *credentials.Request) {
			r.Resources = []string{"https://b.example.com/", "https://a.example.com/"}
		}, true},
		{"later NotAfter", func(r *credentials.Request) { r.NotAfter = r.NotAfter.Add(time.Hour) }, true},
		{"other user token", func(r *credentials.Request) { r.UserToken = credentials.NewSecret("user-2") }, true},
		{"other audience", func(r *credentials.Request) { r.Audience = "uploads" }, false},
		{"no audience", func(r *credentials.Request) { r.Audience = "" }, false},
		{"other resources", func(r *credentials.Request) { r.Resources = []string{"https://a.example.com/"} }, false},
		{"more resources", func(r *credentials.Request) {
			r.Resources = append(r.Resources, "https://c.example.com/")
		}, false},
		{"no resources", func(r *credentials.Request) { r.Resources = nil }, false},
		{"fewer scopes", func(r *credentials.Request) { r.Scopes = []string{"read"} }, false},
		{"more scopes", func(r *credentials.Request) { r.Scopes = []string{"read", "write", "admin"} }, false},
		{"other TTL", func(r *credentials.Request) { r.TTL = 20 * time.Minute }, false},
		{"other agent", func(r *credentials.Request) { r.Agent = "spiffe://example.org/agent/sub" }, false},
		{"no agent", func(r *credentials.Request) { r.Agent = "" }, false},
		{"other task", func(r *credentials.Request) { r.TaskID = "t2" }, false},
		{"other provider", func(r *credentials.Request) { r.Provider = "p2" }, false},
	}
}

func keyBase(clock *fakeClock) credentials.Request {
	r := leaseReq("t", "api", "read", "write")
	r.Resources = []string{"https://a.example.com/", "https://b.example.com/"}
	r.TTL = 30 * time.Minute
	r.NotAfter = clock.Now().Add(2 * time.Hour)
	r.UserToken = credentials.NewSecret("user-1")
	return r
}

// TestFlightCacheKey: requests that differ in agent, provider, audience,
// resources (as a set), scopes (as a set), TTL or task get different leases;
// those that differ only in name, order, NotAfter or user token share one.
func TestFlightCacheKey(t *testing.T) {
	for _, tc := range keyVariants() {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			p, _ := fakeBroker(clock, time.Hour)
			p2, _ := fakeBroker(clock, time.Hour)
			b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithProvider("p2", p2), credentials.WithClock(clock.Now))
			base := keyBase(clock)
			other := keyBase(clock)
			tc.mod(&other)
			c1, err := b.Lease(context.Background(), base)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := b.Lease(context.Background(), other)
			if err != nil {
				t.Fatal(err)
			}
			if got := c1.LeaseID == c2.LeaseID; got != tc.shared {
				t.Errorf("shared = %v, want %v", got, tc.shared)
			}
			want := 2
			if tc.shared {
				want = 1
			}
			if got := p.Issued() + p2.Issued(); got != want {
				t.Errorf("issued %d leases, want %d", got, want)
			}
			if c2.TaskID != other.TaskID || c2.Agent != other.Agent || c2.Audience != other.Audience || c2.Provider != other.Provider {
				t.Errorf("lease %+v is not for request %+v", c2, other)
			}
		})
	}
}

// TestFlightManyKeysConcurrently: callers of many keys at once, every one of
// them blocked on an issuance, cause one issuance per key: callers of one key
// share it, and no two keys (nor two tasks) share a lease.
func TestFlightManyKeysConcurrently(t *testing.T) {
	clock := newFakeClock()
	fake, _ := fakeBroker(clock, time.Hour)
	fake2, _ := fakeBroker(clock, time.Hour)
	p, p2 := newEntering(fake), newEntering(fake2)
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithProvider("p2", p2), credentials.WithClock(clock.Now))
	release, release2 := fake.Hold(), fake2.Hold()
	defer release()
	defer release2()

	// One key per variant that does not share, plus the base, and the same
	// keys again for ten more tasks.
	var keys []credentials.Request
	for task := range 11 {
		base := keyBase(clock)
		base.TaskID = fmt.Sprintf("task-%d", task)
		keys = append(keys, base)
		for _, v := range keyVariants() {
			if v.shared || v.name == "other task" {
				continue
			}
			r := keyBase(clock)
			v.mod(&r)
			r.TaskID = base.TaskID
			keys = append(keys, r)
		}
	}
	const perKey = 6
	var ctxs []*signalCtx
	results := make(chan leaseResult, len(keys)*perKey)
	for k, r := range keys {
		for j := range perKey {
			ctx := newSignalCtx(context.Background())
			ctxs = append(ctxs, ctx)
			r := r
			if j%2 == 1 {
				r.Scopes = slices.Clone(r.Scopes)
				slices.Reverse(r.Scopes)
			}
			go func() {
				c, err := b.Lease(ctx, r)
				results <- leaseResult{i: k, c: c, err: err}
			}()
		}
	}
	for _, c := range ctxs {
		waitClosed(t, c.Called, "every caller to block")
	}
	for range keys {
		select {
		case <-p.Entered:
		case <-p2.Entered:
		case <-time.After(guard):
			t.Fatal("timed out waiting for one issuance per key")
		}
	}
	waitUntil(t, "every key's issuance is held", func() bool { return fake.Issuing()+fake2.Issuing() >= len(keys) })
	if got := fake.Issuing() + fake2.Issuing(); got != len(keys) {
		t.Fatalf("%d issuances under way, want one per key (%d)", got, len(keys))
	}
	release()
	release2()

	byKey := map[int]string{}
	owner := map[string]int{}
	for range len(keys) * perKey {
		r := recv(t, results, "a Lease to return")
		if r.err != nil {
			t.Fatalf("Lease of key %d: %v", r.i, r.err)
		}
		want := keys[r.i]
		if r.c.TaskID != want.TaskID || r.c.Agent != want.Agent || r.c.Audience != want.Audience {
			t.Errorf("key %d got lease for task %q agent %q audience %q", r.i, r.c.TaskID, r.c.Agent, r.c.Audience)
		}
		if id, ok := byKey[r.i]; ok && id != r.c.LeaseID {
			t.Errorf("key %d got leases %s and %s", r.i, id, r.c.LeaseID)
		}
		byKey[r.i] = r.c.LeaseID
		if k, ok := owner[r.c.LeaseID]; ok && k != r.i {
			t.Errorf("lease %s shared by keys %d and %d", r.c.LeaseID, k, r.i)
		}
		owner[r.c.LeaseID] = r.i
	}
	if got := fake.Issued() + fake2.Issued(); got != len(keys) {
		t.Errorf("issued %d leases, want %d", got, len(keys))
	}
	if got := len(fake.Requests()) + len(fake2.Requests()); got != len(keys) {
		t.Errorf("providers asked %d times, want %d", got, len(keys))
	}
}

// TestFlightWaiterCancelled: a caller waiting on another's issuance whose own
// context is cancelled returns at once with context.Canceled; the leader
// carries on and gets the lease, and it is cached for later callers.
func TestFlightWaiterCancelled(t *testing.T) {
	clock := newFakeClock()
	fake, _ := fakeBroker(clock, time.Hour)
	p := newEntering(fake)
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now))
	release := fake.Hold()
	defer release()

	leader := goLease(b, context.Background(), leaseReq("t", "api", "read"))
	recv(t, p.Entered, "the leader's Issue")
	waitUntil(t, "the leader's Issue is held", func() bool { return fake.Issuing() == 1 })
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sctx := newSignalCtx(wctx)
	waiter := goLease(b, sctx, leaseReq("t", "api", "read"))
	waitClosed(t, sctx.Called, "the waiter to block")
	cancel()

	w := recv(t, waiter, "the cancelled waiter") // the leader is still held
	if w.err == nil || w.c != nil {
		t.Fatalf("cancelled waiter = %v, %v; want an error", w.c, w.err)
	}
	if !errors.Is(w.err, context.Canceled) {
		t.Errorf("waiter error %v does not wrap context.Canceled", w.err)
	}
	if got := fake.Issuing(); got != 1 {
		t.Errorf("leader's issuance under way: %d, want 1", got)
	}
	select {
	case r := <-leader:
		t.Fatalf("leader returned while held: %v, %v", r.c, r.err)
	default:
	}
	release()
	l := recv(t, leader, "the leader")
	if l.err != nil {
		t.Fatalf("leader: %v", l.err)
	}
	again, err := b.Lease(context.Background(), leaseReq("t", "api", "read"))
	if err != nil || again.LeaseID != l.c.LeaseID {
		t.Errorf("Lease after = %v, %v; want the cached %s", again, err, l.c.LeaseID)
	}
	if got := len(fake.Requests()); got != 1 {
		t.Errorf("provider asked %d times, want 1", got)
	}
}

// TestFlightLeaderAbandoned: when the caller doing an issuance goes away
// (cancelled, or past its deadline), a waiter with a live context does not
// get the leader's context error: it issues the lease itself.
func TestFlightLeaderAbandoned(t *testing.T) {
	for _, mode := range []string{"cancelled", "deadline"} {
		t.Run(mode, func(t *testing.T) {
			clock := newFakeClock()
			fake, _ := fakeBroker(clock, time.Hour)
			p := newEntering(fake)
			broker, waiterLog := &eventLog{}, &eventLog{}
			b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now),
				credentials.WithObserver(broker.Observe))
			release := fake.Hold()
			defer release()

			var lctx context.Context
			var cancel context.CancelFunc
			if mode == "cancelled" {
				lctx, cancel = context.WithCancel(context.Background())
			} else {
				// Long enough for the waiter to join; the leader's Issue is
				// held until the deadline passes.
				lctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
			}
			defer cancel()
			leader := goLease(b, lctx, leaseReq("t", "api", "read"))
			recv(t, p.Entered, "the leader's Issue")
			sctx := newSignalCtx(credentials.WithObserverContext(context.Background(), waiterLog.Observe))
			waiter := goLease(b, sctx, leaseReq("t", "api", "read"))
			waitClosed(t, sctx.Called, "the waiter to block")
			if mode == "cancelled" {
				cancel()
			}
			l := recv(t, leader, "the abandoned leader")
			if l.err == nil {
				t.Fatalf("leader succeeded: %v", l.c)
			}
			want := context.Canceled
			if mode == "deadline" {
				want = context.DeadlineExceeded
			}
			if !errors.Is(l.err, want) {
				t.Errorf("leader error %v does not wrap %v", l.err, want)
			}
			// Only now let issuances through: the waiter's own.
			release()
			w := recv(t, waiter, "the waiter")
			if w.err != nil {
				t.Fatalf("waiter got %v, want a credential", w.err)
			}
			if w.c == nil || w.c.Secret.IsZero() || !strings.HasPrefix(w.c.Secret.Reveal(), canary) {
				t.Fatalf("waiter got credential %v", w.c)
			}
			if got := len(fake.Requests()); got != 2 {
				t.Errorf("provider asked %d times, want 2 (leader, then waiter)", got)
			}
			if got := fake.Issued(); got != 1 {
				t.Errorf("issued %d, want 1", got)
			}
			if got := waiterLog.Kinds(); !slices.Equal(got, []credentials.EventKind{credentials.EventIssued}) {
				t.Errorf("waiter's observer saw %v, want the issuance it made", got)
			}
			if got := broker.Kinds(); !slices.Equal(got, []credentials.EventKind{credentials.EventFailed, credentials.EventIssued}) {
				t.Errorf("broker observer saw %v", got)
			}
		})
	}
}

// TestFlightLeaderShortDeadlineLetsWaitersRetry: a leader whose deadline
// is too short for a backoff stops retrying after a temporary failure. A
// waiter with no deadline is not bound by the leader's deadline: it retries
// itself and gets a credential, as it would have on its own. (Regression
// test: before 78168b0 the waiter got the leader's error.)
func TestFlightLeaderShortDeadlineLetsWaitersRetry(t *testing.T) {
	clock := newFakeClock()
	fake, _ := fakeBroker(clock, time.Hour)
	fake.FailIssue(fmt.Errorf("%w: 503", credentials.ErrUnavailable))
	p := newEntering(fake)
	// The backoff (10s to 20s) is longer than the leader's deadline (5s).
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now),
		credentials.WithRetry(3, 20*time.Second))
	release := fake.Hold()
	defer release()

	lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	leader := goLease(b, lctx, leaseReq("t", "api", "read"))
	recv(t, p.Entered, "the leader's Issue")
	sctx := newSignalCtx(context.Background())
	waiter := goLease(b, sctx, leaseReq("t", "api", "read"))
	waitClosed(t, sctx.Called, "the waiter to block")
	release() // the leader's attempt fails, temporarily, and it gives up

	l := recv(t, leader, "the leader")
	if !errors.Is(l.err, credentials.ErrUnavailable) {
		t.Fatalf("leader = %v, %v; want ErrUnavailable after one attempt", l.c, l.err)
	}
	w := recv(t, waiter, "the waiter")
	if w.err != nil {
		t.Fatalf("BUG: waiter without deadline got the leader's error %q after %d attempt(s): "+
			"the leader's deadline cut the waiter's retries short", w.err, len(fake.Requests()))
	}
	if got := len(fake.Requests()); got != 2 || fake.Issued() != 1 {
		t.Errorf("provider asked %d times, issued %d; want the leader's failed attempt and the waiter's", got, fake.Issued())
	}
}

// panicky panics in its first Issue, once released, and issues afterwards.
type panicky struct {
	calls   atomic.Int64
	entered chan struct{}
	release chan struct{}
}

func (p *panicky) Issue(ctx context.Context, req credentials.Request) (*credentials.Credential, error) {
	if p.calls.Add(1) == 1 {
		close(p.entered)
		<-p.release
		panic("provider exploded")
	}
	return &credentials.Credential{Secret: credentials.NewSecret(canary + "after-panic"), ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (p *panicky) Revoke(context.Context, *credentials.Credential) error { return nil }

// TestFlightProviderPanics: a panic in Issue reaches the leader's caller;
// waiters get an error instead of hanging, and the key is not stuck.
func TestFlightProviderPanics(t *testing.T) {
	p := &panicky{entered: make(chan struct{}), release: make(chan struct{})}
	log := &eventLog{}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithObserver(log.Observe))
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		c, err := b.Lease(context.Background(), leaseReq("t", "api"))
		t.Errorf("leader returned %v, %v instead of panicking", c, err)
	}()
	waitClosed(t, p.entered, "the leader's Issue")
	const waiters = 5
	results := make(chan leaseResult, waiters)
	for i := range waiters {
		sctx := newSignalCtx(context.Background())
		go func() {
			c, err := b.Lease(sctx, leaseReq("t", "api"))
			results <- leaseResult{i: i, c: c, err: err}
		}()
		waitClosed(t, sctx.Called, "a waiter to block")
	}
	close(p.release)

	if v := recv(t, panicked, "the leader's panic"); v != "provider exploded" {
		t.Errorf("leader's caller recovered %v, want the provider's panic", v)
	}
	for range waiters {
		r := recv(t, results, "a waiter (hung after the panic?)")
		if r.err == nil || r.c != nil {
			t.Errorf("waiter %d = %v, %v; want an error", r.i, r.c, r.err)
		} else if !strings.Contains(r.err.Error(), "panic") {
			t.Errorf("waiter %d error %q does not say the provider panicked", r.i, r.err)
		}
	}
	if got := p.calls.Load(); got != 1 {
		t.Errorf("provider called %d times by the leader and its waiters, want 1", got)
	}
	c, err := b.Lease(context.Background(), leaseReq("t", "api"))
	if err != nil || c == nil {
		t.Fatalf("Lease after the panic = %v, %v", c, err)
	}
	for _, e := range log.All() {
		noCanary(t, "event", eventTexts(e))
	}
}

// TestRefreshAheadOfExpiry: a cached lease is served until renewBefore of its
// expiry (a tenth of its life, at most 30s); then a new one is issued and an
// EventRefreshed names the lease it replaces.
func TestRefreshAheadOfExpiry(t *testing.T) {
	tests := []struct {
		ttl, renewBefore time.Duration
	}{
		{10 * time.Minute, 30 * time.Second},
		{time.Hour, 30 * time.Second},
		{5 * time.Minute, 30 * time.Second}, // exactly a tenth
		{20 * time.Second, 2 * time.Second},
		{time.Second, 100 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			clock := newFakeClock()
			log := &eventLog{}
			p, b := fakeBroker(clock, tc.ttl, credentials.WithObserver(log.Observe))
			r := leaseReq("t", "api", "read")
			c1, err := b.Lease(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if got := c1.ExpiresAt.Sub(c1.IssuedAt); got != tc.ttl {
				t.Fatalf("lease lives %v, want %v", got, tc.ttl)
			}
			// Served from the cache until just before renewBefore of expiry.
			clock.Advance(tc.ttl - tc.renewBefore - time.Nanosecond)
			c, err := b.Lease(context.Background(), r)
			if err != nil || c.LeaseID != c1.LeaseID {
				t.Fatalf("%v before expiry: lease %v, %v; want the cached %s", tc.renewBefore+time.Nanosecond, c, err, c1.LeaseID)
			}
			if len(log.All()) != 1 || p.Issued() != 1 {
				t.Fatalf("cache hit caused events %v and %d issues", log.Kinds(), p.Issued())
			}
			// At renewBefore of expiry, a new lease replaces it.
			clock.Advance(time.Nanosecond)
			c2, err := b.Lease(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if c2.LeaseID == c1.LeaseID || p.Issued() != 2 {
				t.Fatalf("%v before expiry: got lease %s (issued %d); want a new one", tc.renewBefore, c2.LeaseID, p.Issued())
			}
			if !c2.ExpiresAt.After(clock.Now().Add(tc.renewBefore)) || !c2.IssuedAt.Equal(clock.Now()) {
				t.Errorf("refreshed lease issued %v expires %v; now %v", c2.IssuedAt, c2.ExpiresAt, clock.Now())
			}
			ev := log.Of(credentials.EventRefreshed)
			if len(ev) != 1 {
				t.Fatalf("events %v, want issued then refreshed", log.Kinds())
			}
			if ev[0].Replaces != c1.LeaseID || ev[0].LeaseID != c2.LeaseID || !ev[0].ExpiresAt.Equal(c2.ExpiresAt) {
				t.Errorf("refresh event %+v; want lease %s replacing %s", ev[0], c2.LeaseID, c1.LeaseID)
			}
			if ev[0].Attempts != 1 || !ev[0].Time.Equal(clock.Now()) {
				t.Errorf("refresh event attempts %d at %v", ev[0].Attempts, ev[0].Time)
			}
			if iss := log.Of(credentials.EventIssued); len(iss) != 1 || iss[0].Replaces != "" {
				t.Errorf("issued events %+v", iss)
			}
			// The new lease is cached in turn; both are revoked with the task.
			if c3, err := b.Lease(context.Background(), r); err != nil || c3.LeaseID != c2.LeaseID {
				t.Errorf("after refresh: %v, %v; want the cached %s", c3, err, c2.LeaseID)
			}
			if revs, err := b.Revoke(context.Background(), "t"); err != nil || len(revs) != 2 {
				t.Errorf("Revoke = %d, %v; want both leases", len(revs), err)
			}
			if len(p.Active()) != 0 {
				t.Errorf("leases still active: %v", p.Active())
			}
		})
	}
}

// TestNeverExpiredOverTime steps the clock irregularly through many lease
// lifetimes: every Lease gets a credential that is not about to expire.
func TestNeverExpiredOverTime(t *testing.T) {
	clock := newFakeClock()
	log := &eventLog{}
	p, b := fakeBroker(clock, 90*time.Second, credentials.WithObserver(log.Observe))
	steps := []time.Duration{0, time.Second, 7 * time.Second, 13 * time.Second, 29 * time.Second, 1, 8*time.Second + 999*time.Millisecond, 31 * time.Second}
	for i := range 400 {
		clock.Advance(steps[i%len(steps)])
		now := clock.Now()
		r := leaseReq("t", "api", "read")
		if i%3 == 0 {
			r.TTL = time.Minute // its own key
		}
		c, err := b.Lease(context.Background(), r)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		life := c.ExpiresAt.Sub(c.IssuedAt)
		if !c.ExpiresAt.After(now.Add(min(30*time.Second, life/10) - 1)) {
			t.Fatalf("step %d at %v: got lease %s expiring %v", i, now, c.LeaseID, c.ExpiresAt)
		}
		if r.TTL > 0 && life > r.TTL {
			t.Fatalf("step %d: lease lives %v, TTL %v", i, life, r.TTL)
		}
	}
	if p.Issued() < 10 || p.Issued() > 400 {
		t.Errorf("issued %d leases", p.Issued())
	}
	if got := len(log.Of(credentials.EventRefreshed)) + len(log.Of(credentials.EventIssued)); got != p.Issued() {
		t.Errorf("%d issue events for %d issues", got, p.Issued())
	}
}

// greedy issues credentials living far longer than asked, ignoring the
// request's TTL and NotAfter; issuedAgo sets IssuedAt in the past (a cached
// upstream token), and onIssue runs before it answers.
type greedy struct {
	clock     *fakeClock
	life      time.Duration
	issuedAgo time.Duration
	zeroExp   bool
	onIssue   func()
	mu        sync.Mutex
	revoked   []string
	n         atomic.Int64
}

func (p *greedy) Issue(ctx context.Context, req credentials.Request) (*credentials.Credential, error) {
	p.n.Add(1)
	if p.onIssue != nil {
		p.onIssue()
	}
	now := p.clock.Now()
	c := &credentials.Credential{Secret: credentials.NewSecret(canary + "greedy"), ExpiresAt: now.Add(p.life)}
	if p.issuedAgo > 0 {
		c.IssuedAt = now.Add(-p.issuedAgo)
	}
	if p.zeroExp {
		c.ExpiresAt = time.Time{}
	}
	return c, nil
}

func (p *greedy) Revoke(_ context.Context, c *credentials.Credential) error {
	p.mu.Lock()
	p.revoked = append(p.revoked, c.LeaseID)
	p.mu.Unlock()
	return nil
}

// TestLeaseExpiryCapped: whatever the provider grants, the lease expires no
// later than the request's NotAfter and IssuedAt+TTL.
func TestLeaseExpiryCapped(t *testing.T) {
	tests := []struct {
		name     string
		ttl      time.Duration
		notAfter time.Duration // from now; 0 for none
		zeroExp  bool
		want     time.Duration // expiry from now
	}{
		{name: "TTL", ttl: 10 * time.Minute, want: 10 * time.Minute},
		{name: "NotAfter", notAfter: 3 * time.Minute, want: 3 * time.Minute},
		{name: "NotAfter before TTL", ttl: 10 * time.Minute, notAfter: 3 * time.Minute, want: 3 * time.Minute},
		{name: "TTL before NotAfter", ttl: 2 * time.Minute, notAfter: 3 * time.Minute, want: 2 * time.Minute},
		{name: "no expiry from provider, TTL", ttl: time.Minute, zeroExp: true, want: time.Minute},
		{name: "no expiry from provider, NotAfter", notAfter: time.Minute, zeroExp: true, want: time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			p := &greedy{clock: clock, life: 24 * time.Hour, zeroExp: tc.zeroExp}
			log := &eventLog{}
			b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now), credentials.WithObserver(log.Observe))
			r := leaseReq("t", "api")
			r.TTL = tc.ttl
			if tc.notAfter > 0 {
				r.NotAfter = clock.Now().Add(tc.notAfter)
			}
			c, err := b.Lease(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if want := clock.Now().Add(tc.want); !c.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v, want %v", c.ExpiresAt, want)
			}
			if ev := log.Of(credentials.EventIssued); len(ev) != 1 || !ev[0].ExpiresAt.Equal(c.ExpiresAt) {
				t.Errorf("issued event %+v does not carry the capped expiry", ev)
			}
			// Cached until renewBefore of the capped expiry, not the granted one.
			clock.Advance(tc.want - min(30*time.Second, tc.want/10))
			c2, err := b.Lease(context.Background(), r)
			if tc.notAfter > 0 && tc.want == tc.notAfter {
				// Near the task's deadline no new lease can do better; a
				// new one is still issued, capped again.
				if err == nil && !c2.ExpiresAt.After(clock.Now()) {
					t.Errorf("got expired lease %v at %v", c2.ExpiresAt, clock.Now())
				}
				return
			}
			if err != nil || c2.LeaseID == c.LeaseID {
				t.Errorf("near the capped expiry: %v, %v; want a new lease", c2, err)
			}
		})
	}
}

// TestLeaseNeverExpired: a caller never receives a credential that has
// expired, even when the caps the broker applies after the provider answers
// (NotAfter, IssuedAt+TTL) put its expiry in the past; such a credential,
// still valid at its issuer, is given back. (Regression test: before
// 78168b0 the expiry was checked before the caps, and both first cases
// returned an expired credential.)
func TestLeaseNeverExpired(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(clock *fakeClock) (*greedy, credentials.Request)
		givenUp bool // the credential is still valid at the issuer, so it is revoked
	}{
		{
			name: "NotAfter passes while issuing",
			setup: func(clock *fakeClock) (*greedy, credentials.Request) {
				// A slow issuer: the task's deadline passes while it works,
				// and it grants an hour, unaware of the deadline.
				r := leaseReq("t", "api")
				r.NotAfter = clock.Now().Add(10 * time.Second)
				return &greedy{clock: clock, life: time.Hour, onIssue: func() { clock.Advance(20 * time.Second) }}, r
			},
			givenUp: true,
		},
		{
			name: "TTL cap from an old IssuedAt",
			setup: func(clock *fakeClock) (*greedy, credentials.Request) {
				// The issuer hands out a token it issued two hours ago, valid
				// for one more: the TTL cap (IssuedAt+1h) is an hour ago.
				r := leaseReq("t", "api")
				r.TTL = time.Hour
				return &greedy{clock: clock, life: time.Hour, issuedAgo: 2 * time.Hour}, r
			},
			givenUp: true,
		},
		{
			name: "TTL cap exactly now",
			setup: func(clock *fakeClock) (*greedy, credentials.Request) {
				r := leaseReq("t", "api")
				r.TTL = time.Hour
				return &greedy{clock: clock, life: time.Hour, issuedAgo: time.Hour}, r
			},
			givenUp: true,
		},
		{
			name: "expired at the provider",
			setup: func(clock *fakeClock) (*greedy, credentials.Request) {
				return &greedy{clock: clock, life: -time.Second}, leaseReq("t", "api")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			p, r := tc.setup(clock)
			log := &eventLog{}
			b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now), credentials.WithObserver(log.Observe))
			c, err := b.Lease(context.Background(), r)
			if err == nil {
				t.Fatalf("BUG: Lease returned a credential expiring at %v, now %v (issued %v, NotAfter %v, TTL %v)",
					c.ExpiresAt, clock.Now(), c.IssuedAt, r.NotAfter, r.TTL)
			}
			if c != nil {
				t.Errorf("credential returned with error %v", err)
			}
			p.mu.Lock()
			revoked := len(p.revoked)
			p.mu.Unlock()
			if tc.givenUp && revoked != 1 {
				t.Errorf("the unusable credential, still valid at its issuer, was revoked %d times, want 1", revoked)
			}
			want := []credentials.EventKind{credentials.EventFailed}
			if tc.givenUp {
				want = []credentials.EventKind{credentials.EventRevoked, credentials.EventFailed}
			}
			if kinds := log.Kinds(); !slices.Equal(kinds, want) {
				t.Errorf("events %v, want %v", kinds, want)
			}
			if revs, err := b.Revoke(context.Background(), "t"); err != nil || len(revs) != 0 {
				t.Errorf("Revoke = %+v, %v; the refused credential is not the task's", revs, err)
			}
		})
	}
}

// TestLeasePastNotAfterRefused: a request whose NotAfter is not in the
// future is refused without asking the provider.
func TestLeasePastNotAfterRefused(t *testing.T) {
	for _, ago := range []time.Duration{0, time.Nanosecond, time.Hour} {
		t.Run(ago.String(), func(t *testing.T) {
			clock := newFakeClock()
			log := &eventLog{}
			p, b := fakeBroker(clock, time.Hour, credentials.WithObserver(log.Observe))
			r := leaseReq("t", "api")
			r.NotAfter = clock.Now().Add(-ago)
			c, err := b.Lease(context.Background(), r)
			if err == nil || c != nil {
				t.Fatalf("Lease = %v, %v; want refused", c, err)
			}
			if len(p.Requests()) != 0 {
				t.Errorf("provider asked %d times", len(p.Requests()))
			}
			// A cached lease from before is not handed out either.
			r2 := leaseReq("t2", "api")
			r2.NotAfter = clock.Now().Add(time.Minute)
			if _, err := b.Lease(context.Background(), r2); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Minute)
			if c, err := b.Lease(context.Background(), r2); err == nil {
				t.Errorf("Lease at NotAfter = %v; want refused", c)
			}
			if got := len(p.Requests()); got != 1 {
				t.Errorf("provider asked %d times, want 1", got)
			}
		})
	}
}
