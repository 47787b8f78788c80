package credentialstest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/credentialstest"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

func fixed() time.Time { return t0 }

func request(task string) credentials.Request {
	return credentials.Request{Requirement: credentials.Requirement{Name: "n", Provider: "p", Audience: "api"}, TaskID: task}
}

// waitUntil polls cond (bounded) for state that offers nothing to wait on.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		runtime.Gosched()
	}
}

type issued struct {
	c   *credentials.Credential
	err error
}

func goIssue(p *credentialstest.Provider, ctx context.Context, r credentials.Request) <-chan issued {
	ch := make(chan issued, 1)
	go func() {
		c, err := p.Issue(ctx, r)
		ch <- issued{c, err}
	}()
	return ch
}

func recv(t *testing.T, ch <-chan issued) issued {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for Issue")
		return issued{}
	}
}

func TestIssue(t *testing.T) {
	tests := []struct {
		name     string
		opts     []credentialstest.Option
		ttl      time.Duration
		notAfter time.Duration
		want     time.Duration
	}{
		{name: "default TTL", want: credentials.DefaultTTL},
		{name: "provider TTL", opts: []credentialstest.Option{credentialstest.WithTTL(time.Hour)}, want: time.Hour},
		{name: "shorter request TTL", opts: []credentialstest.Option{credentialstest.WithTTL(time.Hour)}, ttl: time.Minute, want: time.Minute},
		{name: "longer request TTL does not extend", ttl: 24 * time.Hour, want: credentials.DefaultTTL},
		{name: "NotAfter caps", ttl: time.Hour, notAfter: 2 * time.Minute, want: 2 * time.Minute},
		{name: "later NotAfter does not extend", notAfter: time.Hour, want: credentials.DefaultTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := credentialstest.NewProvider(append(tc.opts, credentialstest.WithClock(fixed), credentialstest.WithTokenPrefix("canary-"))...)
			r := request("t")
			r.TTL = tc.ttl
			if tc.notAfter > 0 {
				r.NotAfter = t0.Add(tc.notAfter)
			}
			c, err := p.Issue(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if !c.IssuedAt.Equal(t0) || !c.ExpiresAt.Equal(t0.Add(tc.want)) {
				t.Errorf("issued %v expires %v, want %v and %v", c.IssuedAt, c.ExpiresAt, t0, t0.Add(tc.want))
			}
			tok := c.Secret.Reveal()
			if !strings.HasPrefix(tok, "canary-") || len(tok) != len("canary-")+24 {
				t.Errorf("token %q", tok)
			}
			if !strings.HasPrefix(c.LeaseID, "lease-") {
				t.Errorf("LeaseID %q", c.LeaseID)
			}
			if p.Issued() != 1 || !slices.Equal(p.Tokens(), []string{tok}) || !slices.Equal(p.Active(), []string{c.LeaseID}) {
				t.Errorf("Issued %d, Tokens %v, Active %v", p.Issued(), p.Tokens(), p.Active())
			}
			if got := p.Requests(); len(got) != 1 || got[0].TaskID != "t" || got[0].TTL != tc.ttl {
				t.Errorf("Requests = %+v", got)
			}
		})
	}
}

func TestDefaultTokenPrefixAndUniqueness(t *testing.T) {
	p := credentialstest.NewProvider()
	seen := map[string]bool{}
	ids := map[string]bool{}
	for range 100 {
		c, err := p.Issue(context.Background(), request("t"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(c.Secret.Reveal(), "fake-token-") || seen[c.Secret.Reveal()] || ids[c.LeaseID] {
			t.Fatalf("token %q / lease %s repeated or unprefixed", c.Secret.Reveal(), c.LeaseID)
		}
		seen[c.Secret.Reveal()], ids[c.LeaseID] = true, true
		if time.Until(c.ExpiresAt) <= 0 {
			t.Errorf("default clock: expires %v", c.ExpiresAt)
		}
	}
	if p.Issued() != 100 || len(p.Tokens()) != 100 || len(p.Active()) != 100 {
		t.Errorf("counts: %d %d %d", p.Issued(), len(p.Tokens()), len(p.Active()))
	}
}

// TestFailIssueOrder: queued failures come out in order, across calls to
// FailIssue, one per Issue; then Issue succeeds. Failures are asked for but
// not issued.
func TestFailIssueOrder(t *testing.T) {
	p := credentialstest.NewProvider()
	e1, e2, e3 := errors.New("e1"), fmt.Errorf("e2: %w", credentials.ErrUnavailable), errors.New("e3")
	p.FailIssue(e1, e2)
	p.FailIssue(e3)
	for i, want := range []error{e1, e2, e3} {
		c, err := p.Issue(context.Background(), request(fmt.Sprint(i)))
		if err != want || c != nil {
			t.Fatalf("Issue %d = %v, %v; want %v", i, c, err, want)
		}
	}
	c, err := p.Issue(context.Background(), request("3"))
	if err != nil || c == nil {
		t.Fatalf("Issue after the failures = %v, %v", c, err)
	}
	if p.Issued() != 1 || len(p.Tokens()) != 1 {
		t.Errorf("Issued %d, want 1", p.Issued())
	}
	got := p.Requests()
	if len(got) != 4 {
		t.Fatalf("%d requests, want 4", len(got))
	}
	for i, r := range got {
		if r.TaskID != fmt.Sprint(i) {
			t.Errorf("request %d is of task %q", i, r.TaskID)
		}
	}
	p.FailIssue() // nothing queued
	if _, err := p.Issue(context.Background(), request("4")); err != nil {
		t.Errorf("FailIssue() queued a failure: %v", err)
	}
}

// TestFailRevokeOrder: queued revocation failures come out in order; a
// failed revocation leaves the lease active; every call counts as an attempt.
func TestFailRevokeOrder(t *testing.T) {
	p := credentialstest.NewProvider()
	c, err := p.Issue(context.Background(), request("t"))
	if err != nil {
		t.Fatal(err)
	}
	e1, e2 := errors.New("r1"), credentials.ErrNotRevocable
	p.FailRevoke(e1)
	p.FailRevoke(e2)
	for i, want := range []error{e1, e2} {
		if err := p.Revoke(context.Background(), c); err != want {
			t.Fatalf("Revoke %d = %v, want %v", i, err, want)
		}
		if p.Revoked(c.LeaseID) || !slices.Equal(p.Active(), []string{c.LeaseID}) {
			t.Errorf("failed revocation %d revoked the lease", i)
		}
	}
	if err := p.Revoke(context.Background(), c); err != nil {
		t.Fatalf("Revoke = %v", err)
	}
	if !p.Revoked(c.LeaseID) || len(p.Active()) != 0 || p.RevokeAttempts() != 3 {
		t.Errorf("Revoked %v, Active %v, attempts %d", p.Revoked(c.LeaseID), p.Active(), p.RevokeAttempts())
	}
	// Revoking again is no error, and counts.
	if err := p.Revoke(context.Background(), c); err != nil || p.RevokeAttempts() != 4 {
		t.Errorf("second Revoke = %v, attempts %d", err, p.RevokeAttempts())
	}
}

// TestRevokeUnknownLease: a lease the provider never issued is refused,
// naming it, and not recorded as revoked.
func TestRevokeUnknownLease(t *testing.T) {
	p := credentialstest.NewProvider()
	err := p.Revoke(context.Background(), &credentials.Credential{LeaseID: "lease-elsewhere"})
	if err == nil || !strings.Contains(err.Error(), "lease-elsewhere") {
		t.Errorf("Revoke(unknown) = %v", err)
	}
	if p.Revoked("lease-elsewhere") || p.RevokeAttempts() != 1 {
		t.Errorf("Revoked %v, attempts %d", p.Revoked("lease-elsewhere"), p.RevokeAttempts())
	}
}

// TestCancelledContext: Issue and Revoke with a done context fail with its
// error, and neither issue nor revoke; the queued failures stay queued.
func TestCancelledContext(t *testing.T) {
	p := credentialstest.NewProvider()
	c, err := p.Issue(context.Background(), request("t"))
	if err != nil {
		t.Fatal(err)
	}
	p.FailIssue(credentialstest.ErrFake)
	p.FailRevoke(credentialstest.ErrFake)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c2, err := p.Issue(ctx, request("t")); !errors.Is(err, context.Canceled) || c2 != nil {
		t.Errorf("Issue(cancelled) = %v, %v", c2, err)
	}
	if err := p.Revoke(ctx, c); !errors.Is(err, context.Canceled) {
		t.Errorf("Revoke(cancelled) = %v", err)
	}
	if p.Issued() != 1 || p.Revoked(c.LeaseID) || len(p.Requests()) != 2 {
		t.Errorf("Issued %d, Revoked %v, %d requests", p.Issued(), p.Revoked(c.LeaseID), len(p.Requests()))
	}
	if _, err := p.Issue(context.Background(), request("t")); err != credentialstest.ErrFake {
		t.Errorf("queued issue failure lost: %v", err)
	}
	if err := p.Revoke(context.Background(), c); err != credentialstest.ErrFake {
		t.Errorf("queued revoke failure lost: %v", err)
	}
}

// TestRevokeAttemptsCountsEveryCall: RevokeAttempts is documented as how many
// times Revoke was called, which includes a call with a done context.
func TestRevokeAttemptsCountsEveryCall(t *testing.T) {
	p := credentialstest.NewProvider()
	c, err := p.Issue(context.Background(), request("t"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = p.Revoke(ctx, c)
	if got := p.RevokeAttempts(); got != 1 {
		t.Errorf("DOC MISMATCH: RevokeAttempts = %d after one Revoke call with a done context; "+
			"its doc says it counts every call (Issue, by contrast, records such calls in Requests)", got)
	}
}

// TestHold: Hold keeps issuances waiting, counted by Issuing, until
// released; release is idempotent; later issuances are not held.
func TestHold(t *testing.T) {
	p := credentialstest.NewProvider()
	release := p.Hold()
	const n = 5
	chans := make([]<-chan issued, n)
	for i := range n {
		chans[i] = goIssue(p, context.Background(), request(fmt.Sprint(i)))
	}
	waitUntil(t, "every Issue is held", func() bool { return p.Issuing() == n })
	if p.Issued() != 0 || len(p.Requests()) != n {
		t.Errorf("held: Issued %d, %d requests", p.Issued(), len(p.Requests()))
	}
	for _, ch := range chans {
		select {
		case r := <-ch:
			t.Fatalf("Issue returned while held: %v, %v", r.c, r.err)
		default:
		}
	}
	release()
	release()
	for _, ch := range chans {
		if r := recv(t, ch); r.err != nil || r.c == nil {
			t.Errorf("released Issue = %v, %v", r.c, r.err)
		}
	}
	if p.Issuing() != 0 || p.Issued() != n {
		t.Errorf("after release: Issuing %d, Issued %d", p.Issuing(), p.Issued())
	}
	if c, err := p.Issue(context.Background(), request("later")); err != nil || c == nil {
		t.Errorf("Issue after release = %v, %v", c, err)
	}
}

// TestHoldCancelled: a held Issue returns its context's error when the
// context ends, consuming no queued failure.
func TestHoldCancelled(t *testing.T) {
	p := credentialstest.NewProvider()
	release := p.Hold()
	defer release()
	p.FailIssue(credentialstest.ErrFake)
	ctx, cancel := context.WithCancel(context.Background())
	ch := goIssue(p, ctx, request("t"))
	waitUntil(t, "the Issue is held", func() bool { return p.Issuing() == 1 })
	cancel()
	if r := recv(t, ch); !errors.Is(r.err, context.Canceled) || r.c != nil {
		t.Errorf("cancelled held Issue = %v, %v", r.c, r.err)
	}
	if p.Issuing() != 0 || p.Issued() != 0 {
		t.Errorf("Issuing %d, Issued %d", p.Issuing(), p.Issued())
	}
	release()
	if _, err := p.Issue(context.Background(), request("t")); err != credentialstest.ErrFake {
		t.Errorf("queued failure lost: %v", err)
	}
}

// TestHoldTwice: each Hold has its own gate: an Issue waits on the gate
// current when it started, and releasing an older hold does not release a
// newer one.
func TestHoldTwice(t *testing.T) {
	p := credentialstest.NewProvider()
	r1 := p.Hold()
	first := goIssue(p, context.Background(), request("1"))
	waitUntil(t, "the first Issue is held", func() bool { return p.Issuing() == 1 })
	r2 := p.Hold()
	second := goIssue(p, context.Background(), request("2"))
	waitUntil(t, "the second Issue is held", func() bool { return p.Issuing() == 2 })
	r1()
	if r := recv(t, first); r.err != nil {
		t.Fatal(r.err)
	}
	select {
	case r := <-second:
		t.Fatalf("releasing the first hold released the second: %v, %v", r.c, r.err)
	default:
	}
	if p.Issuing() != 1 {
		t.Errorf("Issuing %d, want the second still held", p.Issuing())
	}
	// A new Issue is still held by the second hold.
	third := goIssue(p, context.Background(), request("3"))
	waitUntil(t, "the third Issue is held", func() bool { return p.Issuing() == 2 })
	r2()
	for _, ch := range []<-chan issued{second, third} {
		if r := recv(t, ch); r.err != nil {
			t.Error(r.err)
		}
	}
	if p.Issued() != 3 {
		t.Errorf("Issued %d", p.Issued())
	}
}

// TestActiveAndRevoked: Active lists the issued, unrevoked leases, sorted.
func TestActiveAndRevoked(t *testing.T) {
	p := credentialstest.NewProvider()
	var ids []string
	var creds []*credentials.Credential
	for i := range 4 {
		c, err := p.Issue(context.Background(), request(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.LeaseID)
		creds = append(creds, c)
	}
	slices.Sort(ids)
	if !slices.Equal(p.Active(), ids) {
		t.Errorf("Active = %v, want %v", p.Active(), ids)
	}
	for _, i := range []int{2, 0} {
		if err := p.Revoke(context.Background(), creds[i]); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for i, c := range creds {
		revoked := i == 0 || i == 2
		if p.Revoked(c.LeaseID) != revoked {
			t.Errorf("Revoked(%d) = %v", i, !revoked)
		}
		if !revoked {
			want = append(want, c.LeaseID)
		}
	}
	slices.Sort(want)
	if !slices.Equal(p.Active(), want) {
		t.Errorf("Active = %v, want %v", p.Active(), want)
	}
	if p.Revoked("never-issued") {
		t.Error("Revoked(never-issued)")
	}
	if p.Issued() != 4 || len(p.Tokens()) != 4 || p.RevokeAttempts() != 2 {
		t.Errorf("counts: %d %d %d", p.Issued(), len(p.Tokens()), p.RevokeAttempts())
	}
}

// TestConcurrentUse: Issue, Revoke and the accessors are safe together
// (run with -race).
func TestConcurrentUse(t *testing.T) {
	p := credentialstest.NewProvider()
	p.FailIssue(credentialstest.ErrFake, credentialstest.ErrFake)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for i := range 50 {
		wg.Go(func() {
			c, err := p.Issue(context.Background(), request(fmt.Sprint(i)))
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				return
			}
			if i%2 == 0 {
				if err := p.Revoke(context.Background(), c); err != nil {
					t.Error(err)
				}
			}
			_, _, _, _ = p.Active(), p.Tokens(), p.Requests(), p.Issuing()
		})
	}
	wg.Wait()
	if failed != 2 || p.Issued() != 48 || len(p.Requests()) != 50 {
		t.Errorf("failed %d, issued %d, %d requests", failed, p.Issued(), len(p.Requests()))
	}
	if got := len(p.Active()) + p.RevokeAttempts(); got != 48 {
		t.Errorf("active + revoked = %d, want 48", got)
	}
}

// TestWithBroker: the fake provider behind a broker: one issuance per
// lease, revoked with the task, tokens never in the broker's output.
func TestWithBroker(t *testing.T) {
	p := credentialstest.NewProvider(credentialstest.WithTokenPrefix("CANARY-"))
	b := credentials.NewBroker(credentials.WithProvider("p", p))
	c, err := b.Lease(context.Background(), request("t"))
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%v %+v %#v", c, c, *c); strings.Contains(s, "CANARY-") {
		t.Errorf("credential prints its token: %s", s)
	}
	if _, err := b.Revoke(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	if !p.Revoked(c.LeaseID) || len(p.Active()) != 0 || p.Issued() != 1 {
		t.Errorf("Revoked %v, Active %v, Issued %d", p.Revoked(c.LeaseID), p.Active(), p.Issued())
	}
}
