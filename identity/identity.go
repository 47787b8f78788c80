package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ErrNoIdentity is returned by a Source that has no identity to give.
var ErrNoIdentity = errors.New("identity: no identity")

// Identity is the verified identity of the agent making a call.
type Identity struct {
	// ID is the agent's SPIFFE ID.
	ID spiffeid.ID
	// Chain lists the agents that delegated the current task to this one,
	// root first. It is empty for an agent acting on its own task.
	Chain []spiffeid.ID

	// Serial (hex) and NotAfter describe the X.509-SVID that proved ID:
	// its leaf certificate's serial number and expiry. A new serial for
	// the same ID means the SVID was rotated. They are facts about the
	// proof, not part of the identity: String, Depth, ChainStrings and
	// policy ignore them. They are zero for sources that hold no SVID
	// (StaticSource, SourceFunc).
	Serial   string
	NotAfter time.Time
}

// Parse returns the identity of the SPIFFE ID s, with delegation chain
// (root first) parsed from chain.
func Parse(s string, chain ...string) (Identity, error) {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %q: %w", s, err)
	}
	out := Identity{ID: id}
	for _, c := range chain {
		cid, err := spiffeid.FromString(c)
		if err != nil {
			return Identity{}, fmt.Errorf("identity: chain %q: %w", c, err)
		}
		out.Chain = append(out.Chain, cid)
	}
	return out, nil
}

// MustParse is like Parse but panics on error. It is for tests and examples.
func MustParse(s string, chain ...string) Identity {
	id, err := Parse(s, chain...)
	if err != nil {
		panic(err)
	}
	return id
}

// IsZero reports whether the identity names no agent.
func (i Identity) IsZero() bool { return i.ID.IsZero() }

// Depth is the number of delegations between the root agent and this one.
func (i Identity) Depth() int { return len(i.Chain) }

// ChainStrings returns the delegation chain as strings, root first.
func (i Identity) ChainStrings() []string {
	if len(i.Chain) == 0 {
		return nil
	}
	out := make([]string, len(i.Chain))
	for n, c := range i.Chain {
		out[n] = c.String()
	}
	return out
}

// String returns the SPIFFE ID, preceded by the chain when there is one:
// "spiffe://td/root > spiffe://td/sub".
func (i Identity) String() string {
	if len(i.Chain) == 0 {
		return i.ID.String()
	}
	return strings.Join(append(i.ChainStrings(), i.ID.String()), " > ")
}

// Source gives the identity of the agent a guard acts for.
//
// Identity is called on every guarded call, possibly from many goroutines at
// once; implementations must be safe for concurrent use and should answer
// from memory once warm. An error denies the call.
//
// The answer may depend on ctx: one guard may serve several agents, one per
// context (in-process sub-agents, for instance). The guard's audit records
// each SPIFFE ID the first time it sees it and each rotation of its SVID,
// once, whatever the order of the calls. An error is recorded as the
// identity lost, and the next answer as the identity regained: a source
// that fails for some contexts and not others has both recorded at every
// switch between them.
type Source interface {
	Identity(ctx context.Context) (Identity, error)
}

// SourceFunc adapts a function to a Source.
type SourceFunc func(ctx context.Context) (Identity, error)

// Identity calls f.
func (f SourceFunc) Identity(ctx context.Context) (Identity, error) { return f(ctx) }

// StaticSource is a Source that always returns the same identity. It verifies
// nothing: use it in tests and local development, never as proof of identity
// in production.
type StaticSource struct {
	id Identity
}

var _ Source = (*StaticSource)(nil)

// NewStaticSource returns a source that always returns id.
func NewStaticSource(id Identity) *StaticSource { return &StaticSource{id: id} }

// Identity returns the fixed identity, or ErrNoIdentity if it is zero.
func (s *StaticSource) Identity(ctx context.Context) (Identity, error) {
	if err := ctx.Err(); err != nil {
		return Identity{}, err
	}
	if s == nil || s.id.IsZero() {
		return Identity{}, ErrNoIdentity
	}
	return s.id, nil
}
