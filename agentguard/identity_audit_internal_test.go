package agentguard

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

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
// changed, noting it allocates nothing (the hot path of every call), for
// the agent recorded last and for another one the guard serves.
func TestNoteIdentityUnchangedAllocatesNothing(t *testing.T) {
	g := benchGuard(t)
	ctx := context.Background()
	id, other := svidIdentity(), svidIdentity()
	other.ID = spiffeid.RequireFromString("spiffe://example.org/agent/other")
	for _, who := range []*identity.Identity{&id, &other} {
		if err := g.noteIdentity(ctx, g.identities.seen.Load(), who, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, who := range []*identity.Identity{&id, &other} {
		if n := testing.AllocsPerRun(100, func() {
			if err := g.noteIdentity(ctx, g.identities.seen.Load(), who, nil); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("noteIdentity of %s, unchanged: %v allocations, want 0", who.ID, n)
		}
	}
}

// BenchmarkNoteIdentity measures the identity-change check every call
// makes, when nothing changed: the guard's (one atomic load, a few string
// comparisons; a map lookup for an agent other than the one recorded
// last) against the naive one (a mutex around the last identity).
func BenchmarkNoteIdentity(b *testing.B) {
	ctx := context.Background()
	id := svidIdentity()
	b.Run("guard", func(b *testing.B) {
		g := benchGuard(b)
		_ = g.noteIdentity(ctx, g.identities.seen.Load(), &id, nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := g.noteIdentity(ctx, g.identities.seen.Load(), &id, nil); err != nil {
					panic(err)
				}
			}
		})
	})
	// A guard serving two agents, one per context, calls alternating.
	b.Run("guard-two-agents", func(b *testing.B) {
		g := benchGuard(b)
		other := svidIdentity()
		other.ID = spiffeid.RequireFromString("spiffe://example.org/agent/other")
		_ = g.noteIdentity(ctx, g.identities.seen.Load(), &id, nil)
		_ = g.noteIdentity(ctx, g.identities.seen.Load(), &other, nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				who := &id
				if i%2 == 1 {
					who = &other
				}
				if err := g.noteIdentity(ctx, g.identities.seen.Load(), who, nil); err != nil {
					panic(err)
				}
			}
		})
		if n := len(g.identities.seen.Load().svids); n != 2 {
			b.Fatalf("%d identities seen, want 2", n)
		}
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

// TestSeenIdentitiesBounded: past maxSeenIdentities SPIFFE IDs, a new one
// makes the watch forget one other; an ID it holds is updated in place.
func TestSeenIdentitiesBounded(t *testing.T) {
	m := map[spiffeid.ID]seenSVID{}
	for i := range maxSeenIdentities {
		m[spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/a%d", i))] = seenSVID{serial: "s"}
	}
	newID := spiffeid.RequireFromString("spiffe://example.org/new")
	next := withSVID(m, newID, seenSVID{serial: "n"})
	if len(next) != maxSeenIdentities || next[newID].serial != "n" || len(m) != maxSeenIdentities {
		t.Errorf("adding past the bound: %d entries (new: %+v), the original %d", len(next), next[newID], len(m))
	}
	if _, ok := m[newID]; ok {
		t.Error("the map stored was changed")
	}
	known := spiffeid.RequireFromString("spiffe://example.org/a7")
	if _, ok := next[known]; !ok {
		known = newID
	}
	again := withSVID(next, known, seenSVID{serial: "r"})
	if len(again) != maxSeenIdentities || again[known].serial != "r" {
		t.Errorf("updating a known ID: %d entries, %+v", len(again), again[known])
	}
	for k := range next {
		if _, ok := again[k]; !ok {
			t.Errorf("updating a known ID forgot %s", k)
		}
	}
}
