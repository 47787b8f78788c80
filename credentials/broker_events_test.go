package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/credentialstest"
)

// checkLeaseEvent checks that e reports lease c, of kind k, at now.
func checkLeaseEvent(t *testing.T, e credentials.Event, k credentials.EventKind, c *credentials.Credential, now time.Time) {
	t.Helper()
	if e.Kind != k {
		t.Errorf("event kind %q, want %q", e.Kind, k)
	}
	if e.LeaseID == "" || e.LeaseID != c.LeaseID || e.TaskID != c.TaskID || e.Agent != c.Agent || e.Name != c.Name ||
		e.Provider != c.Provider || e.Audience != c.Audience || !slices.Equal(e.Resources, c.Resources) ||
		!slices.Equal(e.Scopes, c.Scopes) || !e.ExpiresAt.Equal(c.ExpiresAt) {
		t.Errorf("%s event %+v does not describe lease %+v", k, e, c)
	}
	if !e.Time.Equal(now) {
		t.Errorf("%s event at %v, want the broker's clock %v", k, e.Time, now)
	}
	if e.Attempts < 1 {
		t.Errorf("%s event with %d attempts", k, e.Attempts)
	}
}

// TestObserversSeeEveryKind: the broker's observer and each call's observer
// see the events of issuance, refresh, failure and revocation, each with the
// lease's metadata; a cache hit causes no event; nothing shows a token.
func TestObserversSeeEveryKind(t *testing.T) {
	clock := newFakeClock()
	all := &eventLog{}
	p, b := fakeBroker(clock, 10*time.Minute, credentials.WithObserver(all.Observe), credentials.WithRetry(2, time.Millisecond))
	call := func() (*eventLog, context.Context) {
		l := &eventLog{}
		return l, credentials.WithObserverContext(context.Background(), l.Observe)
	}
	r := credentials.Request{
		Requirement: credentials.Requirement{Name: "github", Provider: "p", Audience: "api.github.com",
			Resources: []string{"https://api.github.com/repos/o/r"}, Scopes: []string{"write", "read"}},
		TaskID: "task-7",
		Agent:  "spiffe://example.org/agent/coder",
	}

	// Issued.
	issuedLog, ctx := call()
	c1, err := b.Lease(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c1.Scopes, []string{"read", "write"}) || !slices.Equal(c1.Resources, r.Resources) || c1.Agent != r.Agent {
		t.Fatalf("lease %+v", c1)
	}
	if got := issuedLog.All(); len(got) != 1 {
		t.Fatalf("call observer saw %v, want the issuance", issuedLog.Kinds())
	} else {
		checkLeaseEvent(t, got[0], credentials.EventIssued, c1, clock.Now())
		if got[0].Attempts != 1 || got[0].Replaces != "" || got[0].Err != nil {
			t.Errorf("issued event %+v", got[0])
		}
	}

	// A cache hit: no event anywhere.
	hitLog, ctx := call()
	clock.Advance(time.Minute)
	if c, err := b.Lease(ctx, r); err != nil || c.LeaseID != c1.LeaseID {
		t.Fatalf("cache hit = %v, %v", c, err)
	}
	if len(hitLog.All()) != 0 || len(all.All()) != 1 {
		t.Errorf("cache hit caused events: call %v, broker %v", hitLog.Kinds(), all.Kinds())
	}

	// Refreshed, after a temporary failure.
	clock.Advance(8*time.Minute + 30*time.Second)
	p.FailIssue(unavailable(1))
	refreshLog, ctx := call()
	c2, err := b.Lease(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := refreshLog.All(); len(got) != 1 {
		t.Fatalf("call observer saw %v, want the refresh", refreshLog.Kinds())
	} else {
		checkLeaseEvent(t, got[0], credentials.EventRefreshed, c2, clock.Now())
		if got[0].Replaces != c1.LeaseID || got[0].Attempts != 2 {
			t.Errorf("refresh event %+v; want it to replace %s after 2 attempts", got[0], c1.LeaseID)
		}
	}

	// Failed.
	failLog, ctx := call()
	r2 := r
	r2.Audience = "uploads.github.com"
	r2.Scopes = []string{"write", "read", "write"}
	p.FailIssue(fmt.Errorf("invalid_scope: %w", credentialstest.ErrFake))
	_, ferr := b.Lease(ctx, r2)
	if ferr == nil {
		t.Fatal("Lease succeeded")
	}
	if got := failLog.All(); len(got) != 1 {
		t.Fatalf("call observer saw %v, want the failure", failLog.Kinds())
	} else {
		e := got[0]
		if e.Kind != credentials.EventFailed || e.LeaseID != "" || e.TaskID != r2.TaskID || e.Agent != r2.Agent || e.Name != r2.Name ||
			e.Provider != r2.Provider || e.Audience != r2.Audience || !slices.Equal(e.Resources, r2.Resources) ||
			!slices.Equal(e.Scopes, []string{"read", "write"}) || e.Attempts != 1 || !e.ExpiresAt.IsZero() ||
			!errors.Is(e.Err, credentialstest.ErrFake) || !e.Time.Equal(clock.Now()) {
			t.Errorf("failed event %+v", e)
		}
	}

	// Revoked: both leases of the task.
	revokeLog, ctx := call()
	if _, err := b.Revoke(ctx, "task-7"); err != nil {
		t.Fatal(err)
	}
	got := revokeLog.All()
	if len(got) != 2 {
		t.Fatalf("call observer saw %v, want two revocations", revokeLog.Kinds())
	}
	slices.SortFunc(got, func(a, b credentials.Event) int { return a.ExpiresAt.Compare(b.ExpiresAt) })
	checkLeaseEvent(t, got[0], credentials.EventRevoked, c1, clock.Now())
	checkLeaseEvent(t, got[1], credentials.EventRevoked, c2, clock.Now())
	for _, e := range got {
		if e.Attempts != 1 || e.Err != nil || e.NotRevocable {
			t.Errorf("revoked event %+v", e)
		}
	}

	// The broker's observer saw everything the calls' observers saw.
	var calls []credentials.EventKind
	for _, l := range []*eventLog{issuedLog, hitLog, refreshLog, failLog, revokeLog} {
		calls = append(calls, l.Kinds()...)
	}
	if !slices.Equal(all.Kinds(), calls) {
		t.Errorf("broker observer saw %v, calls' observers %v", all.Kinds(), calls)
	}
	for _, e := range all.All() {
		noCanary(t, "event", eventTexts(e), p.Tokens()...)
	}
	noCanary(t, "Lease error", errTexts(ferr), p.Tokens()...)
}

// TestObserverEventsDoNotAlias: an observer that changes an event's slices
// changes neither the lease nor what other observers see.
func TestObserverEventsDoNotAlias(t *testing.T) {
	clock := newFakeClock()
	second := &eventLog{}
	vandal := func(_ context.Context, e credentials.Event) {
		for i := range e.Scopes {
			e.Scopes[i] = "admin"
		}
		for i := range e.Resources {
			e.Resources[i] = "https://evil.example/"
		}
	}
	_, b := fakeBroker(clock, time.Hour, credentials.WithObserver(vandal), credentials.WithObserver(second.Observe))
	c, err := b.Lease(context.Background(), leaseReq("t", "api", "read"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Scopes, []string{"read"}) || !slices.Equal(c.Resources, []string{"https://api.example.com/"}) {
		t.Errorf("observer changed the lease: %+v", c)
	}
	// (Observers of one event share its slices: the second may see the
	// first's changes. Only the lease's own slices are asserted safe.)
	if ev := second.All(); len(ev) != 1 {
		t.Fatalf("second observer saw %v", second.Kinds())
	}
	if again, _ := b.Lease(context.Background(), leaseReq("t", "api", "read")); !slices.Equal(again.Scopes, []string{"read"}) {
		t.Errorf("cached lease changed by an observer: %+v", again)
	}
}

// TestObserverContextScoping: a call's observers are those of its context
// only; sibling contexts from one parent do not share observers; a nil
// observer is ignored.
func TestObserverContextScoping(t *testing.T) {
	clock := newFakeClock()
	_, b := fakeBroker(clock, time.Hour, credentials.WithObserver(nil))
	parent, a, bb, c := &eventLog{}, &eventLog{}, &eventLog{}, &eventLog{}
	pctx := credentials.WithObserverContext(context.Background(), parent.Observe)
	actx := credentials.WithObserverContext(pctx, a.Observe)
	bctx := credentials.WithObserverContext(pctx, bb.Observe)
	cctx := credentials.WithObserverContext(actx, c.Observe)
	if credentials.WithObserverContext(pctx, nil) != pctx {
		t.Error("WithObserverContext(ctx, nil) made a new context")
	}
	if _, err := b.Lease(actx, leaseReq("t", "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lease(bctx, leaseReq("t", "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lease(cctx, leaseReq("t", "c")); err != nil {
		t.Fatal(err)
	}
	audiences := func(l *eventLog) []string {
		var out []string
		for _, e := range l.All() {
			out = append(out, e.Audience)
		}
		return out
	}
	for _, tc := range []struct {
		l    *eventLog
		want []string
	}{{parent, []string{"a", "b", "c"}}, {a, []string{"a", "c"}}, {bb, []string{"b"}}, {c, []string{"c"}}} {
		if got := audiences(tc.l); !slices.Equal(got, tc.want) {
			t.Errorf("observer saw audiences %v, want %v", got, tc.want)
		}
	}
}

// TestObserverOnlyTheLeaderReports: of concurrent callers sharing one
// issuance, only the one that did it reports it.
func TestObserverOnlyTheLeaderReports(t *testing.T) {
	clock := newFakeClock()
	fake, _ := fakeBroker(clock, time.Hour)
	p := newEntering(fake)
	all := &eventLog{}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now), credentials.WithObserver(all.Observe))
	release := fake.Hold()
	defer release()
	leaderLog := &eventLog{}
	leader := goLease(b, credentials.WithObserverContext(context.Background(), leaderLog.Observe), leaseReq("t", "api"))
	recv(t, p.Entered, "the leader's Issue")
	const n = 10
	logs := make([]*eventLog, n)
	results := make([]<-chan leaseResult, n)
	for i := range n {
		logs[i] = &eventLog{}
		sctx := newSignalCtx(credentials.WithObserverContext(context.Background(), logs[i].Observe))
		results[i] = goLease(b, sctx, leaseReq("t", "api"))
		waitClosed(t, sctx.Called, "a waiter to block")
	}
	release()
	if r := recv(t, leader, "the leader"); r.err != nil {
		t.Fatal(r.err)
	}
	for i := range n {
		if r := recv(t, results[i], "a waiter"); r.err != nil {
			t.Fatal(r.err)
		}
		if len(logs[i].All()) != 0 {
			t.Errorf("waiter %d's observer saw %v", i, logs[i].Kinds())
		}
	}
	if got := leaderLog.Kinds(); !slices.Equal(got, []credentials.EventKind{credentials.EventIssued}) {
		t.Errorf("leader's observer saw %v", got)
	}
	if got := all.Kinds(); !slices.Equal(got, []credentials.EventKind{credentials.EventIssued}) {
		t.Errorf("broker observer saw %v", got)
	}
}

// TestNoTokenInErrorsOrEvents drives the failures whose text an issuer may
// fill with a token — a revocation quoting the lease's token, a grant too
// wide whose revocation quotes it — and checks every error and event.
func TestNoTokenInErrorsOrEvents(t *testing.T) {
	clock := newFakeClock()
	all := &eventLog{}
	fake := credentialstest.NewProvider(credentialstest.WithTokenPrefix(canary), credentialstest.WithClock(clock.Now))
	echo := &funcProvider{
		issue: fake.Issue,
		revoke: func(_ context.Context, c *credentials.Credential) error {
			tok := c.Secret.Reveal()
			return fmt.Errorf("%w: revoke %s (%x) failed: %w", credentials.ErrUnavailable, tok, tok, credentialstest.ErrFake)
		},
	}
	wide := &scoped{Provider: credentialstest.NewProvider(credentialstest.WithTokenPrefix(canary)), granted: []string{"admin"}, echo: true}
	b := credentials.NewBroker(credentials.WithProvider("echo", echo), credentials.WithProvider("wide", wide),
		credentials.WithClock(clock.Now), credentials.WithRetry(2, time.Millisecond), credentials.WithObserver(all.Observe))
	r := leaseReq("t", "api", "read")
	r.Provider = "echo"
	c, err := b.Lease(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	r.Provider = "wide"
	if _, err := b.Lease(context.Background(), r); err == nil {
		t.Fatal("over-wide grant accepted")
	} else {
		errs = append(errs, err)
	}
	revs, err := b.Revoke(context.Background(), "t")
	if err == nil || len(revs) != 1 || revs[0].Attempts != 2 {
		t.Fatalf("Revoke = %+v, %v", revs, err)
	}
	errs = append(errs, err, revs[0].Err)
	tokens := append(fake.Tokens(), wide.Tokens()...)
	if len(tokens) != 2 || tokens[0] != c.Secret.Reveal() {
		t.Fatalf("tokens %d", len(tokens))
	}
	for _, err := range errs {
		noCanary(t, "error", errTexts(err), tokens...)
	}
	if want := []credentials.EventKind{credentials.EventIssued, credentials.EventRevokeFailed, credentials.EventFailed, credentials.EventRevokeFailed}; !slices.Equal(all.Kinds(), want) {
		t.Errorf("events %v; want %v (the over-wide grant's failed give-back, then its refusal)", all.Kinds(), want)
	}
	for _, e := range all.All() {
		noCanary(t, "event", eventTexts(e), tokens...)
	}
}

// TestNoUserTokenInErrorsOrEvents: the user's token (Request.UserToken,
// "never printed") quoted by an issuer's error, as token exchange endpoints
// do for an invalid subject_token, appears neither in Lease's error nor in
// the failure event. (Regression test: before 78168b0 it appeared in both.)
func TestNoUserTokenInErrorsOrEvents(t *testing.T) {
	clock := newFakeClock()
	all := &eventLog{}
	p := &funcProvider{issue: func(_ context.Context, req credentials.Request) (*credentials.Credential, error) {
		return nil, fmt.Errorf("invalid_grant: subject_token %q is expired: %w", req.UserToken.Reveal(), credentialstest.ErrFake)
	}}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now), credentials.WithObserver(all.Observe))
	r := leaseReq("t", "api")
	user := canary + "user-session-0d9a"
	r.UserToken = credentials.NewSecret(user)
	_, err := b.Lease(context.Background(), r)
	if err == nil {
		t.Fatal("Lease succeeded")
	}
	if !errors.Is(err, credentialstest.ErrFake) {
		t.Errorf("error %v no longer wraps the issuer's", err)
	}
	var texts []string
	texts = append(texts, errTexts(err)...)
	for _, e := range all.All() {
		texts = append(texts, eventTexts(e)...)
	}
	for _, s := range texts {
		if strings.Contains(s, user) {
			t.Errorf("BUG: the user's token leaks through an issuer's error into Lease's error / EventFailed: %s", s)
			break
		}
	}
}
