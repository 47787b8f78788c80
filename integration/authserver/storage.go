package authserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/agentguard/go-sdk/identity"
)

// The storage interfaces op uses, all implemented by *storage.
var (
	_ op.Storage                            = (*storage)(nil)
	_ op.ClientCredentialsStorage           = (*storage)(nil)
	_ op.TokenExchangeStorage               = (*storage)(nil)
	_ op.TokenExchangeTokensVerifierStorage = (*storage)(nil)
	_ op.JWTProfileTokenStorage             = (*storage)(nil)
)

// errNotSupported answers the parts of op.Storage for browser flows
// (authorization code, refresh tokens), which this server does not offer.
var errNotSupported = errors.New("authserver: not supported by this test server")

// storage is the in-memory op.Storage of one Server. Clients, keys and URLs
// are fixed at Start; only tokens and users change, under mu.
type storage struct {
	issuer   string // "http://127.0.0.1:port"
	tokenURL string // issuer + "/oauth/token"
	bundles  jwtbundle.Source

	clients    map[string]*client
	bySPIFFEID map[spiffeid.ID]*client
	signer     *ecdsa.PrivateKey // signs access tokens (ES256)
	signerKID  string
	userKey    *rsa.PublicKey // verifies UserToken's JWT-profile assertions (RS256)
	userKeyKID string
	defaultTTL time.Duration
	now        func() time.Time

	mu     sync.Mutex
	tokens map[string]*token // by token ID (the JWT's jti)
	users  map[string]bool   // user IDs UserToken has minted for
}

// token is what the server remembers of an access token it issued. A
// revoked token is deleted, so a token is active while it is here and
// unexpired.
type token struct {
	id       string
	clientID string
	subject  string
	audience []string
	scopes   []string
	actor    *oidc.ActorClaims
	issuedAt time.Time
	expiry   time.Time
}

func (s *storage) newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// activeToken returns the stored token with that ID, if not revoked or expired.
func (s *storage) activeToken(id string) *token {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok || !s.now().Before(t.expiry) {
		return nil
	}
	return t
}

// ---- clients ----

// client is one OAuth client, as op sees it. Only the confidential-client
// parts matter: there are no redirects, response types or ID tokens.
type client struct {
	id        string
	secret    string
	spiffeID  spiffeid.ID // zero: no JWT-SVID client assertions
	scopes    []string
	audiences []string
	ttl       time.Duration
	grants    []oidc.GrantType
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                    { return c.id }
func (c *client) RedirectURIs() []string           { return nil }
func (c *client) PostLogoutRedirectURIs() []string { return nil }
func (c *client) ApplicationType() op.ApplicationType {
	return op.ApplicationTypeWeb
}

// AuthMethod is advisory: client authentication is Server.VerifyClient's.
// op refuses client_credentials to a client whose method is "none".
func (c *client) AuthMethod() oidc.AuthMethod {
	if c.secret != "" {
		return oidc.AuthMethodBasic
	}
	return oidc.AuthMethodPrivateKeyJWT
}
func (c *client) ResponseTypes() []oidc.ResponseType { return nil }
func (c *client) GrantTypes() []oidc.GrantType       { return c.grants }
func (c *client) LoginURL(string) string             { return "" }

// AccessTokenType makes every access token a JWT. op's opaque tokens encode
// "tokenID:subject" and cannot carry a SPIFFE ID, which contains a colon.
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration      { return c.ttl }
func (c *client) DevMode() bool                       { return false }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) IsScopeAllowed(scope string) bool     { return slices.Contains(c.scopes, scope) }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }

// GetClientByClientID implements op.OPStorage.
func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("unknown client %q", id)
	}
	return c, nil
}

// AuthorizeClientIDSecret implements op.OPStorage. op calls it for the
// introspection endpoint; the token and revocation endpoints go through
// authenticateSecret from Server.VerifyClient.
func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	_, err := s.authenticateSecret(id, secret)
	return err
}

// authenticateSecret returns the client if secret is its secret. A client
// with no secret authenticates only with a JWT-SVID.
func (s *storage) authenticateSecret(id, secret string) (*client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("unknown client %q", id)
	}
	if c.secret == "" {
		return nil, fmt.Errorf("client %q has no secret: it authenticates with a JWT-SVID client assertion", id)
	}
	if subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		return nil, fmt.Errorf("wrong secret for client %q", id)
	}
	return c, nil
}

// authenticateSVID returns the client whose SPIFFE ID is the subject of the
// JWT-SVID assertion, after verifying it against the bundles and this
// server's issuer or token endpoint as audience. clientID, if the request
// named one, must be that client.
func (s *storage) authenticateSVID(clientID, assertion string) (*client, error) {
	svid, err := s.verifySVID(assertion)
	if err != nil {
		return nil, err
	}
	c, ok := s.bySPIFFEID[svid.ID]
	if !ok {
		return nil, fmt.Errorf("no client has SPIFFE ID %s", svid.ID)
	}
	if clientID != "" && clientID != c.id {
		return nil, fmt.Errorf("JWT-SVID of %s does not authenticate client %q", svid.ID, clientID)
	}
	return c, nil
}

// verifySVID verifies a JWT-SVID addressed to this server: its audience
// must contain the issuer URL or the token endpoint URL. JWT-SVIDs have no
// "iss" claim; the trust bundle of the subject's trust domain is what
// vouches for them.
func (s *storage) verifySVID(tok string) (*identity.JWTSVID, error) {
	var first error
	for _, aud := range []string{s.issuer, s.tokenURL} {
		svid, err := identity.VerifyJWTSVID(tok, s.bundles, aud)
		if err == nil {
			return svid, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// ---- client credentials (op.ClientCredentialsStorage) ----

// ccRequest is the op.TokenRequest of a client-credentials grant.
type ccRequest struct {
	clientID string
	scopes   []string
}

func (r *ccRequest) GetSubject() string    { return r.clientID }
func (r *ccRequest) GetAudience() []string { return []string{r.clientID} }
func (r *ccRequest) GetScopes() []string   { return r.scopes }

// ClientCredentials implements op.ClientCredentialsStorage. op's own
// VerifyClient would call it; Server.VerifyClient replaces that, but the
// method stays for op's type check and for completeness.
func (s *storage) ClientCredentials(_ context.Context, id, secret string) (op.Client, error) {
	return s.authenticateSecret(id, secret)
}

// ClientCredentialsTokenRequest implements op.ClientCredentialsStorage: the
// token's subject and audience are the client; each scope must be one the
// client may be granted.
func (s *storage) ClientCredentialsTokenRequest(_ context.Context, id string, scopes []string) (op.TokenRequest, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	for _, sc := range scopes {
		if !c.IsScopeAllowed(sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for client %q", sc, id)
		}
	}
	return &ccRequest{clientID: id, scopes: slices.Clone(scopes)}, nil
}

// ---- token exchange (op.TokenExchangeStorage, op.TokenExchangeTokensVerifierStorage) ----

// VerifyExchangeSubjectToken implements op.TokenExchangeTokensVerifierStorage.
// op calls it for a subject token it could not verify itself: it verifies
// access tokens it issued, and hands over everything else. A JWT-SVID
// (urn:ietf:params:oauth:token-type:jwt) is verified here; anything else
// is refused. The reason is logged (never the token): op answers only
// "subject_token is invalid".
func (s *storage) VerifyExchangeSubjectToken(ctx context.Context, tok string, tt oidc.TokenType) (string, string, map[string]any, error) {
	return s.verifyExchangeToken(ctx, "subject_token", tok, tt)
}

// VerifyExchangeActorToken implements op.TokenExchangeTokensVerifierStorage,
// as VerifyExchangeSubjectToken does for the actor token.
func (s *storage) VerifyExchangeActorToken(ctx context.Context, tok string, tt oidc.TokenType) (string, string, map[string]any, error) {
	return s.verifyExchangeToken(ctx, "actor_token", tok, tt)
}

func (s *storage) verifyExchangeToken(ctx context.Context, which, tok string, tt oidc.TokenType) (string, string, map[string]any, error) {
	if tt != oidc.JWTTokenType {
		err := fmt.Errorf("%s of type %q is not a valid access token of this server", which, tt)
		slog.WarnContext(ctx, "token exchange refused", "reason", err.Error())
		return "", "", nil, err
	}
	svid, err := s.verifySVID(tok)
	if err != nil {
		slog.WarnContext(ctx, "token exchange refused", "token", which, "reason", err.Error())
		return "", "", nil, err
	}
	claims := map[string]any{"sub": svid.ID.String(), "aud": svid.Audience, "exp": svid.Expiry.Unix()}
	return "", svid.ID.String(), claims, nil
}

// ValidateTokenExchangeRequest implements op.TokenExchangeStorage. op has
// authenticated the client and verified the subject and actor tokens; this
// checks the rest:
//   - only access tokens are issued (the default requested_token_type);
//   - a subject or actor that is an access token of this server must be
//     unrevoked (op checks only its signature and expiry);
//   - every audience and resource must be one the client may ask for
//     (invalid_target);
//   - every scope must be one the client may be granted and, on behalf of
//     an access token's subject, one that token has (invalid_scope).
//
// The subject need not be a known user: a SPIFFE ID is a subject too.
func (s *storage) ValidateTokenExchangeRequest(_ context.Context, req op.TokenExchangeRequest) error {
	c, ok := s.clients[req.GetClientID()]
	if !ok {
		return oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	switch req.GetRequestedTokenType() {
	case "":
		req.SetRequestedTokenType(oidc.AccessTokenType)
	case oidc.AccessTokenType:
	default:
		return oidc.ErrInvalidRequest().WithDescription("requested_token_type %q is not issued here: only %s", req.GetRequestedTokenType(), oidc.AccessTokenType)
	}

	var subjectScopes []string // nil: the subject token carries no scopes to narrow
	switch req.GetExchangeSubjectTokenType() {
	case oidc.JWTTokenType: // a JWT-SVID, verified by VerifyExchangeSubjectToken
	case oidc.AccessTokenType:
		t := s.activeToken(req.GetExchangeSubjectTokenIDOrToken())
		if t == nil {
			return oidc.ErrInvalidRequest().WithDescription("subject_token is revoked or expired")
		}
		subjectScopes = t.scopes
		if subjectScopes == nil {
			subjectScopes = []string{}
		}
	default:
		return oidc.ErrInvalidRequest().WithDescription("subject_token_type %q is not accepted", req.GetExchangeSubjectTokenType())
	}
	if req.GetExchangeActor() != "" {
		switch req.GetExchangeActorTokenType() {
		case oidc.JWTTokenType:
		case oidc.AccessTokenType:
			if s.activeToken(req.GetExchangeActorTokenIDOrToken()) == nil {
				return oidc.ErrInvalidRequest().WithDescription("actor_token is revoked or expired")
			}
		default:
			return oidc.ErrInvalidRequest().WithDescription("actor_token_type %q is not accepted", req.GetExchangeActorTokenType())
		}
	}

	for _, aud := range append(slices.Clone(req.GetAudience()), req.GetResourses()...) {
		if !slices.Contains(c.audiences, aud) {
			return oidc.ErrInvalidTarget().WithDescription("audience or resource %q is not allowed for client %q", aud, c.id)
		}
	}
	for _, sc := range req.GetScopes() {
		if !c.IsScopeAllowed(sc) {
			return oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for client %q", sc, c.id)
		}
		if subjectScopes != nil && !slices.Contains(subjectScopes, sc) {
			return oidc.ErrInvalidScope().WithDescription("scope %q is not in the subject_token", sc)
		}
	}
	return nil
}

// CreateTokenExchangeRequest implements op.TokenExchangeStorage: nothing
// to record.
func (s *storage) CreateTokenExchangeRequest(context.Context, op.TokenExchangeRequest) error {
	return nil
}

// GetPrivateClaimsFromTokenExchangeRequest implements
// op.TokenExchangeStorage: the RFC 8693 "act" claim when there is an actor.
func (s *storage) GetPrivateClaimsFromTokenExchangeRequest(_ context.Context, req op.TokenExchangeRequest) (map[string]any, error) {
	if act := s.actorOf(req); act != nil {
		return map[string]any{"act": act}, nil
	}
	return nil, nil
}

// SetUserinfoFromTokenExchangeRequest implements op.TokenExchangeStorage.
// No ID tokens are issued (ValidateTokenExchangeRequest refuses them).
func (s *storage) SetUserinfoFromTokenExchangeRequest(_ context.Context, info *oidc.UserInfo, req op.TokenExchangeRequest) error {
	info.Subject = req.GetSubject()
	return nil
}

// actorOf returns the "act" claim of a token exchanged by req: the actor,
// with the subject token's own actor (if it is a delegated access token of
// this server) nested inside, as RFC 8693 section 4.1 describes. With no
// actor token the subject token's actor carries over.
func (s *storage) actorOf(req op.TokenExchangeRequest) *oidc.ActorClaims {
	var prior *oidc.ActorClaims
	if req.GetExchangeSubjectTokenType() == oidc.AccessTokenType {
		if t := s.activeToken(req.GetExchangeSubjectTokenIDOrToken()); t != nil {
			prior = t.actor
		}
	}
	if req.GetExchangeActor() == "" {
		return prior
	}
	return &oidc.ActorClaims{Subject: req.GetExchangeActor(), Actor: prior}
}

// ---- access tokens ----

// CreateAccessToken implements op.AuthStorage: it records the token op is
// about to sign and returns its ID (the JWT's jti) and expiry.
func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	t := &token{
		id:       s.newID(),
		subject:  req.GetSubject(),
		audience: slices.Clone(req.GetAudience()),
		scopes:   slices.Clone(req.GetScopes()),
		issuedAt: s.now(),
	}
	ttl := s.defaultTTL
	switch r := req.(type) {
	case *ccRequest:
		t.clientID = r.clientID
	case op.TokenExchangeRequest:
		t.clientID = r.GetClientID()
		t.actor = s.actorOf(r)
		if len(t.audience) == 0 { // as op's JWT: the client is the audience
			t.audience = []string{t.clientID}
		}
	case *oidc.JWTTokenRequest: // UserToken's JWT-profile grant
		t.clientID = r.Subject // op names the user as the token's client_id
	default:
		return "", time.Time{}, fmt.Errorf("authserver: unexpected token request %T", req)
	}
	if c, ok := s.clients[t.clientID]; ok {
		ttl = c.ttl
	}
	t.expiry = t.issuedAt.Add(ttl)
	s.mu.Lock()
	s.tokens[t.id] = t
	s.mu.Unlock()
	return t.id, t.expiry, nil
}

// CreateAccessAndRefreshTokens implements op.AuthStorage. No refresh tokens
// are issued: op would call this only for a token exchange asking for one,
// which ValidateTokenExchangeRequest refuses.
func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, oidc.ErrInvalidRequest().WithDescription("refresh tokens are not issued")
}

// RevokeToken implements op.AuthStorage (RFC 7009). id is the token ID op
// read from a valid access token, or the raw token when op could not read
// it; an unknown token is already invalid, which is success. A token
// issued to another client is not revoked: the request is refused.
func (s *storage) RevokeToken(_ context.Context, id, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok {
		return nil
	}
	if t.clientID != clientID {
		return oidc.ErrUnauthorizedClient().WithDescription("the token was not issued to this client")
	}
	delete(s.tokens, id)
	return nil
}

// GetRefreshTokenInfo implements op.AuthStorage: there are no refresh
// tokens, so op goes on to read the token as an access token.
func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

// SetIntrospectionFromToken implements op.OPStorage (RFC 7662). Any
// authenticated client may introspect any token; a revoked or expired one
// is inactive (an error here makes op answer {"active":false}). Unlike
// op's example storage, the subject need not be a user.
func (s *storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, id, _, _ string) error {
	t := s.activeToken(id)
	if t == nil {
		return errors.New("token is revoked, expired or unknown")
	}
	resp.Subject = t.subject
	resp.ClientID = t.clientID
	resp.Scope = slices.Clone(t.scopes)
	resp.Audience = slices.Clone(t.audience)
	resp.Expiration = oidc.FromTime(t.expiry)
	resp.IssuedAt = oidc.FromTime(t.issuedAt)
	resp.NotBefore = oidc.FromTime(t.issuedAt)
	resp.Issuer = op.IssuerFromContext(ctx)
	resp.JWTID = t.id
	resp.TokenType = oidc.BearerToken
	resp.Actor = t.actor
	return nil
}

// SetUserinfoFromToken implements op.OPStorage for the userinfo endpoint:
// only the subject is known.
func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, id, _, _ string) error {
	t := s.activeToken(id)
	if t == nil {
		return errors.New("token is revoked, expired or unknown")
	}
	info.Subject = t.subject
	return nil
}

// SetUserinfoFromScopes implements op.OPStorage (deprecated by op: empty).
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// GetPrivateClaimsFromScopes implements op.OPStorage: no private claims.
func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// ---- UserToken's JWT-profile grant (RFC 7523 section 2.1) ----

// GetKeyByIDAndClientID implements op.OPStorage: the key that verifies a
// JWT-profile assertion of user id, which only UserToken signs.
func (s *storage) GetKeyByIDAndClientID(_ context.Context, keyID, id string) (*jose.JSONWebKey, error) {
	s.mu.Lock()
	known := s.users[id]
	s.mu.Unlock()
	if !known || keyID != s.userKeyKID {
		return nil, fmt.Errorf("no key %q for %q", keyID, id)
	}
	return &jose.JSONWebKey{Key: s.userKey, KeyID: s.userKeyKID, Algorithm: string(jose.RS256), Use: "sig"}, nil
}

// ValidateJWTProfileScopes implements op.OPStorage: a user UserToken
// minted for gets the scopes it asked for.
func (s *storage) ValidateJWTProfileScopes(_ context.Context, id string, scopes []string) ([]string, error) {
	s.mu.Lock()
	known := s.users[id]
	s.mu.Unlock()
	if !known {
		return nil, oidc.ErrInvalidGrant().WithDescription("unknown user")
	}
	return scopes, nil
}

// JWTProfileTokenType implements op.JWTProfileTokenStorage: a JWT, like
// every access token here.
func (s *storage) JWTProfileTokenType(context.Context, op.TokenRequest) (op.AccessTokenType, error) {
	return op.AccessTokenTypeJWT, nil
}

// ---- signing keys ----

type signingKey struct {
	key *ecdsa.PrivateKey
	kid string
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.kid }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.key.Public() }

// SigningKey implements op.AuthStorage: the ES256 key of access tokens.
func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{s.signer, s.signerKID}, nil
}

// SignatureAlgorithms implements op.AuthStorage.
func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}

// KeySet implements op.AuthStorage: served at /keys, and what op verifies
// its access tokens with.
func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{signingKey{s.signer, s.signerKID}}}, nil
}

// Health implements op.Storage.
func (s *storage) Health(context.Context) error { return nil }

// ---- browser flows: not offered ----

func (s *storage) CreateAuthRequest(context.Context, *oidc.AuthRequest, string) (op.AuthRequest, error) {
	return nil, errNotSupported
}
func (s *storage) AuthRequestByID(context.Context, string) (op.AuthRequest, error) {
	return nil, errNotSupported
}
func (s *storage) AuthRequestByCode(context.Context, string) (op.AuthRequest, error) {
	return nil, errNotSupported
}
func (s *storage) SaveAuthCode(context.Context, string, string) error { return errNotSupported }
func (s *storage) DeleteAuthRequest(context.Context, string) error    { return errNotSupported }
func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, errNotSupported
}
func (s *storage) TerminateSession(context.Context, string, string) error { return nil }
