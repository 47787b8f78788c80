package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/credentialstest"
)

// netErr is a net.Error, timing out or not.
type netErr struct{ timeout bool }

func (e netErr) Error() string {
	return fmt.Sprintf("dial tcp 10.0.0.1:443: i/o (timeout=%v)", e.timeout)
}
func (e netErr) Timeout() bool   { return e.timeout }
func (e netErr) Temporary() bool { return e.timeout }

var _ net.Error = netErr{}

func unavailable(i int) error {
	return fmt.Errorf("%w: HTTP 503 (try %d)", credentials.ErrUnavailable, i)
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// TestRetryTemporaryExhausted: a temporary failure is retried up to the
// configured attempts; then Lease fails with ErrUnavailable and an
// EventFailed counting the attempts.
func TestRetryTemporaryExhausted(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"wraps ErrUnavailable", unavailable(1)},
		{"net.Error timeout", netErr{timeout: true}},
		{"wrapped net.Error timeout", fmt.Errorf("token endpoint: %w", &net.OpError{Op: "dial", Net: "tcp", Err: netErr{timeout: true}})},
		// context.DeadlineExceeded is a net.Error that times out.
		{"the provider's own context.DeadlineExceeded", fmt.Errorf("upstream call: %w", context.DeadlineExceeded)},
	}
	for _, attempts := range []int{1, 2, 4} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/%d attempts", tc.name, attempts), func(t *testing.T) {
				clock := newFakeClock()
				log := &eventLog{}
				p, b := fakeBroker(clock, time.Hour, credentials.WithRetry(attempts, time.Millisecond), credentials.WithObserver(log.Observe))
				p.FailIssue(repeat(tc.err, attempts)...)
				c, err := b.Lease(context.Background(), leaseReq("t", "api", "read"))
				if err == nil || c != nil {
					t.Fatalf("Lease = %v, %v; want failure", c, err)
				}
				if !credentials.Temporary(err) {
					t.Errorf("error %v is not Temporary", err)
				}
				if !errors.Is(err, tc.err) {
					t.Errorf("error %v does not wrap the provider's %v", err, tc.err)
				}
				if !errors.Is(err, credentials.ErrUnavailable) {
					t.Errorf("error %v does not wrap ErrUnavailable", err)
				}
				if got := len(p.Requests()); got != attempts {
					t.Errorf("provider asked %d times, want %d", got, attempts)
				}
				ev := log.All()
				if len(ev) != 1 || ev[0].Kind != credentials.EventFailed || ev[0].Attempts != attempts || !errors.Is(ev[0].Err, tc.err) {
					t.Fatalf("events %+v; want one EventFailed with %d attempts", ev, attempts)
				}
				if ev[0].LeaseID != "" || ev[0].TaskID != "t" || ev[0].Provider != "p" || ev[0].Audience != "api" {
					t.Errorf("failed event %+v", ev[0])
				}
				// The failure is not cached: the next Lease asks again, and
				// succeeds now the provider recovered.
				if c, err := b.Lease(context.Background(), leaseReq("t", "api", "read")); err != nil || c == nil {
					t.Errorf("Lease after recovery = %v, %v", c, err)
				}
			})
		}
	}
}

// TestRetryTemporaryRecovers: temporary failures fewer than the attempts
// end in a lease, and the issued event counts every attempt.
func TestRetryTemporaryRecovers(t *testing.T) {
	clock := newFakeClock()
	log := &eventLog{}
	p, b := fakeBroker(clock, time.Hour, credentials.WithRetry(4, time.Millisecond), credentials.WithObserver(log.Observe))
	p.FailIssue(unavailable(1), netErr{timeout: true}, unavailable(3))
	c, err := b.Lease(context.Background(), leaseReq("t", "api"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.Requests()); got != 4 {
		t.Errorf("provider asked %d times, want 4", got)
	}
	ev := log.All()
	if len(ev) != 1 || ev[0].Kind != credentials.EventIssued || ev[0].Attempts != 4 || ev[0].LeaseID != c.LeaseID {
		t.Errorf("events %+v; want one EventIssued with 4 attempts", ev)
	}
}

// TestRetryPermanentNotRetried: an error that is not temporary fails at
// once, after exactly one Issue.
func TestRetryPermanentNotRetried(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"plain", credentialstest.ErrFake},
		{"wrapped", fmt.Errorf("invalid_grant: %w", credentialstest.ErrFake)},
		{"net.Error, not a timeout", netErr{timeout: false}},
		{"context.Canceled from the provider", fmt.Errorf("upstream call: %w", context.Canceled)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			log := &eventLog{}
			p, b := fakeBroker(clock, time.Hour, credentials.WithRetry(5, time.Millisecond), credentials.WithObserver(log.Observe))
			p.FailIssue(repeat(tc.err, 5)...)
			c, err := b.Lease(context.Background(), leaseReq("t", "api"))
			if err == nil || c != nil {
				t.Fatalf("Lease = %v, %v", c, err)
			}
			if !errors.Is(err, tc.err) || errors.Is(err, credentials.ErrUnavailable) || credentials.Temporary(err) {
				t.Errorf("error %v: want the provider's, not temporary", err)
			}
			if got := len(p.Requests()); got != 1 {
				t.Errorf("provider asked %d times, want 1", got)
			}
			if ev := log.All(); len(ev) != 1 || ev[0].Kind != credentials.EventFailed || ev[0].Attempts != 1 {
				t.Errorf("events %+v; want one EventFailed with 1 attempt", ev)
			}
		})
	}
}

// TestRetryAttemptTimeout: a provider that blocks until its context is done
// is cut off after the attempt timeout; that counts as a temporary failure
// and is retried.
func TestRetryAttemptTimeout(t *testing.T) {
	t.Run("every attempt times out", func(t *testing.T) {
		clock := newFakeClock()
		log := &eventLog{}
		p, b := fakeBroker(clock, time.Hour, credentials.WithRetry(3, time.Millisecond),
			credentials.WithAttemptTimeout(20*time.Millisecond), credentials.WithObserver(log.Observe))
		release := p.Hold() // never released: each Issue waits for its context
		defer release()
		c, err := b.Lease(context.Background(), leaseReq("t", "api"))
		if err == nil || c != nil {
			t.Fatalf("Lease = %v, %v", c, err)
		}
		if !credentials.Temporary(err) || !errors.Is(err, credentials.ErrUnavailable) {
			t.Errorf("error %v: want a temporary ErrUnavailable", err)
		}
		if !strings.Contains(err.Error(), "timed out") {
			t.Errorf("error %q does not say the attempt timed out", err)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap the attempt's context error", err)
		}
		if got := len(p.Requests()); got != 3 {
			t.Errorf("provider asked %d times, want 3", got)
		}
		if p.Issuing() != 0 {
			t.Errorf("%d issuances left running", p.Issuing())
		}
		if ev := log.All(); len(ev) != 1 || ev[0].Kind != credentials.EventFailed || ev[0].Attempts != 3 {
			t.Errorf("events %+v; want one EventFailed with 3 attempts", ev)
		}
	})
	t.Run("first attempt times out, second succeeds", func(t *testing.T) {
		clock := newFakeClock()
		var calls atomic.Int64
		var deadlines []time.Duration
		var mu sync.Mutex
		p := &funcProvider{issue: func(ctx context.Context, _ credentials.Request) (*credentials.Credential, error) {
			d, ok := ctx.Deadline()
			mu.Lock()
			if ok {
				deadlines = append(deadlines, time.Until(d))
			}
			mu.Unlock()
			if calls.Add(1) == 1 {
				<-ctx.Done() // hangs, ignoring everything but its context
				return nil, ctx.Err()
			}
			return &credentials.Credential{Secret: credentials.NewSecret(canary + "x"), ExpiresAt: clock.Now().Add(time.Hour)}, nil
		}}
		b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now),
			credentials.WithRetry(2, time.Millisecond), credentials.WithAttemptTimeout(30*time.Millisecond))
		start := time.Now()
		c, err := b.Lease(context.Background(), leaseReq("t", "api"))
		if err != nil {
			t.Fatalf("Lease: %v", err)
		}
		if c == nil || calls.Load() != 2 {
			t.Errorf("got %v after %d calls, want a lease after 2", c, calls.Load())
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("took %v with a 30ms attempt timeout", time.Since(start))
		}
		mu.Lock()
		defer mu.Unlock()
		if len(deadlines) != 2 || deadlines[0] > 30*time.Millisecond || deadlines[1] > 30*time.Millisecond {
			t.Errorf("attempt deadlines %v; want each within the attempt timeout", deadlines)
		}
	})
}

// funcProvider runs its functions.
type funcProvider struct {
	issue  func(ctx context.Context, req credentials.Request) (*credentials.Credential, error)
	revoke func(ctx context.Context, c *credentials.Credential) error
}

func (p *funcProvider) Issue(ctx context.Context, req credentials.Request) (*credentials.Credential, error) {
	return p.issue(ctx, req)
}

func (p *funcProvider) Revoke(ctx context.Context, c *credentials.Credential) error {
	if p.revoke == nil {
		return nil
	}
	return p.revoke(ctx, c)
}

// TestRetryNeverPastCallerDeadline: a caller whose deadline is shorter than
// the backoff gets one attempt and its answer before its deadline.
func TestRetryNeverPastCallerDeadline(t *testing.T) {
	clock := newFakeClock()
	log := &eventLog{}
	// Backoff of 10s to 20s before the second attempt; the caller has 500ms.
	p, b := fakeBroker(clock, time.Hour, credentials.WithRetry(5, 20*time.Second), credentials.WithObserver(log.Observe))
	p.FailIssue(repeat(unavailable(0), 5)...)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	c, err := b.Lease(ctx, leaseReq("t", "api"))
	elapsed := time.Since(start)
	if err == nil || c != nil {
		t.Fatalf("Lease = %v, %v", c, err)
	}
	if !errors.Is(err, credentials.ErrUnavailable) {
		t.Errorf("error %v: want the provider's ErrUnavailable", err)
	}
	if got := len(p.Requests()); got != 1 {
		t.Errorf("provider asked %d times, want 1", got)
	}
	if elapsed > 2*time.Second {
		t.Errorf("Lease took %v with a 500ms deadline", elapsed)
	}
	if ev := log.All(); len(ev) != 1 || ev[0].Kind != credentials.EventFailed || ev[0].Attempts != 1 {
		t.Errorf("events %+v; want one EventFailed with 1 attempt", ev)
	}
}

// TestRetryStopsAtCallerDeadline: with a short backoff and many attempts,
// attempts keep coming until the caller's deadline and none starts after it;
// an attempt in flight at the deadline is not retried.
func TestRetryStopsAtCallerDeadline(t *testing.T) {
	var mu sync.Mutex
	var starts []time.Time
	clock := newFakeClock()
	p := &funcProvider{issue: func(ctx context.Context, _ credentials.Request) (*credentials.Credential, error) {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		return nil, unavailable(0)
	}}
	log := &eventLog{}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now),
		credentials.WithRetry(1000, 20*time.Millisecond), credentials.WithObserver(log.Observe))
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_, err := b.Lease(ctx, leaseReq("t", "api"))
	returned := time.Now()
	if !errors.Is(err, credentials.ErrUnavailable) {
		t.Errorf("error %v; want the provider's last failure", err)
	}
	if returned.Sub(deadline) > time.Second {
		t.Errorf("Lease returned %v after its deadline", returned.Sub(deadline))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(starts) < 2 {
		t.Errorf("%d attempts; want retries within a 400ms deadline and a 20ms backoff", len(starts))
	}
	// The broker starts an attempt only if its backoff ends before the
	// deadline; the timer and the deadline may fire together, so an attempt
	// may start a hair after it (with a context already done). Allow for
	// scheduling, not for another backoff.
	for i, s := range starts {
		if s.Sub(deadline) > 100*time.Millisecond {
			t.Errorf("attempt %d started %v after the caller's deadline", i+1, s.Sub(deadline))
		}
	}
	if ev := log.All(); len(ev) != 1 || ev[0].Attempts != len(starts) {
		t.Errorf("events %+v; want one EventFailed with %d attempts", ev, len(starts))
	}
}

// TestRetryCallerDeadlineDuringAttempt: an attempt cut off by the caller's
// own deadline (shorter than the attempt timeout) is not retried and the
// caller gets its deadline error.
func TestRetryCallerDeadlineDuringAttempt(t *testing.T) {
	clock := newFakeClock()
	p, b := fakeBroker(clock, time.Hour, credentials.WithRetry(5, time.Millisecond), credentials.WithAttemptTimeout(time.Minute))
	release := p.Hold()
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := b.Lease(ctx, leaseReq("t", "api"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v; want the caller's deadline", err)
	}
	if got := len(p.Requests()); got != 1 {
		t.Errorf("provider asked %d times, want 1", got)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("Lease took %v with a 100ms deadline", time.Since(start))
	}
}

// TestRetryStopsWhenCallerCancels: a caller cancelled while an attempt
// fails temporarily gets no further attempt.
func TestRetryStopsWhenCallerCancels(t *testing.T) {
	clock := newFakeClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int64
	p := &funcProvider{issue: func(context.Context, credentials.Request) (*credentials.Credential, error) {
		calls.Add(1)
		cancel()
		return nil, unavailable(1)
	}}
	b := credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithClock(clock.Now), credentials.WithRetry(5, time.Hour))
	_, err := b.Lease(ctx, leaseReq("t", "api"))
	if err == nil {
		t.Fatal("Lease succeeded")
	}
	if calls.Load() != 1 {
		t.Errorf("provider asked %d times, want 1", calls.Load())
	}
}

// TestRetryOptionBounds: WithRetry below one attempt still makes one; a
// negative backoff is none.
func TestRetryOptionBounds(t *testing.T) {
	for _, attempts := range []int{0, -3} {
		clock := newFakeClock()
		p, b := fakeBroker(clock, time.Hour, credentials.WithRetry(attempts, -time.Second), credentials.WithAttemptTimeout(-1))
		p.FailIssue(unavailable(1))
		if _, err := b.Lease(context.Background(), leaseReq("t", "api")); !errors.Is(err, credentials.ErrUnavailable) {
			t.Errorf("WithRetry(%d): %v", attempts, err)
		}
		if got := len(p.Requests()); got != 1 {
			t.Errorf("WithRetry(%d): provider asked %d times, want 1", attempts, got)
		}
		if c, err := b.Lease(context.Background(), leaseReq("t", "api")); err != nil || c == nil {
			t.Errorf("WithRetry(%d) with a negative attempt timeout: %v, %v", attempts, c, err)
		}
	}
}

// TestRetryExhaustedWrapsErrUnavailable: once retries of a temporary failure
// run out, the error says the issuer was unavailable (errors.Is
// ErrUnavailable), whatever made the failure temporary: the provider's
// ErrUnavailable, a network timeout, or the broker's attempt timeout.
// (Regression: before 523e3a4 a net.Error timeout or a provider returning
// its cut-off context's error came out without ErrUnavailable.)
func TestRetryExhaustedWrapsErrUnavailable(t *testing.T) {
	t.Run("net.Error timeout", func(t *testing.T) {
		clock := newFakeClock()
		p, b := fakeBroker(clock, time.Hour, credentials.WithRetry(2, time.Millisecond))
		p.FailIssue(netErr{timeout: true}, netErr{timeout: true})
		_, err := b.Lease(context.Background(), leaseReq("t", "api"))
		if !credentials.Temporary(err) || len(p.Requests()) != 2 {
			t.Fatalf("error %v after %d attempts; want a temporary failure after 2", err, len(p.Requests()))
		}
		if !errors.Is(err, credentials.ErrUnavailable) {
			t.Errorf("BUG: exhausted retries of a network timeout give %q, not wrapping ErrUnavailable", err)
		}
	})
	t.Run("attempt timeout", func(t *testing.T) {
		clock := newFakeClock()
		p, b := fakeBroker(clock, time.Hour, credentials.WithRetry(2, time.Millisecond), credentials.WithAttemptTimeout(10*time.Millisecond))
		release := p.Hold() // each Issue returns its context's error when cut off
		defer release()
		_, err := b.Lease(context.Background(), leaseReq("t", "api"))
		if !credentials.Temporary(err) || len(p.Requests()) != 2 {
			t.Fatalf("error %v after %d attempts; want a temporary failure after 2", err, len(p.Requests()))
		}
		if !errors.Is(err, credentials.ErrUnavailable) {
			t.Errorf("BUG: attempts cut off by the attempt timeout give %q, not wrapping ErrUnavailable", err)
		}
	})
}
