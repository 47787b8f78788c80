package agentguard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// TestWindow: the per-minute window counts the calls of the trailing
// minute, keeps at most its capacity, grows across its wrap, and counts
// calls admitted out of clock order as the latest.
func TestWindow(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

	var w window
	for s := 0; s <= 30; s += 10 {
		w.add(at(s), 3)
	}
	if got := w.count(at(30)); got != 3 {
		t.Errorf("count at capacity = %d, want 3", got)
	}
	if got := w.count(at(70)); got != 2 { // 20 and 30 are within the minute; 10 is not
		t.Errorf("count a minute later = %d, want 2", got)
	}
	if got := w.count(at(91)); got != 0 {
		t.Errorf("count after all left = %d, want 0", got)
	}

	var big window
	for s := range 200 {
		big.add(at(s), recentCap)
		if s%37 == 0 && big.count(at(s)) != min(s+1, 60) {
			t.Fatalf("at %d s: count = %d, want %d", s, big.count(at(s)), min(s+1, 60))
		}
	}
	if big.n != 60 || len(big.buf) > 128 {
		t.Errorf("kept %d entries in a buffer of %d, want 60 in at most 128", big.n, len(big.buf))
	}

	var skew window
	skew.add(at(5), 10)
	skew.add(at(3), 10) // admitted later, with an earlier reading of the clock
	if got := skew.count(at(64)); got != 2 {
		t.Errorf("count = %d, want 2 (the late call counts as of 5 s)", got)
	}
}

// TestImplicitTasksTracked: the task of a call made outside any task is
// tracked while the call runs, and forgotten when it ends.
func TestImplicitTasksTracked(t *testing.T) {
	g := benchGuard(t)
	var during int
	tool := &Tool{Name: "t", Handler: func(ctx context.Context, _ json.RawMessage) (*Result, error) {
		g.mu.Lock()
		during = len(g.implicit)
		g.mu.Unlock()
		return &Result{}, nil
	}}
	if _, err := g.Invoke(context.Background(), tool, Call{}); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	after := len(g.implicit)
	g.mu.Unlock()
	if during != 1 || after != 0 {
		t.Errorf("implicit tasks tracked: %d during the call, %d after; want 1 and 0", during, after)
	}
}

// BenchmarkCheckSuspended measures the kill switch's check on the hot path
// of every call: with nothing suspended, with a few other agents and a
// trust domain suspended (the acting agent and its chain are not), and the
// naive baseline, a map behind a read-write mutex.
func BenchmarkCheckSuspended(b *testing.B) {
	ctx := context.Background()
	id := identity.MustParse("spiffe://example.org/agent/sub", "spiffe://example.org/agent/root", "spiffe://example.org/agent/mid")
	others := []string{"spiffe://example.org/agent/a", "spiffe://example.org/agent/b", "spiffe://example.org/agent/c", "spiffe://other.example"}

	b.Run("none", func(b *testing.B) {
		g := benchGuard(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := g.checkSuspended(id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("few", func(b *testing.B) {
		g := benchGuard(b)
		for _, s := range others {
			if err := g.Suspend(ctx, spiffeid.RequireFromString(s), "bench"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := g.checkSuspended(id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("few/parallel", func(b *testing.B) {
		g := benchGuard(b)
		for _, s := range others {
			if err := g.Suspend(ctx, spiffeid.RequireFromString(s), "bench"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := g.checkSuspended(id); err != nil {
					panic(err)
				}
			}
		})
	})
	b.Run("naive-rwmutex/parallel", func(b *testing.B) {
		var mu sync.RWMutex
		m := map[string]string{}
		for _, s := range others {
			m[s] = "bench"
		}
		one := func(a spiffeid.ID) error {
			if r, ok := m[a.String()]; ok {
				return fmt.Errorf("%s suspended: %s", a, r)
			}
			if r, ok := m[a.TrustDomain().IDString()]; ok {
				return fmt.Errorf("%s suspended: %s", a.TrustDomain(), r)
			}
			return nil
		}
		check := func(id identity.Identity) error {
			mu.RLock()
			defer mu.RUnlock()
			if err := one(id.ID); err != nil {
				return err
			}
			for _, a := range id.Chain {
				if err := one(a); err != nil {
					return err
				}
			}
			return nil
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := check(id); err != nil {
					panic(err)
				}
			}
		})
	})
}

func benchGuard(b testing.TB) *Guard {
	b.Helper()
	g, err := New(WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/sub"))),
		WithPolicy(policytest.AllowAll()), WithAudit(audit.NewSlogSink(slog.New(slog.NewTextHandler(io.Discard, nil)))))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = g.Close(context.Background()) })
	return g
}
