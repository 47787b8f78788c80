package credentials

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Requirement is what a tool declares about one credential it needs. The
// lease a tool receives is never wider than this and never outlives the task.
type Requirement struct {
	// Name is how the tool finds the credential with FromContext.
	Name string
	// Provider names the Provider that issues it, as registered with the broker.
	Provider string
	// Audience is the service the credential is for.
	Audience string
	// Scopes are the least scopes the tool needs.
	Scopes []string
	// TTL is the longest the credential may live; zero means the provider's default.
	TTL time.Duration
}

// key identifies a lease for caching within a task: agent, provider,
// audience and sorted scopes. The agent is part of it so that a sub-agent
// working on a delegated task never receives its parent's lease.
func (r Request) key() string {
	s := slices.Clone(r.Scopes)
	slices.Sort(s)
	return r.Agent + "\x00" + r.Provider + "\x00" + r.Audience + "\x00" + strings.Join(slices.Compact(s), " ")
}

// Request is what a Provider is asked to issue.
type Request struct {
	Requirement
	// TaskID is the task the credential is scoped to.
	TaskID string
	// Agent is the SPIFFE ID of the agent the credential is for.
	Agent string
	// NotAfter is the latest expiry allowed: the task's deadline, if it has one.
	NotAfter time.Time
}

// Credential is one lease of a credential to one task.
//
// Printing, logging or encoding a Credential never shows its value: Secret
// redacts itself, and LogValue lists only the metadata.
type Credential struct {
	// Name is the requirement's name.
	Name string
	// LeaseID identifies this lease in audit records. It is not secret.
	LeaseID string
	// Provider, Audience and Scopes say what the credential grants.
	Provider string
	Audience string
	Scopes   []string
	// TaskID is the task it was leased to.
	TaskID string
	// IssuedAt and ExpiresAt bound its life.
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Secret is the value the tool presents.
	Secret Secret
}

// Expired reports whether the credential has expired at now.
func (c *Credential) Expired(now time.Time) bool {
	return !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)
}

// LogValue lists the credential's metadata, never its value.
func (c *Credential) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", c.Name),
		slog.String("lease_id", c.LeaseID),
		slog.String("provider", c.Provider),
		slog.String("audience", c.Audience),
		slog.Any("scopes", c.Scopes),
		slog.Time("expires_at", c.ExpiresAt),
	)
}

// NewLeaseID returns a random lease identifier.
func NewLeaseID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "lease-" + hex.EncodeToString(b[:])
}
