package authserver_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/integration/authserver"
)

const (
	ordersAPI   = "orders-api"
	paymentsAPI = "https://payments.example.com"

	grantClientCredentials = "client_credentials"
	grantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	grantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	assertionTypeJWT       = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	tokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypeAccess        = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeRefresh       = "urn:ietf:params:oauth:token-type:refresh_token"
	tokenTypeID            = "urn:ietf:params:oauth:token-type:id_token"
)

// env is a server with three clients, and the development issuer of the
// trust domain example.org whose bundle it trusts:
//   - "svc", with a secret, may ask for orders:read and orders:write and
//     both audiences;
//   - "other", with a secret, orders:read only, no audiences;
//   - "support-bot", authenticating only with JWT-SVIDs of
//     spiffe://example.org/agent/support-bot, orders:read and
//     refunds:write, both audiences.
type env struct {
	srv   *authserver.Server
	td    *identity.DevIssuer
	skew  *atomic.Int64 // added to td's clock, to mint expired SVIDs
	agent spiffeid.ID
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{skew: new(atomic.Int64)}
	td, err := identity.NewDevIssuer("example.org", identity.WithDevClock(func() time.Time {
		return time.Now().Add(time.Duration(e.skew.Load()))
	}))
	if err != nil {
		t.Fatal(err)
	}
	e.td = td
	e.agent = spiffeid.RequireFromPath(td.TrustDomain(), "/agent/support-bot")
	e.srv = authserver.Start(t, authserver.Config{
		Bundles: td,
		Clients: []authserver.Client{
			{ID: "svc", Secret: "svc-secret", Scopes: []string{"orders:read", "orders:write"}, Audiences: []string{ordersAPI, paymentsAPI}},
			{ID: "other", Secret: "other-secret", Scopes: []string{"orders:read"}},
			{ID: "support-bot", SPIFFEID: e.agent.String(), Scopes: []string{"orders:read", "refunds:write"}, Audiences: []string{ordersAPI, paymentsAPI}},
		},
	})
	return e
}

// svid mints a JWT-SVID of id (the agent if zero) for aud (the issuer if
// none).
func (e *env) svid(t testing.TB, id spiffeid.ID, aud ...string) string {
	t.Helper()
	if id.IsZero() {
		id = e.agent
	}
	if len(aud) == 0 {
		aud = []string{e.srv.Issuer()}
	}
	s, err := e.td.MintJWTSVID(id, aud...)
	if err != nil {
		t.Fatal(err)
	}
	return s.Marshal()
}

// expiredSVID mints a JWT-SVID of id that expired 55 minutes ago.
func (e *env) expiredSVID(t testing.TB, id spiffeid.ID) string {
	t.Helper()
	e.skew.Store(int64(-time.Hour))
	defer e.skew.Store(0)
	return e.svid(t, id)
}

// auth sets a request's client authentication.
type auth func(r *http.Request, form url.Values)

func basic(id, secret string) auth {
	return func(r *http.Request, _ url.Values) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
}

func postSecret(id, secret string) auth {
	return func(_ *http.Request, f url.Values) { f.Set("client_id", id); f.Set("client_secret", secret) }
}

func assertion(svid string) auth {
	return func(_ *http.Request, f url.Values) {
		f.Set("client_assertion_type", assertionTypeJWT)
		f.Set("client_assertion", svid)
	}
}

// reply is a JSON answer of the server.
type reply struct {
	status int
	body   map[string]any
	raw    string
}

func (r reply) str(key string) string { s, _ := r.body[key].(string); return s }

// post sends a form POST to u with a.
func post(t testing.TB, c *http.Client, u string, form url.Values, a auth) reply {
	t.Helper()
	r, err := tryPost(c, u, form, a)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tryPost(c *http.Client, u string, form url.Values, a auth) (reply, error) {
	f := url.Values{}
	for k, v := range form {
		f[k] = append([]string(nil), v...)
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, u, nil)
	if err != nil {
		return reply{}, err
	}
	if a != nil {
		a(req, f)
	}
	req.Body = io.NopCloser(strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	r := reply{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r, nil
}

// token asks e's token endpoint for a token and fails the test unless it
// gets one.
func (e *env) token(t testing.TB, form url.Values, a auth) string {
	t.Helper()
	r := post(t, e.srv.Client(), e.srv.TokenURL(), form, a)
	if r.status != http.StatusOK || r.str("access_token") == "" {
		t.Fatalf("token request: HTTP %d: %s", r.status, r.raw)
	}
	return r.str("access_token")
}

func ccForm(scopes ...string) url.Values {
	f := url.Values{"grant_type": {grantClientCredentials}}
	if len(scopes) > 0 {
		f.Set("scope", strings.Join(scopes, " "))
	}
	return f
}

func revoke(t testing.TB, e *env, tok string, a auth) reply {
	t.Helper()
	return post(t, e.srv.Client(), e.srv.RevocationURL(), url.Values{"token": {tok}, "token_type_hint": {"access_token"}}, a)
}

// wantError checks an RFC 6749 error response.
func wantError(t testing.TB, r reply, status int, code string) {
	t.Helper()
	if r.status != status || r.str("error") != code {
		t.Fatalf("got HTTP %d %s, want HTTP %d with error %q", r.status, r.raw, status, code)
	}
	if r.str("error_description") == "" {
		t.Fatalf("error response has no error_description: %s", r.raw)
	}
}

// jwtClaims decodes, without verifying, a JWT's claims.
func jwtClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// strs returns a claim that is a string or a list of strings as a list.
func strs(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// introspectActive fails the test unless tok is active, and returns its claims.
func introspectActive(t testing.TB, srv *authserver.Server, tok string) map[string]any {
	t.Helper()
	active, claims := srv.Introspect(t, tok)
	if !active {
		t.Fatalf("token is inactive: %v", claims)
	}
	return claims
}

func wantInactive(t testing.TB, srv *authserver.Server, tok string) {
	t.Helper()
	if active, claims := srv.Introspect(t, tok); active || len(claims) != 1 {
		t.Fatalf("token is active or has claims: %v", claims)
	}
}

func jsonDecode(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}

// recordingTB records what is logged to it.
type recordingTB struct {
	testing.TB
	mu  sync.Mutex
	log []string
}

func (r *recordingTB) Logf(format string, args ...any) {
	r.mu.Lock()
	r.log = append(r.log, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	r.TB.Logf(format, args...)
}

func (r *recordingTB) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

// fatalTB records a Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	failed bool
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.TB.Logf("Fatalf: "+format, args...)
}
