package authserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// DefaultAccessTokenTTL is the life of an access token of a client that
// sets no AccessTokenTTL, and of a token from UserToken.
const DefaultAccessTokenTTL = 5 * time.Minute

// Paths of the server's endpoints, under Issuer.
const (
	TokenPath         = "/oauth/token"
	IntrospectionPath = "/oauth/introspect"
	RevocationPath    = "/oauth/revoke"
	KeysPath          = "/keys"
)

// IntrospectorClientID is the client Introspect authenticates as: a
// resource server that may only introspect. Config.Clients may not use it.
const IntrospectorClientID = "authserver-introspector"

// internalHeader marks the requests of the Server's own helpers
// (Introspect, UserToken), which SetFault and TokenRequests leave out.
const internalHeader = "X-Authserver-Internal"

// Client is an OAuth client of the server. Every client may use the
// client_credentials and token-exchange grants and revoke its own tokens.
type Client struct {
	// ID is the client_id.
	ID string
	// Secret authenticates the client with client_secret_basic or
	// client_secret_post. Empty: the client authenticates only with a
	// JWT-SVID client assertion.
	Secret string
	// SPIFFEID, if set, lets the client authenticate with an RFC 7523
	// client assertion (client_assertion_type
	// urn:ietf:params:oauth:client-assertion-type:jwt-bearer) that is a
	// JWT-SVID of this ID, verified against Config.Bundles and addressed to
	// the issuer URL or the token endpoint URL. No two clients may share one.
	SPIFFEID string
	// Scopes are the scopes the client may be granted; asking for another
	// is refused with invalid_scope.
	Scopes []string
	// Audiences are the audience and resource values the client may ask
	// for in a token exchange; asking for another is refused with
	// invalid_target.
	Audiences []string
	// AccessTokenTTL is the life of the client's access tokens; zero means
	// DefaultAccessTokenTTL.
	AccessTokenTTL time.Duration
}

// Config configures a Server.
type Config struct {
	// Clients are the OAuth clients.
	Clients []Client
	// Bundles verifies JWT-SVIDs: client assertions, and subject and actor
	// tokens of token exchanges. Required if a client has a SPIFFEID; with
	// nil, every JWT-SVID is refused.
	Bundles jwtbundle.Source
}

// Server is a running authorization server; see the package documentation.
type Server struct {
	ts       *httptest.Server
	op       http.Handler
	store    *storage
	internal string // the internalHeader value of the server's own requests
	rsSecret string // IntrospectorClientID's secret
	userKey  *rsa.PrivateKey
	closing  chan struct{}
	logf     func(format string, args ...any)

	mu     sync.Mutex
	fault  func(*http.Request) (int, time.Duration)
	counts map[string]int
}

// userAssertionKey signs UserToken's JWT-profile assertions. It is RSA
// because op verifies those with RS256 only; one per process saves the
// key generation per server.
var userAssertionKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

// Start starts a server on 127.0.0.1 over plain HTTP. t.Cleanup stops it,
// after the requests in flight (a SetFault delay ends early).
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := start(t, cfg)
	if err != nil {
		t.Fatalf("authserver: %v", err)
	}
	return s
}

func start(t testing.TB, cfg Config) (*Server, error) {
	clients, bySPIFFEID, err := buildClients(cfg)
	if err != nil {
		return nil, err
	}
	userKey, err := userAssertionKey()
	if err != nil {
		return nil, err
	}
	signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	s := &Server{
		internal: randomHex(16),
		rsSecret: randomHex(16),
		userKey:  userKey,
		closing:  make(chan struct{}),
		counts:   map[string]int{},
		logf:     func(format string, args ...any) { t.Logf(format, args...) },
	}
	clients[IntrospectorClientID] = &client{id: IntrospectorClientID, secret: s.rsSecret, ttl: DefaultAccessTokenTTL}

	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	issuer := "http://" + s.ts.Listener.Addr().String()
	s.store = &storage{
		issuer:     issuer,
		tokenURL:   issuer + TokenPath,
		bundles:    cfg.Bundles,
		clients:    clients,
		bySPIFFEID: bySPIFFEID,
		signer:     signer,
		signerKID:  randomHex(8),
		userKey:    &userKey.PublicKey,
		userKeyKID: "authserver-user-assertions",
		defaultTTL: DefaultAccessTokenTTL,
		now:        time.Now,
		tokens:     map[string]*token{},
		users:      map[string]bool{},
	}

	var cryptoKey [32]byte // encrypts op's opaque tokens, which are not used here
	_, _ = rand.Read(cryptoKey[:])
	provider, err := op.NewProvider(
		&op.Config{CryptoKey: cryptoKey, AuthMethodPost: true, AuthMethodPrivateKeyJWT: true},
		s.store,
		op.StaticIssuer(issuer),
		op.WithAllowInsecure(),
		op.WithAccessTokenVerifierOpts(op.WithSupportedAccessTokenSigningAlgorithms(string(jose.ES256))),
	)
	if err != nil {
		s.ts.Listener.Close()
		return nil, err
	}
	endpoints := op.Endpoints{
		// op.RegisterLegacyServer needs an authorization endpoint; with
		// no browser flows, it refuses every request.
		Authorization: op.NewEndpoint("/authorize"),
		Token:         op.NewEndpoint(TokenPath),
		Introspection: op.NewEndpoint(IntrospectionPath),
		Revocation:    op.NewEndpoint(RevocationPath),
		JwksURI:       op.NewEndpoint(KeysPath),
	}
	installLogRouter()
	s.op = op.RegisterLegacyServer(&opServer{LegacyServer: op.NewLegacyServer(provider, endpoints), store: s.store}, http.NotFound)

	s.ts.Start()
	t.Cleanup(func() {
		close(s.closing)
		s.ts.Close()
	})
	return s, nil
}

func buildClients(cfg Config) (map[string]*client, map[spiffeid.ID]*client, error) {
	clients := map[string]*client{}
	bySPIFFEID := map[spiffeid.ID]*client{}
	for _, c := range cfg.Clients {
		switch {
		case c.ID == "":
			return nil, nil, errors.New("a client has no ID")
		case c.ID == IntrospectorClientID:
			return nil, nil, fmt.Errorf("client ID %q is reserved", c.ID)
		case clients[c.ID] != nil:
			return nil, nil, fmt.Errorf("two clients have ID %q", c.ID)
		case c.Secret == "" && c.SPIFFEID == "":
			return nil, nil, fmt.Errorf("client %q has neither Secret nor SPIFFEID: it could not authenticate", c.ID)
		case c.AccessTokenTTL < 0:
			return nil, nil, fmt.Errorf("client %q has a negative AccessTokenTTL", c.ID)
		}
		cl := &client{
			id:        c.ID,
			secret:    c.Secret,
			scopes:    append([]string(nil), c.Scopes...),
			audiences: append([]string(nil), c.Audiences...),
			ttl:       c.AccessTokenTTL,
			grants:    []oidc.GrantType{oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange},
		}
		if cl.ttl == 0 {
			cl.ttl = DefaultAccessTokenTTL
		}
		if c.SPIFFEID != "" {
			id, err := spiffeid.FromString(c.SPIFFEID)
			if err != nil {
				return nil, nil, fmt.Errorf("client %q: SPIFFEID: %w", c.ID, err)
			}
			if other, ok := bySPIFFEID[id]; ok {
				return nil, nil, fmt.Errorf("clients %q and %q have the same SPIFFEID", other.id, c.ID)
			}
			if cfg.Bundles == nil {
				return nil, nil, fmt.Errorf("client %q has a SPIFFEID but Config.Bundles is nil", c.ID)
			}
			cl.spiffeID = id
			bySPIFFEID[id] = cl
		}
		clients[c.ID] = cl
	}
	return clients, bySPIFFEID, nil
}

// Issuer returns the server's issuer URL, such as "http://127.0.0.1:40123".
func (s *Server) Issuer() string { return s.store.issuer }

// TokenURL returns the token endpoint's URL.
func (s *Server) TokenURL() string { return s.store.issuer + TokenPath }

// RevocationURL returns the RFC 7009 revocation endpoint's URL.
func (s *Server) RevocationURL() string { return s.store.issuer + RevocationPath }

// IntrospectionURL returns the RFC 7662 introspection endpoint's URL.
func (s *Server) IntrospectionURL() string { return s.store.issuer + IntrospectionPath }

// Client returns an HTTP client for the server, whose idle connections are
// closed when the server stops.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// TokenRequests returns how many POSTs to the token endpoint had that
// grant_type, whatever their outcome (faults included). The requests of
// UserToken are not counted.
func (s *Server) TokenRequests(grantType string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[grantType]
}

// SetFault sets a fault for POSTs to the token and revocation endpoints,
// nil clearing it. For each request, f gets the request, with its form
// parsed (r.Form), and returns a delay and an HTTP status. The server
// sleeps for delay first, ending early (and answering nothing) if the
// client gives up or the server stops. Then a non-zero status (4xx or 5xx)
// is answered with an RFC 6749 error body instead of calling op: 400
// invalid_request, 401 invalid_client, 503 temporarily_unavailable, other
// 5xx server_error. The requests of Introspect and UserToken are exempt.
func (s *Server) SetFault(f func(r *http.Request) (status int, delay time.Duration)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// serveHTTP counts token requests and injects faults in front of op.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(withLogSink(r.Context(), func(msg string) { s.logf("authserver: %s", msg) }))
	internal := r.Header.Get(internalHeader) == s.internal
	if r.Method != http.MethodPost || internal || (r.URL.Path != TokenPath && r.URL.Path != RevocationPath) {
		s.op.ServeHTTP(w, r)
		return
	}
	// Read the form from a copy of the body, leaving the request to op as
	// it came.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "cannot read the request body")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	parsed := r.Clone(r.Context())
	parsed.Body = io.NopCloser(bytes.NewReader(body))
	_ = parsed.ParseForm() // a malformed form is op's to refuse

	s.mu.Lock()
	if r.URL.Path == TokenPath {
		s.counts[parsed.Form.Get("grant_type")]++
	}
	fault := s.fault
	s.mu.Unlock()

	if fault != nil {
		status, delay := fault(parsed)
		if delay > 0 && !s.sleep(r.Context(), delay) {
			return
		}
		if status != 0 {
			writeFault(w, status)
			return
		}
	}
	s.op.ServeHTTP(w, r)
}

// sleep waits for d and reports whether it did, rather than the request
// ending or the server stopping first.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	}
}

func writeFault(w http.ResponseWriter, status int) {
	code := "invalid_request"
	switch {
	case status < 400 || status > 599:
		writeError(w, http.StatusInternalServerError, "server_error", fmt.Sprintf("authserver: SetFault returned status %d, not an error status", status))
		return
	case status == http.StatusUnauthorized:
		code = "invalid_client"
	case status == http.StatusServiceUnavailable:
		code = "temporarily_unavailable"
	case status >= 500:
		code = "server_error"
	}
	writeError(w, status, code, fmt.Sprintf("fault injected by authserver: HTTP %d", status))
}

// writeError writes an RFC 6749 section 5.2 error response.
func writeError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// Introspect asks the server's RFC 7662 introspection endpoint, over HTTP,
// about token, authenticating as the resource server IntrospectorClientID.
// It returns whether the token is active and the whole response (sub,
// client_id, scope, aud, exp, act...). A revoked, expired or unknown token
// is inactive, with no other claims.
func (s *Server) Introspect(t testing.TB, token string) (active bool, claims map[string]any) {
	t.Helper()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	status, body, err := s.post(s.IntrospectionURL(), form, IntrospectorClientID, s.rsSecret)
	if err != nil {
		t.Fatalf("authserver: introspect: %v", err)
	}
	if status != http.StatusOK {
		t.Fatalf("authserver: introspect: HTTP %d: %s", status, body)
	}
	if err := json.Unmarshal(body, &claims); err != nil {
		t.Fatalf("authserver: introspect: %v", err)
	}
	active, _ = claims["active"].(bool)
	return active, claims
}

// UserToken returns an access token this server issues to user userID
// with scopes, valid for DefaultAccessTokenTTL: the subject_token of an
// on-behalf-of token exchange (subject_token_type
// urn:ietf:params:oauth:token-type:access_token). It is minted by op's RFC
// 7523 JWT-profile authorization grant, over HTTP, with an assertion the
// server signs for the user: no login flow, and any userID will do.
func (s *Server) UserToken(t testing.TB, userID string, scopes ...string) string {
	t.Helper()
	tok, err := s.userToken(userID, scopes)
	if err != nil {
		t.Fatalf("authserver: user token for %q: %v", userID, err)
	}
	return tok
}

func (s *Server) userToken(userID string, scopes []string) (string, error) {
	if userID == "" {
		return "", errors.New("empty user ID")
	}
	s.store.mu.Lock()
	s.store.users[userID] = true
	s.store.mu.Unlock()

	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: s.userKey, KeyID: s.store.userKeyKID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	now := time.Now()
	assertion, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer:   userID,
		Subject:  userID,
		Audience: jwt.Audience{s.Issuer()},
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(time.Minute)),
		ID:       randomHex(8),
	}).Serialize()
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type": {string(oidc.GrantTypeBearer)},
		"assertion":  {assertion},
		"scope":      {strings.Join(scopes, " ")},
	}
	status, body, err := s.post(s.TokenURL(), form, "", "")
	if err != nil {
		return "", err
	}
	var resp struct {
		AccessToken string `json:"access_token"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &resp) != nil || resp.AccessToken == "" {
		return "", fmt.Errorf("HTTP %d: %s", status, body)
	}
	return resp.AccessToken, nil
}

// post sends an internal form POST, with client_secret_basic if id is set.
func (s *Server) post(u string, form url.Values, id, secret string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(internalHeader, s.internal)
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
