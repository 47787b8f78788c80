package identity

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

// Redacted is what a bearer token prints as, in every format.
const Redacted = "[REDACTED]"

// JWTSVID is a JWT-SVID: a short-lived, audience-bound token that proves an
// agent's SPIFFE ID to whoever holds the trust bundle. It is a bearer token:
// String, GoString, Format (every verb), MarshalJSON and LogValue give
// [Redacted]; only Marshal returns the token.
type JWTSVID struct {
	// ID is the agent the token names (its "sub" claim).
	ID spiffeid.ID
	// Audience is who the token is for (its "aud" claim).
	Audience []string
	// Expiry is when the token stops being valid.
	Expiry time.Time
	// token is held by a closure, which fmt's reflection never reaches.
	token func() string
}

func newJWTSVID(s *jwtsvid.SVID) *JWTSVID {
	tok := s.Marshal()
	return &JWTSVID{ID: s.ID, Audience: slices.Clone(s.Audience), Expiry: s.Expiry, token: func() string { return tok }}
}

// Marshal returns the token, to put in a request header. Never log it.
func (j *JWTSVID) Marshal() string {
	if j == nil || j.token == nil {
		return ""
	}
	return j.token()
}

// String returns Redacted.
func (*JWTSVID) String() string { return Redacted }

// GoString returns Redacted, for %#v.
func (*JWTSVID) GoString() string { return Redacted }

// Format writes Redacted for every verb and flag.
func (*JWTSVID) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, Redacted) }

// MarshalJSON returns Redacted as a JSON string.
func (*JWTSVID) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// LogValue gives the token's subject, audience and expiry, never the token.
func (j *JWTSVID) LogValue() slog.Value {
	if j == nil {
		return slog.StringValue(Redacted)
	}
	return slog.GroupValue(
		slog.String("id", j.ID.String()),
		slog.Any("audience", j.Audience),
		slog.Time("expiry", j.Expiry),
		slog.String("token", Redacted),
	)
}

// JWTIssuer mints JWT-SVIDs for one agent. [SPIFFEAgent] (from SPIRE's
// Workload API) and [DevAgent] (from the development issuer) implement it.
type JWTIssuer interface {
	// JWTSVID returns a JWT-SVID of the agent for audience (and extra
	// audiences). Callers should ask for a new one per use rather than keep
	// it: they are short-lived.
	JWTSVID(ctx context.Context, audience string, extra ...string) (*JWTSVID, error)
}

// VerifyJWTSVID checks that token is a JWT-SVID signed by an authority of
// its trust domain's bundle in bundles, unexpired, and addressed to
// audience. A trust domain bundles has no bundle for is refused.
func VerifyJWTSVID(token string, bundles jwtbundle.Source, audience string) (_ *JWTSVID, err error) {
	defer func() {
		// A typed nil bundle source (a nil *SPIFFESource, say) panics
		// inside go-spiffe: refuse instead.
		if r := recover(); r != nil {
			err = fmt.Errorf("identity: verify JWT-SVID: bundle source failed: %v", r)
		}
	}()
	if bundles == nil {
		return nil, fmt.Errorf("identity: verify JWT-SVID: no trust bundle source")
	}
	if audience == "" {
		return nil, fmt.Errorf("identity: verify JWT-SVID: no audience to check")
	}
	s, err := jwtsvid.ParseAndValidate(token, bundles, []string{audience})
	if err != nil {
		// The error names claims, key IDs and trust domains, never the
		// token. A key ID is the sender's to choose: keep it short.
		msg := err.Error()
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return nil, fmt.Errorf("identity: verify JWT-SVID: %s", msg)
	}
	return newJWTSVID(s), nil
}
