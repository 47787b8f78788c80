package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// HandoffHeader is the HTTP header (or gRPC metadata key, lower-cased) that
// carries a [Handoff] from a delegating agent to the agent it hands a task
// to in another process.
const HandoffHeader = "AgentGuard-Handoff"

// HandoffAudience prefixes the second audience of every JWT-SVID in a
// handoff, beside the recipient's SPIFFE ID: "agentguard:handoff:" and the
// hex SHA-256 of the hops before it (their tokens joined by commas; the
// root hop has the digest of nothing). The audience marks the token's
// purpose, so a JWT-SVID minted to authenticate an ordinary request to the
// same recipient cannot pass for a handoff; and it binds each hop to the
// hops before it, so no one can present the tail of a handoff without its
// head, and escape the checks of the agents it leaves out.
const HandoffAudience = "agentguard:handoff"

// hopAudience is the purpose audience of a hop whose earlier hops are prev.
func hopAudience(prev []string) string {
	sum := sha256.Sum256([]byte(strings.Join(prev, ",")))
	return HandoffAudience + ":" + hex.EncodeToString(sum[:])
}

// maxHandoffTokens bounds what ParseHandoff accepts, whatever a guard's
// depth limit: a handoff is parsed before it is verified.
const (
	maxHandoffTokens = 16
	maxHandoffLen    = 64 << 10
)

// ErrHandoff is matched by every error of a handoff that does not verify.
var ErrHandoff = errors.New("identity: handoff refused")

// Handoff proves, across processes, which chain of agents handed a task
// to its recipient. It holds one JWT-SVID per hop, root first: the token of
// hop i names agent i and is addressed to agent i+1, the last one to the
// recipient. The recipient verifies every token against the SPIFFE trust
// bundles, so no agent can claim a chain it was not given, and a handoff
// addressed to one agent is useless to another.
//
// A handoff is bearer material, like the JWT-SVIDs it holds: String,
// GoString, Format (every verb), MarshalJSON and LogValue give [Redacted];
// Marshal gives the header value.
type Handoff struct {
	tokens func() []string
}

// NewHandoff hands a task from the agent from to the agent to: it appends a
// JWT-SVID of from, addressed to to, to upstream (the handoff from received,
// or nil when from is the root of the chain).
func NewHandoff(ctx context.Context, from JWTIssuer, upstream *Handoff, to spiffeid.ID) (*Handoff, error) {
	if from == nil {
		return nil, errors.New("identity: handoff: the delegating agent cannot mint JWT-SVIDs")
	}
	if to.IsZero() {
		return nil, errors.New("identity: handoff: no recipient")
	}
	prev := upstream.list()
	if len(prev)+1 > maxHandoffTokens {
		return nil, fmt.Errorf("identity: handoff: more than %d hops", maxHandoffTokens)
	}
	j, err := from.JWTSVID(ctx, to.String(), hopAudience(prev))
	if err != nil {
		return nil, fmt.Errorf("identity: handoff: %w", err)
	}
	toks := append(slices.Clone(prev), j.Marshal())
	return &Handoff{tokens: func() []string { return toks }}, nil
}

// ParseHandoff reads a handoff from its header value. It checks only the
// form; Verify checks the tokens.
func ParseHandoff(s string) (*Handoff, error) {
	if len(s) > maxHandoffLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrHandoff, maxHandoffLen)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrHandoff)
	}
	parts := strings.Split(s, ",")
	if len(parts) > maxHandoffTokens {
		return nil, fmt.Errorf("%w: more than %d hops", ErrHandoff, maxHandoffTokens)
	}
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
		if strings.Count(parts[i], ".") != 2 {
			return nil, fmt.Errorf("%w: hop %d is not a compact JWT", ErrHandoff, i)
		}
	}
	return &Handoff{tokens: func() []string { return parts }}, nil
}

func (h *Handoff) list() []string {
	if h == nil || h.tokens == nil {
		return nil
	}
	return h.tokens()
}

// Hops returns the number of JWT-SVIDs, the depth of the chain the
// handoff claims.
func (h *Handoff) Hops() int { return len(h.list()) }

// Marshal returns the header value: the tokens, root first, separated by
// commas. It is bearer material: never log it.
func (h *Handoff) Marshal() string { return strings.Join(h.list(), ",") }

// Verify checks the handoff for recipient self and returns the chain of
// delegating agents, root first. Every token must be a JWT-SVID signed by
// an authority of its trust domain in bundles (a trust domain with no
// bundle is refused), unexpired, and addressed to the next agent of the
// chain, the last one to self, and to the HandoffAudience of the hops before
// it. An agent may appear only once in the chain,
// and never as the recipient. A chain longer than maxDepth (when positive)
// is refused. Errors match ErrHandoff.
func (h *Handoff) Verify(bundles jwtbundle.Source, self spiffeid.ID, maxDepth int) ([]spiffeid.ID, error) {
	toks := h.list()
	if len(toks) == 0 {
		return nil, fmt.Errorf("%w: no tokens", ErrHandoff)
	}
	if self.IsZero() {
		return nil, fmt.Errorf("%w: no recipient to verify for", ErrHandoff)
	}
	if maxDepth > 0 && len(toks) > maxDepth {
		return nil, fmt.Errorf("%w: chain of %d delegations exceeds the limit of %d", ErrHandoff, len(toks), maxDepth)
	}
	chain := make([]spiffeid.ID, len(toks))
	next := self
	for i := len(toks) - 1; i >= 0; i-- {
		j, err := VerifyJWTSVID(toks[i], bundles, next.String())
		if err != nil {
			return nil, fmt.Errorf("%w: hop %d (to %s): %w", ErrHandoff, i, next, err)
		}
		if !slices.Contains(j.Audience, hopAudience(toks[:i])) {
			return nil, fmt.Errorf("%w: hop %d (to %s): not a handoff token for this chain: its audience lacks the %s digest of the hops before it", ErrHandoff, i, next, HandoffAudience)
		}
		chain[i] = j.ID
		next = j.ID
	}
	seen := map[spiffeid.ID]bool{self: true}
	for _, id := range chain {
		if seen[id] {
			return nil, fmt.Errorf("%w: %s appears twice in the chain", ErrHandoff, id)
		}
		seen[id] = true
	}
	return chain, nil
}

// String returns Redacted.
func (*Handoff) String() string { return Redacted }

// GoString returns Redacted, for %#v.
func (*Handoff) GoString() string { return Redacted }

// Format writes Redacted for every verb and flag.
func (*Handoff) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, Redacted) }

// MarshalJSON returns Redacted as a JSON string.
func (*Handoff) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// LogValue gives the number of hops, never the tokens.
func (h *Handoff) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("hops", h.Hops()), slog.String("tokens", Redacted))
}
