package credentials

import (
	"context"
	"errors"
	"net"
	"slices"
	"time"
)

// ErrUnavailable marks a temporary failure of an issuer: a network error,
// a timeout, an HTTP 5xx or 429 answer. The broker retries it; other
// errors (a refused grant, a bad request) fail at once.
var ErrUnavailable = errors.New("credentials: issuer unavailable")

// ErrNotRevocable is returned by a provider's Revoke for a credential its
// issuer cannot revoke, such as a JWT-SVID: it stays valid until it
// expires. The broker reports it as such, not as a failure.
var ErrNotRevocable = errors.New("credentials: not revocable")

// Temporary reports whether err is worth retrying: it wraps ErrUnavailable,
// or it is a network timeout.
func Temporary(err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// EventKind says what happened to a lease.
type EventKind string

// The kinds of lease event.
const (
	EventIssued       EventKind = "issued"        // a new lease
	EventRefreshed    EventKind = "refreshed"     // a new lease replacing one near expiry
	EventFailed       EventKind = "failed"        // no lease could be issued
	EventRevoked      EventKind = "revoked"       // a lease was revoked (or is not revocable)
	EventRevokeFailed EventKind = "revoke_failed" // revoking a lease failed after every attempt
)

// Event describes one thing that happened to a lease. It carries the
// lease's metadata, never its value.
type Event struct {
	Kind EventKind
	// Time is when it happened, by the broker's clock.
	Time time.Time
	// TaskID and Agent are whom the lease is for.
	TaskID string
	Agent  string
	// Name is the requirement's name; for a lease shared by several
	// requirements, that of the one that caused the issuance.
	Name      string
	LeaseID   string // empty for EventFailed
	Provider  string
	Audience  string
	Resources []string
	Scopes    []string
	ExpiresAt time.Time
	// Replaces is the lease a refresh replaces.
	Replaces string
	// Attempts is how many times the provider was asked.
	Attempts int
	// NotRevocable is set on EventRevoked when the issuer cannot revoke
	// the credential: it stays valid until ExpiresAt.
	NotRevocable bool
	// Err is the failure, for EventFailed and EventRevokeFailed. Its text
	// never contains the credential's value.
	Err error
}

// Observer is told about lease events. It runs on the goroutine that caused
// the event and must not block for long.
type Observer func(ctx context.Context, e Event)

type observerKey struct{}

// WithObserverContext returns a context whose Lease and Revoke calls also
// report their events to o, like net/http/httptrace: the guard uses it to
// audit each issuance with the call that caused it. With single-flight,
// the events go to the call that did the work; calls served from the cache
// or by another call's issuance cause no event.
func WithObserverContext(ctx context.Context, o Observer) context.Context {
	if o == nil {
		return ctx
	}
	prev, _ := ctx.Value(observerKey{}).([]Observer)
	return context.WithValue(ctx, observerKey{}, append(slices.Clip(prev), o))
}

func (b *Broker) emit(ctx context.Context, e Event) {
	e.Time = b.now()
	for _, o := range b.observers {
		o(ctx, e)
	}
	obs, _ := ctx.Value(observerKey{}).([]Observer)
	for _, o := range obs {
		o(ctx, e)
	}
}

func leaseEvent(k EventKind, c *Credential) Event {
	return Event{
		Kind: k, TaskID: c.TaskID, Agent: c.Agent, Name: c.Name, LeaseID: c.LeaseID, Provider: c.Provider,
		Audience: c.Audience, Resources: slices.Clone(c.Resources), Scopes: slices.Clone(c.Scopes), ExpiresAt: c.ExpiresAt,
	}
}

func failedEvent(req Request, attempts int, err error) Event {
	return Event{
		Kind: EventFailed, TaskID: req.TaskID, Agent: req.Agent, Name: req.Name, Provider: req.Provider,
		Audience: req.Audience, Resources: slices.Clone(req.Resources), Scopes: sortedSet(req.Scopes),
		Attempts: attempts, Err: err,
	}
}
