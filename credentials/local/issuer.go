package local

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/agentguard/go-sdk/credentials"
)

// DefaultIssuer is the "iss" claim of an Issuer made without WithIssuer,
// and the issuer a remote verifier expects unless told otherwise.
const DefaultIssuer = "urn:agentguard:local-issuer"

// TokenType is the JOSE "typ" header of the issuer's access tokens
// (RFC 9068, section 2.1).
const TokenType = "at+jwt"

// ErrUnknownLease is returned by Revoke for a credential this issuer did not
// issue, or issued so long ago that it has expired and been forgotten.
var ErrUnknownLease = errors.New("local: lease not issued by this issuer")

// Issuer is the local issuer: it signs JWT access tokens with an ephemeral
// ES256 key, keeps a revocation list, and publishes both. See the package
// documentation: it is for development and tests only.
//
// Issuer implements [credentials.Provider] and is safe for concurrent use.
// Its zero value is not usable: use NewIssuer.
type Issuer struct {
	iss    string
	now    func() time.Time
	maxTTL time.Duration

	mu      sync.Mutex
	cur     *signingKey
	retired []*signingKey        // rotated out, kept until their last token expires
	issued  map[string]time.Time // lease ID -> expiry, forgotten at expiry
	revoked map[string]time.Time // lease ID -> expiry, forgotten at expiry
	// nextPrune is the earliest expiry in issued: nothing is due for
	// pruning before it. Zero when issued is empty.
	nextPrune time.Time
}

var _ credentials.Provider = (*Issuer)(nil)

// signingKey is one ES256 key pair of the issuer.
type signingKey struct {
	kid  string
	priv *ecdsa.PrivateKey
	der  []byte // PKIX form of the public key, to hand out copies
	// lastExp is the latest expiry of a token the key signed; guarded by
	// Issuer.mu. A retired key is dropped once it has passed.
	lastExp time.Time
}

// Option configures an Issuer.
type Option func(*Issuer)

// WithIssuer sets the "iss" claim of the issuer's tokens, which its
// verifiers expect; empty keeps DefaultIssuer.
func WithIssuer(iss string) Option {
	return func(i *Issuer) {
		if iss != "" {
			i.iss = iss
		}
	}
}

// WithClock sets the issuer's clock, which also serves its in-process
// verifier and decides when revocations and retired keys are pruned. For
// tests; nil keeps time.Now.
func WithClock(now func() time.Time) Option {
	return func(i *Issuer) {
		if now != nil {
			i.now = now
		}
	}
}

// WithMaxTTL sets the longest life of a token: a request's TTL is capped by
// it. The default is credentials.DefaultTTL; a non-positive d keeps it.
func WithMaxTTL(d time.Duration) Option {
	return func(i *Issuer) {
		if d > 0 {
			i.maxTTL = d
		}
	}
}

// NewIssuer returns an issuer with a new ephemeral ECDSA P-256 signing key
// (ES256) under a random key ID. See the package documentation: it is for
// development and tests only.
func NewIssuer(opts ...Option) (*Issuer, error) {
	i := &Issuer{
		iss:     DefaultIssuer,
		now:     time.Now,
		maxTTL:  credentials.DefaultTTL,
		issued:  map[string]time.Time{},
		revoked: map[string]time.Time{},
	}
	for _, o := range opts {
		o(i)
	}
	k, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	i.cur = k
	return i, nil
}

func newSigningKey() (*signingKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("local: signing key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("local: signing key: %w", err)
	}
	return &signingKey{kid: rand.Text(), priv: priv, der: der}, nil
}

// Name returns the issuer's "iss" claim, for WithRemoteIssuer.
func (i *Issuer) Name() string { return i.iss }

// tokenClaims is the payload of an access token (RFC 9068, section 2.2).
type tokenClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud"`
	Scope     string           `json:"scope,omitempty"`
	ClientID  string           `json:"client_id"`
	ID        string           `json:"jti"`
	TaskID    string           `json:"task"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	Expiry    *jwt.NumericDate `json:"exp"`
}

// Issue signs an access token for req and returns it as a credential whose
// LeaseID is the token's "jti". The broker fills in the rest.
//
// The token is for req.Agent (its "sub" and "client_id"), for req.TaskID
// (its "task" claim), for req.Audience and req.Resources (its "aud", as
// RFC 8707 resource indicators), with req.Scopes sorted and without
// duplicates as its "scope". It lives for req.TTL (credentials.DefaultTTL
// when zero), at most the issuer's maximum TTL, and never past
// req.NotAfter; its expiry is truncated to the second.
//
// Issue refuses when ctx is done, when req has no agent, task or audience,
// when a scope is empty or not a valid scope token (RFC 6749, section 3.3),
// when a resource is not an absolute URI without a fragment, or when
// req.NotAfter is set and is not in the future, or leaves less than the
// second that truncation may take off.
func (i *Issuer) Issue(ctx context.Context, req credentials.Request) (*credentials.Credential, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("local: issue: %w", err)
	}
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	now := i.now()
	if !req.NotAfter.IsZero() && !req.NotAfter.After(now) {
		return nil, fmt.Errorf("local: issue: the task's deadline %s has passed", req.NotAfter.UTC().Format(time.RFC3339))
	}
	ttl := req.TTL
	if ttl <= 0 {
		ttl = credentials.DefaultTTL
	}
	exp := now.Add(min(ttl, i.maxTTL))
	if !req.NotAfter.IsZero() && req.NotAfter.Before(exp) {
		exp = req.NotAfter
	}
	exp = exp.Truncate(time.Second) // never later than before, so never past NotAfter
	if !exp.After(now) {
		return nil, errors.New("local: issue: less than a second left before the task's deadline")
	}
	scopes := sortedSet(req.Scopes)
	aud := make([]string, 0, 1+len(req.Resources))
	for _, a := range append([]string{req.Audience}, req.Resources...) {
		if !slices.Contains(aud, a) {
			aud = append(aud, a)
		}
	}
	jti := credentials.NewLeaseID()

	// Record the token before signing it, so that a concurrent Rotate
	// keeps the key in the JWKS until this token expires.
	i.mu.Lock()
	i.pruneLocked(now)
	k := i.cur
	if exp.After(k.lastExp) {
		k.lastExp = exp
	}
	i.issued[jti] = exp
	if i.nextPrune.IsZero() || exp.Before(i.nextPrune) {
		i.nextPrune = exp
	}
	i.mu.Unlock()

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.priv},
		(&jose.SignerOptions{}).WithType(TokenType).WithHeader(jose.HeaderKey("kid"), k.kid))
	if err != nil {
		return nil, fmt.Errorf("local: issue: %w", err)
	}
	iat := jwt.NewNumericDate(now)
	tok, err := jwt.Signed(signer).Claims(tokenClaims{
		Issuer:    i.iss,
		Subject:   req.Agent,
		Audience:  jwt.Audience(aud),
		Scope:     strings.Join(scopes, " "),
		ClientID:  req.Agent,
		ID:        jti,
		TaskID:    req.TaskID,
		IssuedAt:  iat,
		NotBefore: iat,
		Expiry:    jwt.NewNumericDate(exp),
	}).Serialize()
	if err != nil {
		return nil, fmt.Errorf("local: issue: %w", err)
	}
	return &credentials.Credential{
		LeaseID:   jti,
		Secret:    credentials.NewSecret(tok),
		IssuedAt:  now,
		ExpiresAt: exp,
		Scopes:    scopes,
	}, nil
}

// checkRequest refuses requests the issuer cannot make a well-formed,
// unambiguous token for.
func checkRequest(req credentials.Request) error {
	switch {
	case req.Agent == "":
		return errors.New("local: issue: request names no agent")
	case req.TaskID == "":
		return errors.New("local: issue: request names no task")
	case req.Audience == "":
		return errors.New("local: issue: request names no audience")
	}
	for _, s := range req.Scopes {
		if !validScope(s) {
			return fmt.Errorf("local: issue: invalid scope %q", s)
		}
	}
	for _, r := range req.Resources {
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Fragment != "" || strings.HasSuffix(r, "#") {
			return fmt.Errorf("local: issue: resource %q is not an absolute URI without a fragment", r)
		}
	}
	return nil
}

// validScope reports whether s is a scope token: one or more of the
// characters %x21 / %x23-5B / %x5D-7E (RFC 6749, section 3.3). A scope
// with a space in it would read as two scopes.
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// sortedSet returns s sorted, without duplicates, as a new slice.
func sortedSet(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// Revoke adds c's lease to the revocation list until c's token would have
// expired. It is idempotent. It returns ErrUnknownLease for a credential
// this issuer did not issue, except one that has already expired, which
// needs no revocation: Revoke returns nil for it.
func (i *Issuer) Revoke(ctx context.Context, c *credentials.Credential) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: revoke: %w", err)
	}
	if c == nil {
		return errors.New("local: revoke: no credential")
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	now := i.now()
	i.pruneLocked(now)
	// The expiry recorded at issue, not the one c claims, bounds the entry.
	if exp, ok := i.issued[c.LeaseID]; ok {
		i.revoked[c.LeaseID] = exp
		return nil
	}
	if !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt) {
		return nil
	}
	return fmt.Errorf("%w: lease %q", ErrUnknownLease, c.LeaseID)
}

// Rotate replaces the signing key. Tokens signed before keep verifying
// until they expire: the old public key stays in the JWKS until every token
// it signed has expired.
func (i *Issuer) Rotate() error {
	k, err := newSigningKey()
	if err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	now := i.now()
	if now.Before(i.cur.lastExp) {
		i.retired = append(i.retired, i.cur)
	}
	i.cur = k
	i.pruneLocked(now)
	return nil
}

// pruneLocked forgets the tokens and revocations that have expired at now,
// and the retired keys whose tokens all have. i.mu is held.
func (i *Issuer) pruneLocked(now time.Time) {
	i.retired = slices.DeleteFunc(i.retired, func(k *signingKey) bool { return !now.Before(k.lastExp) })
	if now.Before(i.nextPrune) {
		return
	}
	var next time.Time
	for id, exp := range i.issued {
		if !now.Before(exp) {
			delete(i.issued, id)
			delete(i.revoked, id)
			continue
		}
		if next.IsZero() || exp.Before(next) {
			next = exp
		}
	}
	i.nextPrune = next
}

// JWKS returns the issuer's public keys: the current signing key first,
// then the retired keys whose tokens have not all expired. It never holds
// a private key.
func (i *Issuer) JWKS() jose.JSONWebKeySet {
	i.mu.Lock()
	i.pruneLocked(i.now())
	keys := append([]*signingKey{i.cur}, i.retired...)
	i.mu.Unlock()
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		// A fresh copy each time: callers cannot alter the issuer's keys.
		pub, err := x509.ParsePKIXPublicKey(k.der)
		if err != nil {
			continue // cannot happen: der was made from the key
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: pub, KeyID: k.kid, Algorithm: string(jose.ES256), Use: "sig"})
	}
	return set
}

// publicKey returns the public key with ID kid, if the issuer still has it.
func (i *Issuer) publicKey(kid string) (*ecdsa.PublicKey, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.pruneLocked(i.now())
	if i.cur.kid == kid {
		return &i.cur.priv.PublicKey, true
	}
	for _, k := range i.retired {
		if k.kid == kid {
			return &k.priv.PublicKey, true
		}
	}
	return nil, false
}

// isRevoked reports whether lease id is on the revocation list.
func (i *Issuer) isRevoked(id string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	_, ok := i.revoked[id]
	return ok
}

// Revocation is one entry of the revocation list: a revoked lease (the
// token's "jti") and the expiry of its token, after which the entry is
// dropped since the token is no longer valid anyway.
type Revocation struct {
	ID     string    `json:"jti"`
	Expiry time.Time `json:"exp"`
}

// Revoked returns the revocation list, ordered by expiry then lease ID.
// Entries whose tokens have expired are gone.
func (i *Issuer) Revoked() []Revocation {
	i.mu.Lock()
	i.pruneLocked(i.now())
	out := make([]Revocation, 0, len(i.revoked))
	for id, exp := range i.revoked {
		out = append(out, Revocation{ID: id, Expiry: exp.UTC()})
	}
	i.mu.Unlock()
	slices.SortFunc(out, func(a, b Revocation) int {
		if c := a.Expiry.Compare(b.Expiry); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Verifier returns a verifier of the issuer's tokens that reads the
// issuer's keys and revocation list directly, so it is always current, and
// uses the issuer's clock.
func (i *Issuer) Verifier() *Verifier {
	return &Verifier{iss: i.iss, now: i.now, src: issuerSource{i}}
}

// issuerSource serves the in-process verifier.
type issuerSource struct{ i *Issuer }

func (s issuerSource) key(_ context.Context, kid string) (*ecdsa.PublicKey, error) {
	if k, ok := s.i.publicKey(kid); ok {
		return k, nil
	}
	return nil, errUnknownKey
}

func (s issuerSource) revoked(_ context.Context, _, id string) (bool, error) {
	return s.i.isRevoked(id), nil
}
