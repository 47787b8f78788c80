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
	"github.com/agentguard/go-sdk/identity"
)

// Reasons of identity change records (audit.IdentityChange.Reason); a
// loss is reasonLost followed by the source's error.
const (
	reasonAcquired = "identity acquired"
	reasonChanged  = "identity changed"
	reasonRotated  = "SVID rotated"
	reasonRegained = "identity regained"
	reasonLost     = "identity lost: "
)

// identityWatch follows the identity the guard's source gives, to record
// each change once (audit.KindIdentityChange). Its zero value is ready.
type identityWatch struct {
	// seen is the identity last recorded; nil before the first.
	seen atomic.Pointer[seenIdentity]
	// claim is held by the call recording a change, nil otherwise: the
	// calls that see a change meanwhile wait for it rather than record it
	// again.
	claim atomic.Pointer[identityClaim]
}

// seenIdentity is an identity recorded, or its loss.
type seenIdentity struct {
	id       spiffeid.ID
	serial   string
	notAfter time.Time
	// lost is set once the source failed after id: id is then the
	// identity lost.
	lost bool
}

// identityClaim is a change being recorded. err is its outcome, set
// before done is closed.
type identityClaim struct {
	done chan struct{}
	err  error
}

// recordingIdentity marks the context of an identity change record, so
// that a sink which calls back into the guard with it does not wait for
// the record it is writing.
type recordingIdentity struct{}

// errIdentityNotRecorded is the outcome of a claim whose record was never
// written (the sink panicked).
var errIdentityNotRecorded = errors.New("agentguard: identity change not recorded")

// same reports whether what the source gave (id, or err) is what s
// recorded: no change to record. A failure of the call's own context is
// not a loss of identity.
func (s *seenIdentity) same(ctx context.Context, id identity.Identity, err error) bool {
	if err != nil {
		return s == nil || s.lost || ctx.Err() != nil
	}
	return s != nil && !s.lost && s.id == id.ID && s.serial == id.Serial
}

// noteIdentity records what the identity source gave, id or err, if it
// differs from what was recorded last: the first identity, another SPIFFE
// ID, the identity lost or regained, or a rotated SVID. Each change is
// recorded once, however many calls see it at the same time: one writes
// the record, the others wait for it. It returns the error of a record
// that could not be written (strict audit mode), and then the change
// stays unrecorded, for the next call to record.
//
// When nothing changed, which is nearly always, it costs one atomic load
// and a few string comparisons.
func (g *Guard) noteIdentity(ctx context.Context, id identity.Identity, err error) error {
	w := &g.identities
	if w.seen.Load().same(ctx, id, err) {
		return nil
	}
	return g.identityChanged(ctx, id, err)
}

func (g *Guard) identityChanged(ctx context.Context, id identity.Identity, err error) error {
	w := &g.identities
	if ctx.Value(recordingIdentity{}) != nil {
		// A sink recording a change called back into the guard: the
		// change is being recorded down this very stack.
		return nil
	}
	claim := &identityClaim{done: make(chan struct{}), err: errIdentityNotRecorded}
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
		if other.err != nil {
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

// writeIdentityRecord writes ev. A sink that panics has not written it:
// that is an audit failure here, so that the call's own record is still
// written (once) by the caller.
func (g *Guard) writeIdentityRecord(ctx context.Context, ev audit.Event) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &auditError{err: fmt.Errorf("%w: panic: %v", ErrInternal, v)}
		}
	}()
	return g.writeAudit(context.WithValue(ctx, recordingIdentity{}, true), ev)
}

// identityRecord is the state after the change from prev to what the
// source gave (id, or err), and its audit record.
func (g *Guard) identityRecord(ctx context.Context, prev *seenIdentity, id identity.Identity, err error) (*seenIdentity, audit.Event) {
	ch := &audit.IdentityChange{}
	ev := audit.Event{Time: g.cfg.now(), Kind: audit.KindIdentityChange, Outcome: audit.OutcomeOK, Identity: ch}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		// The call that saw the change.
		ev.TraceID, ev.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	if prev != nil {
		ch.Previous, ch.PreviousSerial = prev.id.String(), prev.serial
	}
	var next *seenIdentity
	switch {
	case err != nil:
		next = &seenIdentity{id: prev.id, serial: prev.serial, notAfter: prev.notAfter, lost: true}
		ch.Reason = reasonLost + err.Error()
		ev.Outcome, ev.Error = audit.OutcomeError, err.Error()
	default:
		next = &seenIdentity{id: id.ID, serial: id.Serial, notAfter: id.NotAfter}
		ev.Agent = id.ID.String()
		ch.Serial, ch.NotAfter = id.Serial, id.NotAfter
		switch {
		case prev == nil:
			ch.Reason = reasonAcquired
		case prev.lost:
			ch.Reason = reasonRegained
			if prev.id != id.ID {
				ch.Reason += " as another agent"
			}
		case prev.id != id.ID:
			ch.Reason = reasonChanged
		default:
			ch.Reason = reasonRotated
		}
	}
	ev.Reason = ch.Reason
	return next, ev
}
