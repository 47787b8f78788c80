package local

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentguard/go-sdk/credentials"
)

// Errors of Verify, matchable with errors.Is. A revoked token gives
// credentials.ErrRevoked. No error of Verify contains the token or any part
// of it; the few claims some errors name (expiry, lease ID) are read only
// once the signature has verified.
var (
	// ErrInvalidToken: the token is malformed, not an ES256 "at+jwt"
	// access token, signed by a key the issuer does not have, tampered
	// with, from another issuer, missing a required claim or not yet valid.
	ErrInvalidToken = errors.New("local: invalid token")
	// ErrExpired: the token has expired.
	ErrExpired = errors.New("local: token expired")
	// ErrAudience: the token is not for the audience being checked.
	ErrAudience = errors.New("local: token not for this audience")
	// ErrScope: the token lacks a scope being checked.
	ErrScope = errors.New("local: token lacks a required scope")
	// ErrUnavailable: a remote verifier could not fetch the issuer's keys
	// or revocation list, so it refused the token (it fails closed). It
	// wraps credentials.ErrUnavailable: the failure is temporary.
	ErrUnavailable = fmt.Errorf("local: issuer keys or revocations unavailable: %w", credentials.ErrUnavailable)
)

var errUnknownKey = fmt.Errorf("%w: signed by a key the issuer does not have (another issuer's, or retired after its tokens expired)", ErrInvalidToken)

// maxTokenLen bounds the tokens Verify parses; the issuer's are far shorter.
const maxTokenLen = 8 << 10

// Claims are the verified claims of an access token.
type Claims struct {
	// Issuer is the "iss" claim.
	Issuer string
	// Subject is the agent's SPIFFE ID: the "sub" claim.
	Subject string
	// Audience is the "aud" claim: the audience, then the resource
	// indicators the token was issued for.
	Audience []string
	// Scopes are the granted scopes, from the "scope" claim.
	Scopes []string
	// TaskID is the task the token was issued for: the "task" claim.
	TaskID string
	// ID is the "jti" claim, which is the credential's lease ID.
	ID string
	// IssuedAt and Expiry are the "iat" and "exp" claims.
	IssuedAt time.Time
	Expiry   time.Time
}

// Verifier checks the local issuer's access tokens. Get one from
// [Issuer.Verifier] in the issuer's process, or from [NewRemoteVerifier]
// elsewhere. A Verifier is safe for concurrent use; its zero value is not
// usable.
type Verifier struct {
	iss string
	now func() time.Time
	src keySource
}

// keySource gives a verifier the issuer's public keys and revocations.
type keySource interface {
	// key returns the public key kid names, or an error wrapping
	// ErrInvalidToken (no such key) or ErrUnavailable.
	key(ctx context.Context, kid string) (*ecdsa.PublicKey, error)
	// revoked reports whether the lease is revoked; an error wraps
	// ErrUnavailable, or ErrInvalidToken when the issuer no longer
	// publishes kid, the key that signed the token (it restarted).
	revoked(ctx context.Context, kid, id string) (bool, error)
}

// Verify checks token and returns its claims. The token must be a compact
// JWS signed with ES256 by a key of the issuer (no other algorithm, "none"
// included, is accepted), with the JOSE type "at+jwt", the issuer's "iss",
// an "exp" in the future and an "nbf" (if any) not in the future, with no
// leeway, and a lease ID ("jti") that is not revoked. audience must be one
// of its "aud" values and every scope in scopes one of its scopes.
//
// The errors are ErrInvalidToken, ErrExpired, credentials.ErrRevoked,
// ErrAudience, ErrScope and, from a remote verifier, ErrUnavailable, each
// wrapped with the reason. They never contain the token or part of it.
func (v *Verifier) Verify(ctx context.Context, token, audience string, scopes ...string) (*Claims, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("local: verify: %w", err)
	}
	if audience == "" {
		return nil, fmt.Errorf("%w: no audience to check the token against", ErrAudience)
	}
	if token == "" {
		return nil, fmt.Errorf("%w: empty token", ErrInvalidToken)
	}
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxTokenLen)
	}
	// go-jose's errors may quote the token's parts: report our own reasons.
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: not a compact JWS signed with ES256", ErrInvalidToken)
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isAccessTokenType(typ) {
		return nil, fmt.Errorf("%w: not an access token (JOSE type must be %q)", ErrInvalidToken, TokenType)
	}
	if h.KeyID == "" {
		return nil, fmt.Errorf("%w: no key ID", ErrInvalidToken)
	}
	key, err := v.src.key(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, fmt.Errorf("%w: signature does not verify", ErrInvalidToken)
	}
	var tc tokenClaims
	if err := json.Unmarshal(payload, &tc); err != nil {
		return nil, fmt.Errorf("%w: malformed claims", ErrInvalidToken)
	}
	if missing := missingClaims(&tc); len(missing) > 0 {
		return nil, fmt.Errorf("%w: missing claims %s", ErrInvalidToken, strings.Join(missing, ", "))
	}
	if tc.Issuer != v.iss {
		return nil, fmt.Errorf("%w: not issued by %q", ErrInvalidToken, v.iss)
	}
	now, exp := v.now(), tc.Expiry.Time()
	if !now.Before(exp) {
		return nil, fmt.Errorf("%w at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	if tc.NotBefore != nil && now.Before(tc.NotBefore.Time()) {
		return nil, fmt.Errorf("%w: not valid before %s", ErrInvalidToken, tc.NotBefore.Time().UTC().Format(time.RFC3339))
	}
	revoked, err := v.src.revoked(ctx, h.KeyID, tc.ID)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, fmt.Errorf("local: lease %s: %w", tc.ID, credentials.ErrRevoked)
	}
	if !slices.Contains(tc.Audience, audience) {
		return nil, fmt.Errorf("%w: not for %q", ErrAudience, audience)
	}
	granted := strings.Fields(tc.Scope)
	var lacking []string
	for _, s := range scopes {
		if !slices.Contains(granted, s) && !slices.Contains(lacking, s) {
			lacking = append(lacking, s)
		}
	}
	if len(lacking) > 0 {
		return nil, fmt.Errorf("%w: lacks %q", ErrScope, lacking)
	}
	return &Claims{
		Issuer:   tc.Issuer,
		Subject:  tc.Subject,
		Audience: []string(tc.Audience),
		Scopes:   sortedSet(granted),
		TaskID:   tc.TaskID,
		ID:       tc.ID,
		IssuedAt: tc.IssuedAt.Time(),
		Expiry:   exp,
	}, nil
}

// isAccessTokenType reports whether typ names a JWT access token: "at+jwt",
// or its full media type, in any case (RFC 9068, section 4).
func isAccessTokenType(typ string) bool {
	return strings.EqualFold(typ, TokenType) || strings.EqualFold(typ, "application/"+TokenType)
}

// missingClaims names the claims RFC 9068 requires that tc lacks ("task"
// included, which this issuer always sets).
func missingClaims(tc *tokenClaims) []string {
	var m []string
	check := func(ok bool, name string) {
		if !ok {
			m = append(m, name)
		}
	}
	check(tc.Issuer != "", "iss")
	check(tc.Subject != "", "sub")
	check(len(tc.Audience) > 0, "aud")
	check(tc.ClientID != "", "client_id")
	check(tc.ID != "", "jti")
	check(tc.TaskID != "", "task")
	check(tc.IssuedAt != nil, "iat")
	check(tc.Expiry != nil, "exp")
	return m
}
