package oauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/oauth"
	"github.com/agentguard/go-sdk/identity"
)

// canary is part of every access token, client secret and user token the
// tests use: it must never appear in an error or in printed values.
const canary = "CANARY-oauth-9d4be1"

// Values with characters that need escaping in forms and Basic headers.
const (
	clientID     = "agent:bot/1 ü+&="
	clientSecret = "s3c:r+t/ =&%" + canary + "-secret"
	userToken    = "user tok/+=&?" + canary + "-user"
	accessToken  = "at-" + canary + "-access"
)

// request is what the fake authorization server received.
type request struct {
	Path   string
	Form   url.Values
	Header http.Header
	// BasicUser and BasicPass are the Basic credentials as sent (still
	// form-encoded, per RFC 6749 §2.3.1); HasBasic says whether any were.
	BasicUser, BasicPass string
	HasBasic             bool
	// CtxDone says whether the request's context was done when the
	// handler returned (the client gave up on it).
	CtxDone bool
}

// ClientID returns the client ID the request authenticated with: the Basic user
// (decoded) or the client_id parameter.
func (r request) ClientID(t *testing.T) string {
	t.Helper()
	if r.HasBasic {
		id, err := url.QueryUnescape(r.BasicUser)
		if err != nil {
			t.Fatalf("Basic user %q is not form-encoded: %v", r.BasicUser, err)
		}
		return id
	}
	return r.Form.Get("client_id")
}

// handler answers one request; n counts the requests to its endpoint,
// from 1.
type handler func(w http.ResponseWriter, r *http.Request, n int, req request)

// asServer is a fake OAuth authorization server: /token and /revoke, each
// answered by a handler, recording every request.
type asServer struct {
	*httptest.Server
	token, revoke handler

	mu     sync.Mutex
	reqs   []request
	counts map[string]int
}

func newAS(t *testing.T, token, revoke handler) *asServer {
	t.Helper()
	s := &asServer{token: token, revoke: revoke, counts: map[string]int{}}
	if s.token == nil {
		s.token = okToken(accessToken, 300, "")
	}
	if s.revoke == nil {
		s.revoke = status(http.StatusOK, "")
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *asServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	form, _ := url.ParseQuery(string(body))
	req := request{Path: r.URL.Path, Form: form, Header: r.Header.Clone()}
	req.BasicUser, req.BasicPass, req.HasBasic = r.BasicAuth()
	s.mu.Lock()
	s.counts[r.URL.Path]++
	n := s.counts[r.URL.Path]
	idx := len(s.reqs)
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	switch r.URL.Path {
	case "/token":
		s.token(w, r, n, req)
	case "/revoke":
		s.revoke(w, r, n, req)
	default:
		http.NotFound(w, r)
	}
	s.mu.Lock()
	s.reqs[idx].CtxDone = r.Context().Err() != nil
	s.mu.Unlock()
}

// requests returns the requests to path.
func (s *asServer) requests(path string) []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []request
	for _, r := range s.reqs {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (s *asServer) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

func (s *asServer) tokenURL() string  { return s.URL + "/token" }
func (s *asServer) revokeURL() string { return s.URL + "/revoke" }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// okToken answers with a bearer token; expiresIn is any JSON value (nil
// omits it), scope is omitted when empty.
func okToken(tok string, expiresIn any, scope string) handler {
	return func(w http.ResponseWriter, _ *http.Request, _ int, _ request) {
		m := map[string]any{"access_token": tok, "token_type": "Bearer"}
		if expiresIn != nil {
			m["expires_in"] = expiresIn
		}
		if scope != "" {
			m["scope"] = scope
		}
		writeJSON(w, http.StatusOK, m)
	}
}

// status answers code with an RFC 6749 error body, or none when errCode is
// empty.
func status(code int, errCode string) handler {
	return func(w http.ResponseWriter, _ *http.Request, _ int, _ request) {
		if errCode == "" {
			w.WriteHeader(code)
			return
		}
		writeJSON(w, code, map[string]string{"error": errCode, "error_description": "refused by the test server"})
	}
}

// raw answers code with body as is.
func raw(code int, contentType, body string) handler {
	return func(w http.ResponseWriter, _ *http.Request, _ int, _ request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// failFirst answers the first n requests with code, then as next does.
func failFirst(n, code int, next handler) handler {
	return func(w http.ResponseWriter, r *http.Request, i int, req request) {
		if i <= n {
			writeJSON(w, code, map[string]string{"error": "temporarily_unavailable"})
			return
		}
		next(w, r, i, req)
	}
}

// hang answers only once the request's context is done (or the test ends).
func hang(stop <-chan struct{}) handler {
	return func(_ http.ResponseWriter, r *http.Request, _ int, _ request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}
}

// stopper returns a channel closed when the test ends, before the servers
// made earlier are closed.
func stopper(t *testing.T) <-chan struct{} {
	c := make(chan struct{})
	t.Cleanup(func() { close(c) })
	return c
}

// devAgents returns a development issuer, the agent /agent/x and another
// agent /agent/other.
func devAgents(t *testing.T, opts ...identity.DevOption) (*identity.DevIssuer, *identity.DevAgent, *identity.DevAgent) {
	t.Helper()
	d, err := identity.NewDevIssuer("example.org", opts...)
	if err != nil {
		t.Fatal(err)
	}
	a, err := d.Agent("/agent/x")
	if err != nil {
		t.Fatal(err)
	}
	o, err := d.Agent("/agent/other")
	if err != nil {
		t.Fatal(err)
	}
	return d, a, o
}

// newReq returns a request of agent a with an audience, two resources and
// two scopes.
func newReq(a *identity.DevAgent) credentials.Request {
	return credentials.Request{
		Requirement: credentials.Requirement{
			Name:      "api",
			Provider:  "p",
			Audience:  "https://api.example.com",
			Resources: []string{"https://api.example.com/v1", "https://files.example.com/"},
			Scopes:    []string{"read", "write"},
		},
		TaskID:    "task-1",
		Agent:     a.ID().String(),
		JWTIssuer: a,
		UserToken: credentials.NewSecret(userToken),
	}
}

// verifySVID checks that tok is a JWT-SVID of agent a for audience,
// verified against d's bundle.
func verifySVID(t *testing.T, d *identity.DevIssuer, a *identity.DevAgent, tok, audience, what string) *identity.JWTSVID {
	t.Helper()
	if tok == "" {
		t.Fatalf("%s: no JWT-SVID sent", what)
	}
	s, err := identity.VerifyJWTSVID(tok, d, audience)
	if err != nil {
		t.Fatalf("%s: does not verify for audience %q: %v", what, audience, err)
	}
	if s.ID != a.ID() {
		t.Fatalf("%s: names %s, want %s", what, s.ID, a.ID())
	}
	return s
}

// noCanary fails if any of texts contains the canary or one of secrets.
func noCanary(t *testing.T, what string, texts []string, secrets ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, canary) {
			t.Errorf("%s: canary leaked in %q", what, s)
		}
		for _, v := range secrets {
			if len(v) >= 8 && strings.Contains(s, v) {
				t.Errorf("%s: secret %.12q… leaked in %q", what, v, s)
			}
		}
	}
}

// errTexts returns err's text in every fmt form.
func errTexts(err error) []string {
	if err == nil {
		return nil
	}
	return []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), fmt.Sprintf("%q", err)}
}

// provider is a constructor of either provider under test.
type provider struct {
	name string
	make func(t *testing.T, cfg oauth.Config) credentials.Provider
}

func ccProvider(t *testing.T, cfg oauth.Config) credentials.Provider {
	t.Helper()
	p, err := oauth.NewClientCredentials(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func teProvider(mode oauth.Mode) func(t *testing.T, cfg oauth.Config) credentials.Provider {
	return func(t *testing.T, cfg oauth.Config) credentials.Provider {
		t.Helper()
		p, err := oauth.NewTokenExchange(cfg, mode)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

var providers = []provider{
	{"client_credentials", ccProvider},
	{"exchange_as_agent", teProvider(oauth.AsAgent)},
	{"exchange_on_behalf", teProvider(oauth.OnBehalfOfUser)},
}

// within fails unless got is within [lo, hi].
func within(t *testing.T, what string, got, lo, hi time.Time) {
	t.Helper()
	if got.Before(lo) || got.After(hi) {
		t.Errorf("%s = %s, want within [%s, %s]", what, got, lo, hi)
	}
}

// bg is a context for calls that should not hang.
func bg(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
