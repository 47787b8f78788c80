package credentials

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/agentguard/go-sdk/identity"
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
	// Resources are the resource indicators (RFC 8707) the credential is
	// for: absolute URIs of the resource servers that will accept it.
	Resources []string
	// Scopes are the least scopes the tool needs.
	Scopes []string
	// TTL is the longest the credential may live; zero means the provider's default.
	TTL time.Duration
}

// key identifies a lease for caching within a task: agent, provider,
// audience, sorted resources, sorted scopes and TTL. The agent is part of it so
// that a sub-agent working on a delegated task never receives its parent's
// lease.
func (r Request) key() string {
	return r.Agent + "\x00" + r.Provider + "\x00" + r.Audience + "\x00" +
		strings.Join(sortedSet(r.Resources), " ") + "\x00" + strings.Join(sortedSet(r.Scopes), " ") + "\x00" + r.TTL.String()
}

// taskKey is the key the broker keeps the request's task under.
func (r Request) taskKey() string {
	if r.TaskKey != "" {
		return r.TaskKey
	}
	return r.TaskID
}

// sortedSet returns s sorted, without duplicates, as a new slice.
func sortedSet(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// Request is what a Provider is asked to issue.
type Request struct {
	Requirement
	// TaskID is the task the credential is scoped to.
	TaskID string
	// TaskKey identifies this run of the task to the broker, which caches
	// and revokes leases per key. The guard sets one unique to each task it
	// starts, so that tasks with the same ID (in guards sharing a broker,
	// or one after another) never share or revoke each other's leases.
	// Empty means TaskID.
	TaskKey string
	// Agent is the SPIFFE ID of the agent the credential is for.
	Agent string
	// NotAfter is the latest expiry allowed: the task's deadline, if it has one.
	NotAfter time.Time
	// JWTIssuer mints the acting agent's JWT-SVIDs, for providers that
	// prove the agent's identity to the issuer (token exchange, JWT client
	// assertions) or hand out a JWT-SVID itself. Nil when the agent's
	// identity source cannot mint them.
	JWTIssuer identity.JWTIssuer
	// UserToken is the token of the user the task serves, if the task has
	// one: the subject of an on-behalf-of token exchange. It is never
	// part of the cache key, and never printed.
	UserToken Secret
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
	// Provider, Audience, Resources and Scopes say what the credential
	// grants: Scopes are those the issuer granted when it said, else those
	// requested.
	Provider  string
	Audience  string
	Resources []string
	Scopes    []string
	// TaskID and Agent are the task and the agent (a SPIFFE ID) it was
	// leased to.
	TaskID string
	Agent  string
	// IssuedAt and ExpiresAt bound its life.
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Secret is the value the tool presents.
	Secret Secret
}

// clone returns a copy of c that shares nothing mutable with it.
func (c *Credential) clone() *Credential {
	cp := *c
	cp.Resources = slices.Clone(c.Resources)
	cp.Scopes = slices.Clone(c.Scopes)
	return &cp
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
		slog.Any("resources", c.Resources),
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
