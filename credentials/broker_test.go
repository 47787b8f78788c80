package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
)

// fakeClock is a controllable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// clockProvider issues "<prefix>-<n>" expiring ttl after its clock's now,
// and records revocations. Its hooks, when set, replace the default
// behaviour.
type clockProvider struct {
	prefix string
	clock  *fakeClock
	ttl    time.Duration

	issue  func(ctx context.Context, req credentials.Request) (*credentials.Credential, error)
	revoke func(ctx context.Context, c *credentials.Credential) error

	issued  atomic.Int64
	mu      sync.Mutex
	reqs    []credentials.Request
	revoked []string // lease IDs
}

func (p *clockProvider) Issue(ctx context.Context, req credentials.Request) (*credentials.Credential, error) {
	n := p.issued.Add(1)
	p.mu.Lock()
	p.reqs = append(p.reqs, req)
	p.mu.Unlock()
	if p.issue != nil {
		return p.issue(ctx, req)
	}
	ttl := p.ttl
	if ttl == 0 {
		ttl = time.Minute
	}
	return &credentials.Credential{
		Secret:    credentials.NewSecret(fmt.Sprintf("%s-%d", p.prefix, n)),
		ExpiresAt: p.clock.Now().Add(ttl),
	}, nil
}

func (p *clockProvider) Revoke(ctx context.Context, c *credentials.Credential) error {
	p.mu.Lock()
	p.revoked = append(p.revoked, c.LeaseID)
	p.mu.Unlock()
	if p.revoke != nil {
		return p.revoke(ctx, c)
	}
	return nil
}

func (p *clockProvider) Issued() int { return int(p.issued.Load()) }

func (p *clockProvider) Revoked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.revoked...)
}

func lreq(task, provider, audience string, scopes ...string) credentials.Request {
	return credentials.Request{
		Requirement: credentials.Requirement{Name: "cred", Provider: provider, Audience: audience, Scopes: scopes},
		TaskID:      task,
		Agent:       "spiffe://example.org/agent",
	}
}

func TestLeaseCacheKey(t *testing.T) {
	tests := []struct {
		name   string
		first  credentials.Request
		second credentials.Request
		shared bool
	}{
		{name: "identical", first: lreq("t1", "gh", "api", "read"), second: lreq("t1", "gh", "api", "read"), shared: true},
		{name: "scopes in different order", first: lreq("t1", "gh", "api", "read", "write"), second: lreq("t1", "gh", "api", "write", "read"), shared: true},
		{name: "repeated scope", first: lreq("t1", "gh", "api", "read", "write"), second: lreq("t1", "gh", "api", "write", "read", "write"), shared: true},
		{name: "no scopes", first: lreq("t1", "gh", "api"), second: lreq("t1", "gh", "api"), shared: true},
		{name: "different audience", first: lreq("t1", "gh", "api"), second: lreq("t1", "gh", "uploads"), shared: false},
		{name: "audience vs none", first: lreq("t1", "gh", "api"), second: lreq("t1", "gh", ""), shared: false},
		{name: "fewer scopes", first: lreq("t1", "gh", "api", "read", "write"), second: lreq("t1", "gh", "api", "read"), shared: false},
		{name: "different scopes", first: lreq("t1", "gh", "api", "read"), second: lreq("t1", "gh", "api", "write"), shared: false},
		{name: "scope vs none", first: lreq("t1", "gh", "api", "read"), second: lreq("t1", "gh", "api"), shared: false},
		{name: "different task", first: lreq("t1", "gh", "api", "read"), second: lreq("t2", "gh", "api", "read"), shared: false},
		{name: "different provider", first: lreq("t1", "gh", "api", "read"), second: lreq("t1", "gh2", "api", "read"), shared: false},
		{name: "no key ambiguity between fields", first: lreq("t1", "gh", "a b", "c"), second: lreq("t1", "gh", "a", "b c"), shared: false},
		{name: "scope joined vs split", first: lreq("t1", "gh", "api", "a b"), second: lreq("t1", "gh", "api", "a", "b"), shared: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p1 := credentials.NewStaticProvider("secret-1")
			p2 := credentials.NewStaticProvider("secret-2")
			b := credentials.NewBroker(credentials.WithProvider("gh", p1), credentials.WithProvider("gh2", p2))
			c1, err := b.Lease(context.Background(), tc.first)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := b.Lease(context.Background(), tc.second)
			if err != nil {
				t.Fatal(err)
			}
			if got := c1.LeaseID == c2.LeaseID; got != tc.shared {
				t.Errorf("same LeaseID = %v, want %v", got, tc.shared)
			}
			wantIssued := 2
			if tc.shared {
				wantIssued = 1
			}
			if got := p1.Issued() + p2.Issued(); got != wantIssued {
				t.Errorf("issued %d, want %d", got, wantIssued)
			}
		})
	}
}

func TestLeaseMetadata(t *testing.T) {
	clock := newFakeClock()
	p := &clockProvider{prefix: "tok", clock: clock, ttl: 10 * time.Minute}
	b := credentials.NewBroker(credentials.WithProvider("gh", p), credentials.WithClock(clock.Now))
	scopes := []string{"write", "read"}
	req := credentials.Request{
		Requirement: credentials.Requirement{Name: "github", Provider: "gh", Audience: "api.github.com", Scopes: scopes, TTL: time.Minute},
		TaskID:      "task-1",
		Agent:       "spiffe://example.org/agent",
		NotAfter:    clock.Now().Add(time.Hour),
	}
	c, err := b.Lease(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "github" || c.Provider != "gh" || c.Audience != "api.github.com" || c.TaskID != "task-1" {
		t.Errorf("metadata = %+v", c)
	}
	if strings.Join(c.Scopes, ",") != "read,write" {
		t.Errorf("Scopes = %q, want sorted", c.Scopes)
	}
	scopes[0] = "admin"
	if c.Scopes[1] != "write" {
		t.Error("credential Scopes alias the request's slice")
	}
	if !strings.HasPrefix(c.LeaseID, "lease-") || len(c.LeaseID) != len("lease-")+24 {
		t.Errorf("LeaseID = %q", c.LeaseID)
	}
	if !c.IssuedAt.Equal(clock.Now()) {
		t.Errorf("IssuedAt = %v, want broker clock %v", c.IssuedAt, clock.Now())
	}
	if c.Secret.Reveal() != "tok-1" {
		t.Errorf("Secret = %q", c.Secret.Reveal())
	}
	// The provider saw the full request.
	if len(p.reqs) != 1 || p.reqs[0].TaskID != "task-1" || p.reqs[0].Agent != req.Agent ||
		!p.reqs[0].NotAfter.Equal(req.NotAfter) || p.reqs[0].TTL != time.Minute || p.reqs[0].Audience != "api.github.com" {
		t.Errorf("provider request = %+v", p.reqs)
	}
}

func TestLeaseKeepsProviderFields(t *testing.T) {
	clock := newFakeClock()
	issuedAt := clock.Now().Add(-time.Second)
	p := &clockProvider{clock: clock, issue: func(context.Context, credentials.Request) (*credentials.Credential, error) {
		return &credentials.Credential{
			LeaseID:   "provider-lease-7",
			IssuedAt:  issuedAt,
			ExpiresAt: clock.Now().Add(time.Hour),
			Secret:    credentials.NewSecret("v"),
			// The broker overwrites what the requirement decides.
			Name: "wrong", Provider: "wrong", Audience: "wrong", TaskID: "wrong", Agent: "wrong",
		}, nil
	}}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now))
	c, err := b.Lease(context.Background(), lreq("t", "p", "aud", "s"))
	if err != nil {
		t.Fatal(err)
	}
	if c.LeaseID != "provider-lease-7" {
		t.Errorf("LeaseID = %q, want the provider's", c.LeaseID)
	}
	if !c.IssuedAt.Equal(issuedAt) {
		t.Errorf("IssuedAt = %v, want the provider's %v", c.IssuedAt, issuedAt)
	}
	if c.Name != "cred" || c.Provider != "p" || c.Audience != "aud" || c.TaskID != "t" || strings.Join(c.Scopes, ",") != "s" {
		t.Errorf("requirement metadata not applied: %+v", c)
	}
}

func TestLeaseConcurrentOneIssue(t *testing.T) {
	p := credentials.NewStaticProvider("secret")
	b := credentials.NewBroker(credentials.WithProvider("gh", p))
	const n = 100
	var wg sync.WaitGroup
	start := make(chan struct{})
	creds := make([]*credentials.Credential, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			scopes := []string{"read", "write"}
			if i%2 == 1 {
				scopes = []string{"write", "read"}
			}
			creds[i], errs[i] = b.Lease(context.Background(), lreq("task", "gh", "api", scopes...))
		}(i)
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Lease %d: %v", i, errs[i])
		}
		if creds[i].LeaseID != creds[0].LeaseID {
			t.Fatalf("Lease %d returned a different credential", i)
		}
	}
	if got := p.Issued(); got != 1 {
		t.Errorf("Issued = %d, want 1", got)
	}
}

func TestLeaseConcurrentManyKeys(t *testing.T) {
	p := credentials.NewStaticProvider("secret")
	b := credentials.NewBroker(credentials.WithProvider("gh", p))
	const tasks, audiences, rounds = 5, 4, 10
	var wg sync.WaitGroup
	for r := 0; r < rounds; r++ {
		for ti := 0; ti < tasks; ti++ {
			for a := 0; a < audiences; a++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					task, aud := fmt.Sprintf("t%d", ti), fmt.Sprintf("a%d", a)
					c, err := b.Lease(context.Background(), lreq(task, "gh", aud))
					if err != nil {
						t.Error(err)
						return
					}
					if c.TaskID != task || c.Audience != aud {
						t.Errorf("got lease for %s/%s, want %s/%s", c.TaskID, c.Audience, task, aud)
					}
				}()
			}
		}
	}
	wg.Wait()
	if got := p.Issued(); got != tasks*audiences {
		t.Errorf("Issued = %d, want %d", got, tasks*audiences)
	}
}

func TestLeaseRenewal(t *testing.T) {
	// The broker replaces a lease once it is within a tenth of its life of
	// expiry, and at most 30s: 30s for a 10-minute lease, 2s for a 20s one.
	tests := []struct {
		name    string
		ttl     time.Duration
		advance time.Duration
		renewed bool
	}{
		{name: "fresh", ttl: 10 * time.Minute, advance: 0, renewed: false},
		{name: "31s before expiry", ttl: 10 * time.Minute, advance: 10*time.Minute - 31*time.Second, renewed: false},
		{name: "30.001s before expiry", ttl: 10 * time.Minute, advance: 10*time.Minute - 30*time.Second - time.Millisecond, renewed: false},
		{name: "exactly 30s before expiry", ttl: 10 * time.Minute, advance: 10*time.Minute - 30*time.Second, renewed: true},
		{name: "within 30s", ttl: 10 * time.Minute, advance: 10*time.Minute - 15*time.Second, renewed: true},
		{name: "at expiry", ttl: 10 * time.Minute, advance: 10 * time.Minute, renewed: true},
		{name: "long after expiry", ttl: 10 * time.Minute, advance: time.Hour, renewed: true},
		{name: "short lease, 3s before expiry", ttl: 20 * time.Second, advance: 17 * time.Second, renewed: false},
		{name: "short lease, 2s before expiry", ttl: 20 * time.Second, advance: 18 * time.Second, renewed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			p := &clockProvider{prefix: "tok", clock: clock, ttl: tc.ttl}
			b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now))
			c1, err := b.Lease(context.Background(), lreq("t", "p", "aud"))
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(tc.advance)
			c2, err := b.Lease(context.Background(), lreq("t", "p", "aud"))
			if err != nil {
				t.Fatal(err)
			}
			if got := c1.LeaseID != c2.LeaseID; got != tc.renewed {
				t.Errorf("renewed = %v, want %v", got, tc.renewed)
			}
			wantIssued := 1
			if tc.renewed {
				wantIssued = 2
				if c2.Secret.Reveal() != "tok-2" || c2.LeaseID == c1.LeaseID {
					t.Errorf("renewed lease %s / %s is not new", c2.LeaseID, c2.Secret.Reveal())
				}
				if !c2.IssuedAt.Equal(clock.Now()) {
					t.Errorf("renewed IssuedAt = %v, want %v", c2.IssuedAt, clock.Now())
				}
			}
			if p.Issued() != wantIssued {
				t.Errorf("Issued = %d, want %d", p.Issued(), wantIssued)
			}
			// The renewed lease is cached in turn.
			c3, err := b.Lease(context.Background(), lreq("t", "p", "aud"))
			if err != nil {
				t.Fatal(err)
			}
			if c3.LeaseID != c2.LeaseID || p.Issued() != wantIssued {
				t.Errorf("lease after renewal not cached")
			}
		})
	}
}

func TestLeaseWithoutExpiryIsKept(t *testing.T) {
	clock := newFakeClock()
	p := &clockProvider{clock: clock, issue: func(context.Context, credentials.Request) (*credentials.Credential, error) {
		return &credentials.Credential{Secret: credentials.NewSecret("forever")}, nil
	}}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now))
	c1, err := b.Lease(context.Background(), lreq("t", "p", "a"))
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(1000 * time.Hour)
	c2, err := b.Lease(context.Background(), lreq("t", "p", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if c1.LeaseID != c2.LeaseID || p.Issued() != 1 {
		t.Errorf("credential without expiry was replaced (issued %d)", p.Issued())
	}
}

func TestLeaseErrors(t *testing.T) {
	providerErr := errors.New("upstream said 503")
	tests := []struct {
		name    string
		issue   func(now time.Time) (*credentials.Credential, error)
		req     credentials.Request
		wantIs  error
		wantMsg []string
		// issueCalls is how often the provider was called.
		issueCalls int
	}{
		{
			name:    "unknown provider",
			req:     lreq("t", "nope", "a"),
			wantIs:  credentials.ErrUnknownProvider,
			wantMsg: []string{`"nope"`},
		},
		{
			name:    "empty task",
			req:     lreq("", "p", "a"),
			wantMsg: []string{"without a task"},
		},
		{
			name:       "provider error wrapped",
			issue:      func(time.Time) (*credentials.Credential, error) { return nil, providerErr },
			req:        lreq("t", "p", "a"),
			wantIs:     providerErr,
			wantMsg:    []string{`provider "p"`, "upstream said 503"},
			issueCalls: 1,
		},
		{
			name:       "nil credential",
			issue:      func(time.Time) (*credentials.Credential, error) { return nil, nil },
			req:        lreq("t", "p", "a"),
			wantMsg:    []string{`provider "p"`, "empty credential"},
			issueCalls: 1,
		},
		{
			name: "empty secret",
			issue: func(now time.Time) (*credentials.Credential, error) {
				return &credentials.Credential{ExpiresAt: now.Add(time.Hour)}, nil
			},
			req:        lreq("t", "p", "a"),
			wantMsg:    []string{"empty credential"},
			issueCalls: 1,
		},
		{
			name: "empty string secret",
			issue: func(now time.Time) (*credentials.Credential, error) {
				return &credentials.Credential{Secret: credentials.NewSecret(""), ExpiresAt: now.Add(time.Hour)}, nil
			},
			req:        lreq("t", "p", "a"),
			wantMsg:    []string{"empty credential"},
			issueCalls: 1,
		},
		{
			name: "expired at issue",
			issue: func(now time.Time) (*credentials.Credential, error) {
				return &credentials.Credential{Secret: credentials.NewSecret("old"), ExpiresAt: now.Add(-time.Second)}, nil
			},
			req:        lreq("t", "p", "a"),
			wantMsg:    []string{`provider "p"`, "expired credential"},
			issueCalls: 1,
		},
		{
			name: "expiring exactly now",
			issue: func(now time.Time) (*credentials.Credential, error) {
				return &credentials.Credential{Secret: credentials.NewSecret("old"), ExpiresAt: now}, nil
			},
			req:        lreq("t", "p", "a"),
			wantMsg:    []string{"expired credential"},
			issueCalls: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			p := &clockProvider{clock: clock}
			if tc.issue != nil {
				p.issue = func(context.Context, credentials.Request) (*credentials.Credential, error) {
					return tc.issue(clock.Now())
				}
			}
			b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now))
			c, err := b.Lease(context.Background(), tc.req)
			if err == nil {
				t.Fatalf("Lease = %+v, want error", c)
			}
			if c != nil {
				t.Errorf("credential returned with error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not contain %q", err, m)
				}
			}
			if p.Issued() != tc.issueCalls {
				t.Errorf("provider called %d times, want %d", p.Issued(), tc.issueCalls)
			}
			// A failed lease is not cached and nothing is left to revoke.
			if tc.issueCalls > 0 {
				if _, err := b.Lease(context.Background(), tc.req); err == nil {
					t.Error("second Lease succeeded")
				}
				if p.Issued() != 2*tc.issueCalls {
					t.Errorf("failed lease cached: provider called %d times", p.Issued())
				}
			}
			revs, err := b.Revoke(context.Background(), tc.req.TaskID)
			if err != nil || len(revs) != 0 || len(p.Revoked()) != 0 {
				t.Errorf("Revoke after failed leases = %v, %v (provider revoked %q)", revs, err, p.Revoked())
			}
		})
	}
}

func TestLeaseRetriesAfterProviderError(t *testing.T) {
	clock := newFakeClock()
	fail := true
	p := &clockProvider{clock: clock}
	p.issue = func(context.Context, credentials.Request) (*credentials.Credential, error) {
		if fail {
			return nil, errors.New("transient")
		}
		return &credentials.Credential{Secret: credentials.NewSecret("ok"), ExpiresAt: clock.Now().Add(time.Hour)}, nil
	}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now))
	if _, err := b.Lease(context.Background(), lreq("t", "p", "a")); err == nil {
		t.Fatal("first Lease succeeded")
	}
	fail = false
	c, err := b.Lease(context.Background(), lreq("t", "p", "a"))
	if err != nil || c.Secret.Reveal() != "ok" {
		t.Fatalf("Lease after recovery = %v, %v", c, err)
	}
}

func TestLeaseContextPassedToProvider(t *testing.T) {
	p := credentials.NewStaticProvider("v")
	b := credentials.NewBroker(credentials.WithProvider("p", p))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.Lease(ctx, lreq("t", "p", "a"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Lease with cancelled ctx: err = %v, want context.Canceled", err)
	}
	if p.Issued() != 0 {
		t.Errorf("Issued = %d", p.Issued())
	}
}

func TestRevoke(t *testing.T) {
	base := time.Now()
	clock := &fakeClock{t: base}
	p := credentials.NewStaticProvider("static-secret")
	b := credentials.NewBroker(credentials.WithProvider("gh", p), credentials.WithClock(clock.Now))
	ctx := context.Background()

	ttl := credentials.Request{
		Requirement: credentials.Requirement{Name: "a", Provider: "gh", Audience: "a", TTL: time.Minute},
		TaskID:      "t1",
	}
	a1, err := b.Lease(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	bLease, err := b.Lease(ctx, lreq("t1", "gh", "b"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.Lease(ctx, lreq("t2", "gh", "a"))
	if err != nil {
		t.Fatal(err)
	}
	// Within a tenth of its life of a1's expiry: a1 is replaced by a2.
	clock.Advance(55 * time.Second)
	a2, err := b.Lease(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if a2 == a1 {
		t.Fatal("lease not renewed")
	}
	if p.Issued() != 4 {
		t.Fatalf("Issued = %d, want 4", p.Issued())
	}

	revs, err := b.Revoke(ctx, "t1")
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	got := map[string]bool{}
	for _, r := range revs {
		if r.Err != nil {
			t.Errorf("revocation of %s failed: %v", r.Credential.LeaseID, r.Err)
		}
		got[r.Credential.LeaseID] = true
	}
	want := []*credentials.Credential{a1, bLease, a2}
	if len(revs) != len(want) {
		t.Errorf("%d revocations, want %d", len(revs), len(want))
	}
	for _, c := range want {
		if !got[c.LeaseID] {
			t.Errorf("lease %s (%s) not in revocations", c.LeaseID, c.Audience)
		}
		if err := p.Check(c.LeaseID); !errors.Is(err, credentials.ErrRevoked) {
			t.Errorf("Check(%s) = %v, want ErrRevoked", c.LeaseID, err)
		}
	}
	if err := p.Check(other.LeaseID); err != nil {
		t.Errorf("other task's lease revoked: %v", err)
	}

	// The task is forgotten: a second Revoke has nothing to do, and a new
	// Lease issues afresh.
	revs, err = b.Revoke(ctx, "t1")
	if revs != nil || err != nil {
		t.Errorf("second Revoke = %v, %v; want nil, nil", revs, err)
	}
	a3, err := b.Lease(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if a3 == a2 || a3.LeaseID == a2.LeaseID || p.Issued() != 5 {
		t.Errorf("Lease after Revoke reused a revoked lease (issued %d)", p.Issued())
	}
	if err := p.Check(a3.LeaseID); err != nil {
		t.Errorf("new lease already revoked")
	}
	// The other task's cache is untouched.
	o2, err := b.Lease(ctx, lreq("t2", "gh", "a"))
	if err != nil || o2.LeaseID != other.LeaseID {
		t.Errorf("other task's lease not cached after Revoke of t1")
	}
}

func TestRevokeUnknownTask(t *testing.T) {
	b := credentials.NewBroker()
	revs, err := b.Revoke(context.Background(), "never")
	if revs != nil || err != nil {
		t.Errorf("Revoke = %v, %v", revs, err)
	}
}

func TestRevokeJoinsErrors(t *testing.T) {
	clock := newFakeClock()
	errA := errors.New("revoke endpoint down")
	failing := &clockProvider{prefix: "f", clock: clock, revoke: func(context.Context, *credentials.Credential) error { return errA }}
	good := &clockProvider{prefix: "g", clock: clock}
	b := credentials.NewBroker(
		credentials.WithProvider("failing", failing),
		credentials.WithProvider("good", good),
		credentials.WithClock(clock.Now),
	)
	ctx := context.Background()
	f1, err := b.Lease(ctx, lreq("t", "failing", "x"))
	if err != nil {
		t.Fatal(err)
	}
	g1, err := b.Lease(ctx, lreq("t", "good", "x"))
	if err != nil {
		t.Fatal(err)
	}
	f2, err := b.Lease(ctx, lreq("t", "failing", "y"))
	if err != nil {
		t.Fatal(err)
	}
	revs, err := b.Revoke(ctx, "t")
	if err == nil {
		t.Fatal("Revoke succeeded with a failing provider")
	}
	if !errors.Is(err, errA) {
		t.Errorf("error %v does not wrap the provider's", err)
	}
	for _, id := range []string{f1.LeaseID, f2.LeaseID} {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("error %q does not name lease %s", err, id)
		}
	}
	if strings.Contains(err.Error(), g1.LeaseID) {
		t.Errorf("error %q names the good lease", err)
	}
	if len(revs) != 3 {
		t.Fatalf("%d revocations, want 3", len(revs))
	}
	for _, r := range revs {
		wantErr := r.Credential.Provider == "failing"
		if (r.Err != nil) != wantErr {
			t.Errorf("revocation of %s (%s): Err = %v", r.Credential.LeaseID, r.Credential.Provider, r.Err)
		}
		if wantErr && !errors.Is(r.Err, errA) {
			t.Errorf("revocation Err %v does not wrap the provider's", r.Err)
		}
	}
	// Every lease was attempted, the failing ones did not stop the rest.
	if got := good.Revoked(); len(got) != 1 || got[0] != g1.LeaseID {
		t.Errorf("good provider revoked %q", got)
	}
	if got := failing.Revoked(); len(got) != 2 {
		t.Errorf("failing provider asked to revoke %q", got)
	}
	// The task is forgotten even though revocation failed.
	if revs, err := b.Revoke(ctx, "t"); revs != nil || err != nil {
		t.Errorf("second Revoke = %v, %v", revs, err)
	}
}

func TestLeaseDuringRevoke(t *testing.T) {
	clock := newFakeClock()
	entered := make(chan struct{})
	release := make(chan struct{})
	p := &clockProvider{clock: clock}
	p.issue = func(context.Context, credentials.Request) (*credentials.Credential, error) {
		close(entered)
		<-release
		return &credentials.Credential{Secret: credentials.NewSecret("late"), ExpiresAt: clock.Now().Add(time.Hour)}, nil
	}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now))
	type result struct {
		c   *credentials.Credential
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := b.Lease(context.Background(), lreq("t", "p", "a"))
		done <- result{c, err}
	}()
	<-entered
	if revs, err := b.Revoke(context.Background(), "t"); err != nil || len(revs) != 0 {
		t.Errorf("Revoke during issue = %v, %v", revs, err)
	}
	close(release)
	r := <-done
	if r.err == nil {
		t.Fatalf("Lease succeeded after its task was revoked: %+v", r.c)
	}
	if r.c != nil {
		t.Error("credential returned with error")
	}
	if got := p.Revoked(); len(got) != 1 || got[0] == "" {
		t.Errorf("late lease not revoked: %q", got)
	}
}

func TestStaticProvider(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		ttl      time.Duration
		notAfter time.Duration // from now; 0 for none
		wantTTL  time.Duration
		capped   bool
	}{
		{name: "default TTL", wantTTL: credentials.DefaultTTL},
		{name: "negative TTL is default", ttl: -time.Minute, wantTTL: credentials.DefaultTTL},
		{name: "requirement TTL", ttl: 30 * time.Second, wantTTL: 30 * time.Second},
		{name: "long TTL", ttl: 24 * time.Hour, wantTTL: 24 * time.Hour},
		{name: "capped by NotAfter", ttl: time.Hour, notAfter: 10 * time.Minute, capped: true},
		{name: "default TTL capped by NotAfter", notAfter: time.Minute, capped: true},
		{name: "later NotAfter does not extend", ttl: time.Minute, notAfter: time.Hour, wantTTL: time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := credentials.NewStaticProvider("the-value")
			req := lreq("t", "s", "a")
			req.TTL = tc.ttl
			before := time.Now()
			if tc.notAfter != 0 {
				req.NotAfter = before.Add(tc.notAfter)
			}
			c, err := p.Issue(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			if c.Secret.Reveal() != "the-value" {
				t.Errorf("Secret = %q", c.Secret.Reveal())
			}
			if c.IssuedAt.Before(before) || c.IssuedAt.After(after) {
				t.Errorf("IssuedAt %v not between %v and %v", c.IssuedAt, before, after)
			}
			if tc.capped {
				if !c.ExpiresAt.Equal(req.NotAfter) {
					t.Errorf("ExpiresAt = %v, want NotAfter %v", c.ExpiresAt, req.NotAfter)
				}
			} else if got := c.ExpiresAt.Sub(c.IssuedAt); got != tc.wantTTL {
				t.Errorf("lifetime = %v, want %v", got, tc.wantTTL)
			}
			if p.Issued() != 1 {
				t.Errorf("Issued = %d", p.Issued())
			}
		})
	}
}

func TestStaticProviderRevokeAndCheck(t *testing.T) {
	p := credentials.NewStaticProvider("v")
	c1 := &credentials.Credential{LeaseID: "l1"}
	c2 := &credentials.Credential{LeaseID: "l2"}
	if err := p.Check("l1"); err != nil {
		t.Errorf("Check before Revoke = %v", err)
	}
	if err := p.Revoke(context.Background(), c1); err != nil {
		t.Fatal(err)
	}
	if err := p.Check("l1"); !errors.Is(err, credentials.ErrRevoked) {
		t.Errorf("Check(l1) = %v, want ErrRevoked", err)
	}
	if err := p.Check("l2"); err != nil {
		t.Errorf("Check(l2) = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Revoke(ctx, c2); !errors.Is(err, context.Canceled) {
		t.Errorf("Revoke with cancelled ctx = %v", err)
	}
	if err := p.Check("l2"); err != nil {
		t.Errorf("lease revoked despite cancelled ctx: %v", err)
	}
	if _, err := p.Issue(ctx, lreq("t", "s", "a")); !errors.Is(err, context.Canceled) {
		t.Errorf("Issue with cancelled ctx = %v", err)
	}
	if p.Issued() != 0 {
		t.Errorf("Issued = %d after a cancelled Issue", p.Issued())
	}
}

func TestCredentialExpired(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		exp  time.Time
		want bool
	}{
		{name: "no expiry", exp: time.Time{}, want: false},
		{name: "future", exp: now.Add(time.Nanosecond), want: false},
		{name: "now", exp: now, want: true},
		{name: "past", exp: now.Add(-time.Hour), want: true},
	}
	for _, tc := range tests {
		c := &credentials.Credential{ExpiresAt: tc.exp}
		if got := c.Expired(now); got != tc.want {
			t.Errorf("%s: Expired = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNewLeaseIDUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := credentials.NewLeaseID()
		if seen[id] {
			t.Fatalf("NewLeaseID repeated %s", id)
		}
		seen[id] = true
	}
}
