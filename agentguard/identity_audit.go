package agentguard

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
)

// Reasons of identity change records (audit.IdentityChange.Reason).
const (
	reasonAcquired = "identity acquired"
	reasonRotated  = "SVID rotated"
	reasonRegained = "identity regained"
	reasonLost     = "identity lost"
)

// maxSeenIdentities bounds the SPIFFE IDs an identityWatch remembers. Past
// it, each new ID makes it forget one, at random, whose next call then
// records it as acquired again: a guard serving more agents than that
// records more than once per agent, never unboundedly often per call.
const maxSeenIdentities = 4096

// identityWatch follows the identities the guard's source gives, to record
// each change once (audit.KindIdentityChange). A source may answer per
// context (one guard serving several agents, in-process sub-agents), so
// what it gave is kept per SPIFFE ID: switching from one agent's context
// to another's is no change. Its zero value is ready.
type identityWatch struct {
	// seen is what was recorded; nil before the first record.
	seen atomic.Pointer[seenIdentities]
	// claim is held by the call recording a change, nil otherwise: the
	// calls that see the same change meanwhile wait for it rather than
	// record it again.
	claim atomic.Pointer[identityClaim]
}

// seenIdentities is what an identityWatch recorded. It is never changed
// once stored (copy on write), so that the calls read it without a lock.
type seenIdentities struct {
	// svids holds, for each SPIFFE ID recorded, its SVID last recorded.
	svids map[spiffeid.ID]seenSVID
	// last is the SPIFFE ID of the latest record but a loss, and lastSVID
	// its entry in svids: a guard serving one agent finds it there
	// without a map lookup.
	last     spiffeid.ID
	lastSVID seenSVID
	// lost is set once the source failed after giving an identity, until
	// it gives one again.
	lost bool
}

// seenSVID is the SVID of an identity recorded: its serial and expiry,
// zero for sources without SVIDs.
type seenSVID struct {
	serial   string
	notAfter time.Time
}

// identityClaim is a change being recorded: the source's failure (lost)
// or the identity id. err is its outcome, set before done is closed.
type identityClaim struct {
	done chan struct{}
	id   spiffeid.ID
	lost bool
	err  error
}

// recordingIdentity marks the context of an identity change record, so
// that a sink which calls back into the guard with it does not wait for
// the record it is writing.
type recordingIdentity struct{}

// errIdentityNotRecorded is the outcome of a claim whose record was never
// written (the sink panicked).
var errIdentityNotRecorded = errors.New("agentguard: identity change not recorded")

// same reports whether what the source gave (id, or err) is no change
// from s. A failure of the call's own context is not a loss of identity,
// and an SVID that expires before the one recorded for its SPIFFE ID is
// not a rotation: it was read before the rotation recorded (a stale
// read), and going back to it would be recorded as a rotation back.
func (s *seenIdentities) same(ctx context.Context, id *identity.Identity, err error) bool {
	if err != nil {
		return s == nil || s.lost || ctx.Err() != nil
	}
	if s == nil || s.lost {
		return false
	}
	v, ok := s.lastSVID, id.ID == s.last
	if !ok {
		v, ok = s.svids[id.ID]
	}
	return ok && (v.serial == id.Serial || id.NotAfter.Before(v.notAfter))
}

// noteIdentity records what the identity source gave, id or err, if it is
// a change from before, what was recorded when the source was asked: a
// SPIFFE ID seen for the first time, a rotated SVID of one, the identity
// lost (the source failing) or regained. Comparing with before rather
// than with what is recorded now keeps a call that read the source before
// another call recorded a change from recording the change back. Each
// change is recorded once, however many calls see it at the same time:
// one writes the record, the others wait for it. It returns the error of
// a record that could not be written (strict audit mode), and then the
// change stays unrecorded, for the next call to record.
//
// When nothing changed, which is nearly always, it costs a few string
// comparisons (and a map lookup when the guard serves several agents),
// and allocates nothing.
func (g *Guard) noteIdentity(ctx context.Context, before *seenIdentities, id *identity.Identity, err error) error {
	if before.same(ctx, id, err) {
		return nil
	}
	return g.identityChanged(ctx, id, err)
}

func (g *Guard) identityChanged(ctx context.Context, id *identity.Identity, err error) error {
	w := &g.identities
	if ctx.Value(recordingIdentity{}) != nil {
		// A sink recording a change called back into the guard: the
		// change is being recorded down this very stack.
		return nil
	}
	claim := &identityClaim{done: make(chan struct{}), id: id.ID, lost: err != nil, err: errIdentityNotRecorded}
	for !w.claim.CompareAndSwap(nil, claim) {
		other := w.claim.Load()
		if other == nil {
			continue
		}
		select {
		case <-other.done:
		case <-ctx.Done():
			return fmt.Errorf("agentguard: waiting for an identity change to be recorded: %w", context.Cause(ctx))
		}
		if w.seen.Load().same(ctx, id, err) {
			return nil // recorded by the other call
		}
		if other.err != nil && other.lost == claim.lost && (claim.lost || other.id == claim.id) {
			// The change this call saw too could not be recorded: the
			// next call tries again.
			return other.err
		}
	}
	defer func() {
		w.claim.Store(nil)
		close(claim.done)
	}()
	prev := w.seen.Load()
	if prev.same(ctx, id, err) {
		claim.err = nil
		return nil
	}
	next, ev := g.identityRecord(ctx, prev, id, err)
	if werr := g.writeIdentityRecord(ctx, ev); werr != nil {
		claim.err = fmt.Errorf("agentguard: %s not recorded: %w", ev.Identity.Reason, werr)
		return claim.err
	}
	w.seen.Store(next)
	claim.err = nil
	return nil
}

// writeIdentityRecord writes ev, marking the context so that a sink which
// calls back into the guard does not wait for this record. (A sink that
// panics has not written it: writeAudit returns that as an audit failure,
// so that the call's own record is still written, once, by the caller.)
func (g *Guard) writeIdentityRecord(ctx context.Context, ev audit.Event) error {
	return g.writeAudit(context.WithValue(ctx, recordingIdentity{}, true), ev)
}

// identityRecord is the state after the change from prev to what the
// source gave (id, or err), which same found to be a change, and its audit
// record.
func (g *Guard) identityRecord(ctx context.Context, prev *seenIdentities, id *identity.Identity, err error) (*seenIdentities, audit.Event) {
	ch := &audit.IdentityChange{}
	ev := audit.Event{Time: g.cfg.now(), Kind: audit.KindIdentityChange, Outcome: audit.OutcomeOK, Identity: ch}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		// The call that saw the change.
		ev.TraceID, ev.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	if err != nil {
		// prev is not nil: there was an identity to lose.
		ch.Reason = reasonLost
		ch.Previous, ch.PreviousSerial = prev.last.String(), prev.svids[prev.last].serial
		msg := err.Error()
		if task, ok := TaskFromContext(ctx); ok && !task.userToken.IsZero() {
			// A source that exchanges a token may quote it.
			msg = credentials.Scrub(msg, &credentials.Credential{Secret: task.userToken})
		}
		ev.Outcome, ev.Error, ev.Reason = audit.OutcomeError, msg, ch.Reason
		return &seenIdentities{svids: prev.svids, last: prev.last, lastSVID: prev.lastSVID, lost: true}, ev
	}
	var svids map[spiffeid.ID]seenSVID
	if prev != nil {
		svids = prev.svids
	}
	old, known := svids[id.ID]
	ev.Agent = id.ID.String()
	ch.Serial, ch.NotAfter = id.Serial, id.NotAfter
	switch {
	case prev != nil && prev.lost:
		ch.Reason = reasonRegained
		ch.Previous, ch.PreviousSerial = prev.last.String(), svids[prev.last].serial
		if prev.last != id.ID {
			ch.Reason += " as another agent"
		}
	case !known:
		ch.Reason = reasonAcquired
	default:
		ch.Reason = reasonRotated
		ch.Previous, ch.PreviousSerial = id.ID.String(), old.serial
	}
	ev.Reason = ch.Reason
	if !known || (old.serial != id.Serial && !id.NotAfter.Before(old.notAfter)) {
		svids = withSVID(svids, id.ID, seenSVID{serial: id.Serial, notAfter: id.NotAfter})
	}
	return &seenIdentities{svids: svids, last: id.ID, lastSVID: svids[id.ID]}, ev
}

// withSVID returns a copy of m with id's SVID set to s, forgetting one
// other ID, at random, when m holds maxSeenIdentities already.
func withSVID(m map[spiffeid.ID]seenSVID, id spiffeid.ID, s seenSVID) map[spiffeid.ID]seenSVID {
	_, had := m[id]
	forget := !had && len(m) >= maxSeenIdentities
	out := make(map[spiffeid.ID]seenSVID, min(len(m)+1, maxSeenIdentities))
	for k, v := range m {
		if forget {
			forget = false // map order is random
			continue
		}
		out[k] = v
	}
	out[id] = s
	return out
}
