package agentguard

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/identity"
)

// svidIdentity is an identity as an SVID-backed source gives it.
func svidIdentity() identity.Identity {
	id := identity.MustParse("spiffe://example.org/agent/sub")
	id.Serial = "5f1c0ab3e2d94c7a8b6e0f1d2c3b4a59"
	id.NotAfter = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	return id
}

// TestNoteIdentityUnchangedAllocatesNothing: when the identity has not
// changed, noting it allocates nothing (the hot path of every call).
func TestNoteIdentityUnchangedAllocatesNothing(t *testing.T) {
	g := benchGuard(t)
	ctx := context.Background()
	id := svidIdentity()
	if err := g.noteIdentity(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := g.noteIdentity(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("noteIdentity of an unchanged identity: %v allocations, want 0", n)
	}
}

// BenchmarkNoteIdentity measures the identity-change check every call
// makes, when nothing changed: the guard's (one atomic load, three string
// comparisons) against the naive one (a mutex around the last identity).
func BenchmarkNoteIdentity(b *testing.B) {
	ctx := context.Background()
	id := svidIdentity()
	b.Run("guard", func(b *testing.B) {
		g := benchGuard(b)
		_ = g.noteIdentity(ctx, id, nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := g.noteIdentity(ctx, id, nil); err != nil {
					panic(err)
				}
			}
		})
	})
	b.Run("naive-mutex", func(b *testing.B) {
		var (
			mu   sync.Mutex
			last identity.Identity
		)
		last = id
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.Lock()
				same := last.ID == id.ID && last.Serial == id.Serial
				mu.Unlock()
				if !same {
					panic("changed")
				}
			}
		})
	})
}
