package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/credentialstest"
)

// barrier issues credentials, and holds every revocation until n of them
// are in flight at once (or their context is done). Revocations done one
// after another never get past it.
type barrier struct {
	n        int
	mu       sync.Mutex
	inFlight int
	max      int
	open     chan struct{}
	once     sync.Once
	revoked  []string
}

func newBarrier(n int) *barrier { return &barrier{n: n, open: make(chan struct{})} }

func (p *barrier) Issue(_ context.Context, req credentials.Request) (*credentials.Credential, error) {
	return &credentials.Credential{Secret: credentials.NewSecret(canary + req.Audience), ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (p *barrier) Revoke(ctx context.Context, c *credentials.Credential) error {
	p.mu.Lock()
	p.inFlight++
	p.max = max(p.max, p.inFlight)
	if p.inFlight == p.n {
		p.once.Do(func() { close(p.open) })
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()
	select {
	case <-p.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	p.revoked = append(p.revoked, c.LeaseID)
	p.mu.Unlock()
	return nil
}

// TestRevokeConcurrently: Revoke revokes the leases of the task together,
// eight at a time: the provider's revocations only complete once eight of
// them are in flight, and never more are.
func TestRevokeConcurrently(t *testing.T) {
	const n, together = 12, 8
	p := newBarrier(together)
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithRetry(1, 0), credentials.WithAttemptTimeout(time.Minute))
	var ids []string
	for i := range n {
		c, err := b.Lease(context.Background(), leaseReq("t", fmt.Sprintf("aud-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.LeaseID)
	}
	if _, err := b.Lease(context.Background(), leaseReq("other-task", "aud-0")); err != nil {
		t.Fatal(err)
	}
	// Bounded, so that revocations done one by one fail rather than hang.
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	revs, err := b.Revoke(ctx, "t")
	if err != nil {
		t.Fatalf("Revoke: %v (at most %d revocations were in flight together)", err, p.max)
	}
	if p.max != together {
		t.Errorf("at most %d revocations in flight together, want %d", p.max, together)
	}
	var got []string
	for _, r := range revs {
		if r.Err != nil || r.Attempts != 1 || r.NotRevocable {
			t.Errorf("revocation %+v", r)
		}
		got = append(got, r.Credential.LeaseID)
	}
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Errorf("revoked %v, want %v", got, ids)
	}
	slices.Sort(p.revoked)
	if !slices.Equal(p.revoked, ids) {
		t.Errorf("provider revoked %v, want the task's leases %v", p.revoked, ids)
	}
}

// revokeFixture leases one credential of task "t" from a fresh fake
// provider with canary tokens, on a broker with three attempts and no
// backoff to speak of.
func revokeFixture(t *testing.T) (*credentialstest.Provider, *credentials.Broker, *eventLog, *credentials.Credential) {
	t.Helper()
	clock := newFakeClock()
	log := &eventLog{}
	p, b := fakeBroker(clock, time.Hour, credentials.WithRetry(3, time.Millisecond), credentials.WithObserver(log.Observe))
	c, err := b.Lease(context.Background(), leaseReq("t", "api", "read"))
	if err != nil {
		t.Fatal(err)
	}
	return p, b, log, c
}

// TestRevokeTemporaryRetried: a revocation failing temporarily is retried,
// and its success is reported with the attempts it took.
func TestRevokeTemporaryRetried(t *testing.T) {
	p, b, log, c := revokeFixture(t)
	p.FailRevoke(unavailable(1), netErr{timeout: true})
	revs, err := b.Revoke(context.Background(), "t")
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if len(revs) != 1 || revs[0].Err != nil || revs[0].Attempts != 3 || revs[0].Credential.LeaseID != c.LeaseID {
		t.Fatalf("revocations %+v; want %s revoked after 3 attempts", revs, c.LeaseID)
	}
	if !p.Revoked(c.LeaseID) || p.RevokeAttempts() != 3 || len(p.Active()) != 0 {
		t.Errorf("provider: revoked %v after %d attempts, active %v", p.Revoked(c.LeaseID), p.RevokeAttempts(), p.Active())
	}
	ev := log.Of(credentials.EventRevoked)
	if len(ev) != 1 || ev[0].LeaseID != c.LeaseID || ev[0].Attempts != 3 || ev[0].Err != nil || ev[0].NotRevocable {
		t.Errorf("revoked events %+v", ev)
	}
}

// TestRevokeFailures: a revocation that fails for good, or runs out of
// attempts, makes Revoke return an error naming the lease and never its
// value, sets Revocation.Err and emits EventRevokeFailed.
func TestRevokeFailures(t *testing.T) {
	tests := []struct {
		name     string
		errs     func(token string) []error
		attempts int
		is       error
	}{
		{
			name: "permanent",
			errs: func(tok string) []error {
				return []error{fmt.Errorf("invalid_token %s: %w", tok, credentialstest.ErrFake)}
			},
			attempts: 1,
			is:       credentialstest.ErrFake,
		},
		{
			name: "temporary, exhausting attempts",
			errs: func(tok string) []error {
				return repeat(fmt.Errorf("%w: 502 revoking %q", credentials.ErrUnavailable, tok), 3)
			},
			attempts: 3,
			is:       credentials.ErrUnavailable,
		},
		{
			name: "temporary then permanent",
			errs: func(tok string) []error {
				return []error{unavailable(1), fmt.Errorf("token=%s rejected: %w", tok, credentialstest.ErrFake)}
			},
			attempts: 2,
			is:       credentialstest.ErrFake,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, b, log, c := revokeFixture(t)
			tok := c.Secret.Reveal()
			p.FailRevoke(tc.errs(tok)...)
			revs, err := b.Revoke(context.Background(), "t")
			if err == nil {
				t.Fatal("Revoke succeeded")
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), c.LeaseID) {
				t.Errorf("error %q does not name lease %s", err, c.LeaseID)
			}
			noCanary(t, "Revoke error", errTexts(err), tok)
			if len(revs) != 1 {
				t.Fatalf("%d revocations", len(revs))
			}
			r := revs[0]
			if r.Err == nil || r.Attempts != tc.attempts || r.NotRevocable || r.Credential.LeaseID != c.LeaseID {
				t.Errorf("revocation %+v; want Err set after %d attempts", r, tc.attempts)
			}
			noCanary(t, "Revocation.Err", errTexts(r.Err), tok)
			if p.RevokeAttempts() != tc.attempts || p.Revoked(c.LeaseID) {
				t.Errorf("provider: %d attempts, revoked %v", p.RevokeAttempts(), p.Revoked(c.LeaseID))
			}
			ev := log.Of(credentials.EventRevokeFailed)
			if len(ev) != 1 || ev[0].LeaseID != c.LeaseID || ev[0].Attempts != tc.attempts || ev[0].Err == nil || !errors.Is(ev[0].Err, tc.is) {
				t.Fatalf("revoke-failed events %+v", ev)
			}
			if len(log.Of(credentials.EventRevoked)) != 0 {
				t.Errorf("failed revocation also reported as revoked")
			}
			noCanary(t, "revoke-failed event", eventTexts(ev[0]), tok)
			// The task is forgotten all the same.
			if revs, err := b.Revoke(context.Background(), "t"); revs != nil || err != nil {
				t.Errorf("second Revoke = %v, %v", revs, err)
			}
		})
	}
}

// TestRevokeMixed: of a task's leases at three providers, one revoked, one
// failing and one not revocable, only the failing one makes Revoke fail.
func TestRevokeMixed(t *testing.T) {
	clock := newFakeClock()
	mk := func() *credentialstest.Provider {
		return credentialstest.NewProvider(credentialstest.WithTokenPrefix(canary), credentialstest.WithClock(clock.Now))
	}
	ok, failing, svid := mk(), mk(), mk()
	log := &eventLog{}
	b := credentials.NewBroker(credentials.WithProvider("ok", ok), credentials.WithProvider("failing", failing),
		credentials.WithProvider("svid", svid), credentials.WithClock(clock.Now), credentials.WithRetry(2, time.Millisecond),
		credentials.WithObserver(log.Observe))
	leases := map[string]*credentials.Credential{}
	for _, name := range []string{"ok", "failing", "svid"} {
		r := leaseReq("t", "api")
		r.Provider = name
		c, err := b.Lease(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		leases[name] = c
	}
	failing.FailRevoke(credentialstest.ErrFake)
	svid.FailRevoke(fmt.Errorf("jwt-svid: %w", credentials.ErrNotRevocable))
	revs, err := b.Revoke(context.Background(), "t")
	if err == nil || !errors.Is(err, credentialstest.ErrFake) || errors.Is(err, credentials.ErrNotRevocable) {
		t.Fatalf("Revoke error %v; want only the failing provider's", err)
	}
	if !strings.Contains(err.Error(), leases["failing"].LeaseID) || strings.Contains(err.Error(), leases["ok"].LeaseID) ||
		strings.Contains(err.Error(), leases["svid"].LeaseID) {
		t.Errorf("error %q should name the failing lease only", err)
	}
	byProvider := map[string]credentials.Revocation{}
	for _, r := range revs {
		byProvider[r.Credential.Provider] = r
	}
	if r := byProvider["ok"]; r.Err != nil || r.NotRevocable || r.Attempts != 1 {
		t.Errorf("ok: %+v", r)
	}
	if r := byProvider["failing"]; r.Err == nil || r.NotRevocable || r.Attempts != 1 {
		t.Errorf("failing: %+v", r)
	}
	if r := byProvider["svid"]; r.Err != nil || !r.NotRevocable || r.Attempts != 1 {
		t.Errorf("not revocable: %+v; want NotRevocable, no error, not retried", r)
	}
	kinds := map[string]credentials.Event{}
	for _, e := range log.All() {
		if e.Kind == credentials.EventRevoked || e.Kind == credentials.EventRevokeFailed {
			kinds[e.Provider] = e
		}
	}
	if e := kinds["ok"]; e.Kind != credentials.EventRevoked || e.NotRevocable || e.LeaseID != leases["ok"].LeaseID {
		t.Errorf("ok event %+v", e)
	}
	if e := kinds["failing"]; e.Kind != credentials.EventRevokeFailed || e.Err == nil {
		t.Errorf("failing event %+v", e)
	}
	if e := kinds["svid"]; e.Kind != credentials.EventRevoked || !e.NotRevocable || e.Err != nil ||
		!e.ExpiresAt.Equal(leases["svid"].ExpiresAt) {
		t.Errorf("not revocable event %+v; want EventRevoked with NotRevocable and the expiry", e)
	}
	if !ok.Revoked(leases["ok"].LeaseID) || failing.Revoked(leases["failing"].LeaseID) || svid.Revoked(leases["svid"].LeaseID) {
		t.Error("provider state does not match the revocations")
	}
}

// TestRevokeUnknownTaskNoEvent: nothing to revoke is no error, nor any event.
func TestRevokeUnknownTaskNoEvent(t *testing.T) {
	clock := newFakeClock()
	log := &eventLog{}
	p, b := fakeBroker(clock, time.Hour, credentials.WithObserver(log.Observe))
	if _, err := b.Lease(context.Background(), leaseReq("known", "api")); err != nil {
		t.Fatal(err)
	}
	revs, err := b.Revoke(context.Background(), "unknown")
	if revs != nil || err != nil {
		t.Errorf("Revoke(unknown) = %v, %v; want nil, nil", revs, err)
	}
	if p.RevokeAttempts() != 0 || len(log.All()) != 1 {
		t.Errorf("Revoke(unknown) revoked %d, events %v", p.RevokeAttempts(), log.Kinds())
	}
}

// TestLeaseAfterRevoke: after Revoke a task starts a new lease set: a Lease
// issues afresh, and the next Revoke revokes only the new leases.
func TestLeaseAfterRevoke(t *testing.T) {
	p, b, _, c1 := revokeFixture(t)
	if _, err := b.Revoke(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	c2, err := b.Lease(context.Background(), leaseReq("t", "api", "read"))
	if err != nil {
		t.Fatalf("Lease after Revoke: %v", err)
	}
	if c2.LeaseID == c1.LeaseID || p.Issued() != 2 {
		t.Fatalf("Lease after Revoke got %s (issued %d); want a new lease", c2.LeaseID, p.Issued())
	}
	if got := p.Active(); !slices.Equal(got, []string{c2.LeaseID}) {
		t.Errorf("active %v, want the new lease only", got)
	}
	if c3, err := b.Lease(context.Background(), leaseReq("t", "api", "read")); err != nil || c3.LeaseID != c2.LeaseID {
		t.Errorf("new lease not cached: %v, %v", c3, err)
	}
	revs, err := b.Revoke(context.Background(), "t")
	if err != nil || len(revs) != 1 || revs[0].Credential.LeaseID != c2.LeaseID {
		t.Errorf("second Revoke = %+v, %v; want the new lease only", revs, err)
	}
	if p.RevokeAttempts() != 2 || len(p.Active()) != 0 {
		t.Errorf("provider: %d revocations, active %v", p.RevokeAttempts(), p.Active())
	}
}

// TestRevokeDuringIssue: a lease whose issuance finishes after Revoke of its
// task started is revoked at once, reported as revoked to the broker's and
// the call's observers, and the caller gets ErrTaskEnded.
func TestRevokeDuringIssue(t *testing.T) {
	clock := newFakeClock()
	fake, _ := fakeBroker(clock, time.Hour)
	p := newEntering(fake)
	brokerLog, callLog, revokeLog := &eventLog{}, &eventLog{}, &eventLog{}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now), credentials.WithObserver(brokerLog.Observe))
	if _, err := b.Lease(context.Background(), leaseReq("t", "earlier")); err != nil {
		t.Fatal(err)
	}
	<-p.Entered
	release := fake.Hold()
	defer release()
	leader := goLease(b, credentials.WithObserverContext(context.Background(), callLog.Observe), leaseReq("t", "api"))
	recv(t, p.Entered, "the issuance")
	sctx := newSignalCtx(context.Background())
	waiter := goLease(b, sctx, leaseReq("t", "api"))
	waitClosed(t, sctx.Called, "the waiter to block")

	revs, err := b.Revoke(credentials.WithObserverContext(context.Background(), revokeLog.Observe), "t")
	if err != nil || len(revs) != 1 || revs[0].Credential.Audience != "earlier" {
		t.Fatalf("Revoke during issue = %+v, %v; want the earlier lease", revs, err)
	}
	release()
	l := recv(t, leader, "the leader")
	if !errors.Is(l.err, credentials.ErrTaskEnded) || l.c != nil {
		t.Errorf("leader = %v, %v; want ErrTaskEnded", l.c, l.err)
	}
	w := recv(t, waiter, "the waiter")
	if !errors.Is(w.err, credentials.ErrTaskEnded) || w.c != nil {
		t.Errorf("waiter = %v, %v; want ErrTaskEnded", w.c, w.err)
	}
	if fake.Issued() != 2 || len(fake.Active()) != 0 {
		t.Errorf("issued %d, still active %v; want the late lease revoked", fake.Issued(), fake.Active())
	}
	var late string
	for _, e := range brokerLog.Of(credentials.EventRevoked) {
		if e.Audience == "api" {
			late = e.LeaseID
			if e.TaskID != "t" || e.Attempts != 1 || e.Provider != "p" {
				t.Errorf("late revocation event %+v", e)
			}
		}
	}
	if late == "" || !fake.Revoked(late) {
		t.Fatalf("broker observer saw %+v; want the late lease's revocation", brokerLog.All())
	}
	if got := callLog.All(); len(got) != 1 || got[0].Kind != credentials.EventRevoked || got[0].LeaseID != late {
		t.Errorf("the leasing call's observer saw %+v; want the late lease's revocation", got)
	}
	if len(brokerLog.Of(credentials.EventIssued)) != 1 {
		t.Errorf("late lease reported as issued: %v", brokerLog.Kinds())
	}
	if got := revokeLog.Kinds(); !slices.Equal(got, []credentials.EventKind{credentials.EventRevoked}) {
		t.Errorf("Revoke's observer saw %v", got)
	}
	// The next Lease of the task starts afresh.
	if c, err := b.Lease(context.Background(), leaseReq("t", "api")); err != nil || c == nil || !slices.Contains(fake.Active(), c.LeaseID) {
		t.Errorf("Lease after = %v, %v", c, err)
	}
}

// TestRevokeStopsWithContext: a revocation in flight when Revoke's context
// ends fails, and is reported.
func TestRevokeStopsWithContext(t *testing.T) {
	p := newBarrier(2) // never opens: the task has one lease
	log := &eventLog{}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithRetry(3, time.Millisecond),
		credentials.WithAttemptTimeout(time.Minute), credentials.WithObserver(log.Observe))
	c, err := b.Lease(context.Background(), leaseReq("t", "api"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	revs, err := b.Revoke(ctx, "t")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), c.LeaseID) {
		t.Errorf("Revoke = %v; want the deadline, naming %s", err, c.LeaseID)
	}
	if len(revs) != 1 || revs[0].Attempts != 1 {
		t.Errorf("revocations %+v; want one attempt, not retried past the deadline", revs)
	}
	if ev := log.Of(credentials.EventRevokeFailed); len(ev) != 1 {
		t.Errorf("events %v", log.Kinds())
	}
}

// scoped wraps the fake provider and reports granted as the scopes of each
// credential it issues.
type scoped struct {
	*credentialstest.Provider
	granted []string
	// echo makes Revoke fail permanently with an error quoting the token,
	// as a careless issuer's error might.
	echo bool
}

func (p *scoped) Revoke(ctx context.Context, c *credentials.Credential) error {
	if p.echo {
		return fmt.Errorf("revoke: token %s not found: %w", c.Secret.Reveal(), credentialstest.ErrFake)
	}
	return p.Provider.Revoke(ctx, c)
}

func (p *scoped) Issue(ctx context.Context, req credentials.Request) (*credentials.Credential, error) {
	c, err := p.Provider.Issue(ctx, req)
	if c != nil {
		c.Scopes = slices.Clone(p.granted)
	}
	return c, err
}

// TestScopesBeyondRequirementRefused: a credential granting scopes beyond the
// requirement is refused and revoked at once; narrower grants are kept.
func TestScopesBeyondRequirementRefused(t *testing.T) {
	tests := []struct {
		name      string
		required  []string
		granted   []string
		refused   bool
		revokeErr []error
		echo      bool
	}{
		{name: "wider", required: []string{"read"}, granted: []string{"read", "admin"}, refused: true},
		{name: "other", required: []string{"read"}, granted: []string{"write"}, refused: true},
		{name: "wider, revocation retried", required: []string{"read"}, granted: []string{"read", "admin"}, refused: true,
			revokeErr: []error{unavailable(1)}},
		{name: "wider, revocation fails", required: []string{"read"}, granted: []string{"admin"}, refused: true,
			revokeErr: []error{credentialstest.ErrFake}},
		{name: "wider, revocation fails quoting the token", required: []string{"read"}, granted: []string{"read", "admin"}, refused: true,
			echo: true},
		{name: "narrower", required: []string{"read", "write"}, granted: []string{"read"}},
		{name: "same, other order", required: []string{"read", "write"}, granted: []string{"write", "read"}},
		{name: "none said: the requirement's", required: []string{"write", "read"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			fake := credentialstest.NewProvider(credentialstest.WithTokenPrefix(canary), credentialstest.WithClock(clock.Now))
			p := &scoped{Provider: fake, granted: tc.granted, echo: tc.echo}
			log := &eventLog{}
			b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now),
				credentials.WithRetry(2, time.Millisecond), credentials.WithObserver(log.Observe))
			fake.FailRevoke(tc.revokeErr...)
			c, err := b.Lease(context.Background(), leaseReq("t", "api", tc.required...))
			if !tc.refused {
				if err != nil {
					t.Fatal(err)
				}
				want := tc.granted
				if want == nil {
					want = []string{"read", "write"}
				}
				if !slices.Equal(c.Scopes, want) {
					t.Errorf("Scopes = %q, want %q", c.Scopes, want)
				}
				if ev := log.Of(credentials.EventIssued); len(ev) != 1 || !slices.Equal(ev[0].Scopes, want) {
					t.Errorf("issued events %+v; want scopes %q", ev, want)
				}
				if fake.RevokeAttempts() != 0 {
					t.Errorf("kept credential was revoked")
				}
				return
			}
			if err == nil || c != nil {
				t.Fatalf("Lease = %v, %v; want refused", c, err)
			}
			if !strings.Contains(err.Error(), "beyond") {
				t.Errorf("error %q does not say the grant was too wide", err)
			}
			tokens := fake.Tokens()
			if len(tokens) != 1 {
				t.Fatalf("issued %d tokens", len(tokens))
			}
			noCanary(t, "Lease error", errTexts(err), tokens...)
			wantRevoked := !tc.echo && (len(tc.revokeErr) == 0 || credentials.Temporary(tc.revokeErr[0]))
			if got := len(fake.Active()) == 0; got != wantRevoked {
				t.Errorf("over-wide credential revoked = %v, want %v (active %v)", got, wantRevoked, fake.Active())
			}
			if !wantRevoked && !strings.Contains(err.Error(), "revoking it failed") {
				t.Errorf("error %q does not say revoking the over-wide credential failed", err)
			}
			// The give-back is reported as a revocation, then the failure.
			ev := log.All()
			wantGiveBack := credentials.EventRevoked
			if !wantRevoked {
				wantGiveBack = credentials.EventRevokeFailed
			}
			if len(ev) != 2 || ev[0].Kind != wantGiveBack || ev[0].TaskID != "t" || ev[1].Kind != credentials.EventFailed || ev[1].LeaseID != "" {
				t.Errorf("events %+v; want %s then %s", ev, wantGiveBack, credentials.EventFailed)
			}
			for _, e := range ev {
				noCanary(t, "event", eventTexts(e), tokens...)
			}
			// The refused credential is neither cached nor part of the task.
			revs, err := b.Revoke(context.Background(), "t")
			if err != nil || len(revs) != 0 {
				t.Errorf("Revoke after refusal = %+v, %v; want nothing to revoke", revs, err)
			}
		})
	}
}

// TestLeaseOfNewSetDuringLateIssue: while a lease of the revoked task's old
// set is still being issued, a Lease of the same task and key starts a new
// set: it does not wait on the old issuance, gets its own lease, and keeps
// it when the old one comes back and is revoked.
func TestLeaseOfNewSetDuringLateIssue(t *testing.T) {
	clock := newFakeClock()
	fake, _ := fakeBroker(clock, time.Hour)
	p := newEntering(fake)
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now))
	release := fake.Hold()
	defer release()
	old := goLease(b, context.Background(), leaseReq("t", "api"))
	recv(t, p.Entered, "the old set's issuance")
	if revs, err := b.Revoke(context.Background(), "t"); err != nil || len(revs) != 0 {
		t.Fatalf("Revoke = %+v, %v", revs, err)
	}
	fresh := goLease(b, context.Background(), leaseReq("t", "api"))
	recv(t, p.Entered, "the new set's own issuance")
	release()
	o := recv(t, old, "the old set's Lease")
	if !errors.Is(o.err, credentials.ErrTaskEnded) {
		t.Errorf("old set's Lease = %v, %v; want ErrTaskEnded", o.c, o.err)
	}
	f := recv(t, fresh, "the new set's Lease")
	if f.err != nil {
		t.Fatalf("new set's Lease: %v", f.err)
	}
	if got := fake.Active(); !slices.Equal(got, []string{f.c.LeaseID}) {
		t.Errorf("active %v, want only the new set's lease %s", got, f.c.LeaseID)
	}
	revs, err := b.Revoke(context.Background(), "t")
	if err != nil || len(revs) != 1 || revs[0].Credential.LeaseID != f.c.LeaseID {
		t.Errorf("Revoke of the new set = %+v, %v", revs, err)
	}
}

// TestWaiterAfterRevokeDuringLeaderEmit: the leader's issuance is recorded
// in the task's lease set, then reported to the observers, then handed to
// the waiters. A Revoke of the task in between (while an audit observer
// writes its record) revokes the lease; a waiter that was waiting all along
// must then get ErrTaskEnded, as when the revocation comes earlier
// (TestWaiterDoesNotGetRevokedLease), and not the revoked lease - which, for
// a credential its issuer cannot revoke, would stay valid after its task.
// So must the leader. (Regression test: before 78168b0 both got the lease.)
func TestWaiterAfterRevokeDuringLeaderEmit(t *testing.T) {
	clock := newFakeClock()
	fake, _ := fakeBroker(clock, time.Hour)
	fake.FailRevoke(fmt.Errorf("jwt-svid: %w", credentials.ErrNotRevocable))
	inEmit, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	audit := func(_ context.Context, e credentials.Event) {
		if e.Kind == credentials.EventIssued {
			once.Do(func() {
				close(inEmit)
				<-resume // a slow audit write
			})
		}
	}
	b := credentials.NewBroker(credentials.WithProvider("p", fake), credentials.WithClock(clock.Now), credentials.WithObserver(audit))
	leader := goLease(b, context.Background(), leaseReq("t", "api"))
	waitClosed(t, inEmit, "the leader to report its issuance")
	sctx := newSignalCtx(context.Background())
	waiter := goLease(b, sctx, leaseReq("t", "api"))
	waitClosed(t, sctx.Called, "the waiter to block")
	revs, err := b.Revoke(context.Background(), "t")
	if err != nil || len(revs) != 1 || !revs[0].NotRevocable {
		t.Fatalf("Revoke = %+v, %v; want the one lease, not revocable", revs, err)
	}
	close(resume)
	l := recv(t, leader, "the leader")
	w := recv(t, waiter, "the waiter")
	if w.err == nil {
		t.Errorf("BUG: a waiter got lease %s of task %q after the task was revoked", w.c.LeaseID, w.c.TaskID)
	} else if !errors.Is(w.err, credentials.ErrTaskEnded) {
		t.Errorf("waiter error %v, want ErrTaskEnded", w.err)
	}
	if l.err == nil {
		t.Errorf("BUG: the leader got lease %s of task %q after the task was revoked", l.c.LeaseID, l.c.TaskID)
	} else if !errors.Is(l.err, credentials.ErrTaskEnded) {
		t.Errorf("leader error %v, want ErrTaskEnded", l.err)
	}
}

// TestRefusedGrantNotRetriedByWaiters: a grant refused for its scopes is a
// failure of the issuer, not of the leader's context, even when giving the
// credential back runs out of time. Callers waiting on that issuance get the
// refusal; they do not each ask the issuer again (and each receive, and
// give back, another over-wide credential).
func TestRefusedGrantNotRetriedByWaiters(t *testing.T) {
	clock := newFakeClock()
	fake := credentialstest.NewProvider(credentialstest.WithTokenPrefix(canary), credentialstest.WithClock(clock.Now))
	fake.FailRevoke(repeat(unavailable(0), 50)...) // the issuer's revocation endpoint is down
	p := newEntering(&scoped{Provider: fake, granted: []string{"read", "admin"}})
	// Giving back gets 2 attempts x 10ms; the 10s-20s backoff does not fit:
	// the give-back's retries are cut short by its own deadline.
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now),
		credentials.WithRetry(2, 20*time.Second), credentials.WithAttemptTimeout(10*time.Millisecond))
	release := fake.Hold()
	defer release()
	// A leader and its waiters, whose contexts are all live and without deadline.
	leader := goLease(b, context.Background(), leaseReq("t", "api", "read"))
	recv(t, p.Entered, "the leader's Issue")
	const n = 3
	waiters := make([]<-chan leaseResult, n)
	for i := range n {
		sctx := newSignalCtx(context.Background())
		waiters[i] = goLease(b, sctx, leaseReq("t", "api", "read"))
		waitClosed(t, sctx.Called, "a waiter to block")
	}
	release()
	if l := recv(t, leader, "the leader"); l.err == nil || !strings.Contains(l.err.Error(), "beyond") {
		t.Fatalf("leader = %v, %v; want the refusal", l.c, l.err)
	}
	for i := range n {
		if w := recv(t, waiters[i], "a waiter"); w.err == nil {
			t.Fatalf("waiter %d got %v", i, w.c)
		}
	}
	if got := len(fake.Requests()); got != 1 {
		t.Errorf("BUG: the issuer was asked %d times for one refused grant: each waiter took the failure "+
			"of giving back the credential (an errCut from giveBack's own deadline) for its leader's abandonment", got)
	}
}

// TestWaiterPastNotAfterDoesNotIssue: a request whose NotAfter passed while
// it waited on an abandoned issuance is refused, like one that arrives
// after its NotAfter, without asking the provider.
func TestWaiterPastNotAfterDoesNotIssue(t *testing.T) {
	clock := newFakeClock()
	fake, _ := fakeBroker(clock, time.Hour)
	p := newEntering(fake)
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now))
	release := fake.Hold()
	defer release()
	r := leaseReq("t", "api")
	r.NotAfter = clock.Now().Add(time.Minute)
	lctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leader := goLease(b, lctx, r)
	recv(t, p.Entered, "the leader's Issue")
	sctx := newSignalCtx(context.Background())
	waiter := goLease(b, sctx, r)
	waitClosed(t, sctx.Called, "the waiter to block")
	clock.Advance(2 * time.Minute) // the task's deadline passes
	cancel()                       // and the leader goes away
	if l := recv(t, leader, "the leader"); !errors.Is(l.err, context.Canceled) {
		t.Fatalf("leader = %v, %v", l.c, l.err)
	}
	release()
	w := recv(t, waiter, "the waiter")
	if w.err == nil {
		t.Fatalf("waiter past its NotAfter got %v", w.c)
	}
	if got := len(fake.Requests()); got != 1 {
		t.Errorf("BUG: provider asked %d times; a waiter whose NotAfter passed while it waited was issued anyway (waiter: %v)", got, w.err)
	}
}
