package authserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/integration/authserver"
)

func TestClientCredentials(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		client string
		auth   auth
	}{
		{"client_secret_basic", "svc", basic("svc", "svc-secret")},
		{"client_secret_post", "svc", postSecret("svc", "svc-secret")},
		{"JWT-SVID assertion for the issuer", "support-bot", assertion(e.svid(t, spiffeid.ID{}))},
		{"JWT-SVID assertion for the token endpoint", "support-bot", assertion(e.svid(t, spiffeid.ID{}, e.srv.TokenURL()))},
		{"JWT-SVID assertion with client_id", "support-bot", func(r *http.Request, f url.Values) {
			assertion(e.svid(t, spiffeid.ID{}))(r, f)
			f.Set("client_id", "support-bot")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, e.srv.Client(), e.srv.TokenURL(), ccForm("orders:read"), tt.auth)
			if r.status != http.StatusOK {
				t.Fatalf("HTTP %d: %s", r.status, r.raw)
			}
			if r.str("token_type") != "Bearer" || r.str("scope") != "orders:read" {
				t.Errorf("response: %s", r.raw)
			}
			if exp, _ := r.body["expires_in"].(float64); exp <= 0 || exp > 300 {
				t.Errorf("expires_in = %v, want (0, 300]", r.body["expires_in"])
			}
			claims := introspectActive(t, e.srv, r.str("access_token"))
			if claims["client_id"] != tt.client || claims["sub"] != tt.client || claims["scope"] != "orders:read" || claims["iss"] != e.srv.Issuer() {
				t.Errorf("introspection: %v", claims)
			}
			jc := jwtClaims(t, r.str("access_token"))
			if jc["iss"] != e.srv.Issuer() || jc["sub"] != tt.client {
				t.Errorf("JWT claims: %v", jc)
			}
		})
	}
}

func TestClientAuthenticationRefused(t *testing.T) {
	e := newEnv(t)
	otherTD, err := identity.NewDevIssuer("other.org")
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := identity.NewDevIssuer("example.org") // same name, keys not in the bundle
	if err != nil {
		t.Fatal(err)
	}
	mint := func(d *identity.DevIssuer, id string, aud ...string) string {
		s, err := d.MintJWTSVID(spiffeid.RequireFromString(id), aud...)
		if err != nil {
			t.Fatal(err)
		}
		return s.Marshal()
	}
	tests := []struct {
		name string
		auth auth
	}{
		{"wrong secret, basic", basic("svc", "nope")},
		{"wrong secret, post", postSecret("svc", "nope")},
		{"unknown client", basic("nobody", "svc-secret")},
		{"secret for a client without one", basic("support-bot", "anything")},
		{"client_id without credentials", func(_ *http.Request, f url.Values) { f.Set("client_id", "svc") }},
		{"JWT-SVID of another trust domain", assertion(mint(otherTD, "spiffe://other.org/agent/support-bot", e.srv.Issuer()))},
		{"JWT-SVID signed by an untrusted key", assertion(mint(impostor, e.agent.String(), e.srv.Issuer()))},
		{"expired JWT-SVID", assertion(e.expiredSVID(t, spiffeid.ID{}))},
		{"JWT-SVID for another audience", assertion(e.svid(t, spiffeid.ID{}, "https://elsewhere.example.com"))},
		{"JWT-SVID of no client", assertion(e.svid(t, spiffeid.RequireFromString("spiffe://example.org/agent/unknown")))},
		{"JWT-SVID of another client than client_id", func(r *http.Request, f url.Values) {
			assertion(e.svid(t, spiffeid.ID{}))(r, f)
			f.Set("client_id", "svc")
		}},
		{"garbage assertion", assertion("not.a.jwt")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, e.srv.Client(), e.srv.TokenURL(), ccForm("orders:read"), tt.auth)
			wantError(t, r, http.StatusUnauthorized, "invalid_client")
			// The same refusal at the token-exchange grant and at revocation.
			r = post(t, e.srv.Client(), e.srv.TokenURL(), url.Values{
				"grant_type":         {grantTokenExchange},
				"subject_token":      {e.svid(t, spiffeid.ID{})},
				"subject_token_type": {tokenTypeJWT},
			}, tt.auth)
			wantError(t, r, http.StatusUnauthorized, "invalid_client")
			r = post(t, e.srv.Client(), e.srv.RevocationURL(), url.Values{"token": {"x"}}, tt.auth)
			wantError(t, r, http.StatusUnauthorized, "invalid_client")
		})
	}
	// op's own refusals, before client authentication.
	r := post(t, e.srv.Client(), e.srv.TokenURL(), ccForm(), nil)
	wantError(t, r, http.StatusBadRequest, "invalid_request")
	r = post(t, e.srv.Client(), e.srv.TokenURL(), ccForm(), func(r *http.Request, f url.Values) {
		basic("svc", "svc-secret")(r, f)
		assertion(e.svid(t, spiffeid.ID{}))(r, f)
	})
	wantError(t, r, http.StatusBadRequest, "invalid_request")
}

func TestClientCredentialsScopeRefused(t *testing.T) {
	e := newEnv(t)
	r := post(t, e.srv.Client(), e.srv.TokenURL(), ccForm("orders:read", "orders:delete"), basic("svc", "svc-secret"))
	wantError(t, r, http.StatusBadRequest, "invalid_scope")
	r = post(t, e.srv.Client(), e.srv.TokenURL(), ccForm("orders:write"), basic("other", "other-secret"))
	wantError(t, r, http.StatusBadRequest, "invalid_scope")
}

func TestIntrospectionAndRevocation(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, ccForm("orders:read"), basic("svc", "svc-secret"))
	introspectActive(t, e.srv, tok)

	// Another client cannot revoke it (RFC 7009 section 2.1).
	r := revoke(t, e, tok, basic("other", "other-secret"))
	wantError(t, r, http.StatusBadRequest, "unauthorized_client")
	introspectActive(t, e.srv, tok)

	r = revoke(t, e, tok, basic("svc", "svc-secret"))
	if r.status != http.StatusOK {
		t.Fatalf("revoke: HTTP %d: %s", r.status, r.raw)
	}
	wantInactive(t, e.srv, tok)

	// Revoking a revoked or unknown token succeeds (RFC 7009 section 2.2).
	for _, tok := range []string{tok, "not-a-token"} {
		if r := revoke(t, e, tok, basic("svc", "svc-secret")); r.status != http.StatusOK {
			t.Fatalf("revoke: HTTP %d: %s", r.status, r.raw)
		}
	}
	wantInactive(t, e.srv, "not-a-token")

	// A client authenticating with JWT-SVIDs revokes the same way.
	tok = e.token(t, ccForm("refunds:write"), assertion(e.svid(t, spiffeid.ID{})))
	introspectActive(t, e.srv, tok)
	if r := revoke(t, e, tok, assertion(e.svid(t, spiffeid.ID{}))); r.status != http.StatusOK {
		t.Fatalf("revoke: HTTP %d: %s", r.status, r.raw)
	}
	wantInactive(t, e.srv, tok)
}

// exchangeForm is a token exchange of the agent's JWT-SVID.
func exchangeForm(subject string, extra url.Values) url.Values {
	f := url.Values{
		"grant_type":           {grantTokenExchange},
		"subject_token":        {subject},
		"subject_token_type":   {tokenTypeJWT},
		"requested_token_type": {tokenTypeAccess},
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func TestTokenExchangeOfJWTSVID(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, client string
		auth         auth
		subjectAud   string
	}{
		{"client authenticated by JWT-SVID", "support-bot", assertion(e.svid(t, spiffeid.ID{})), e.srv.Issuer()},
		{"client authenticated by secret", "svc", basic("svc", "svc-secret"), e.srv.TokenURL()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := exchangeForm(e.svid(t, spiffeid.ID{}, tt.subjectAud), url.Values{
				"audience": {ordersAPI},
				"resource": {paymentsAPI},
				"scope":    {"orders:read"},
			})
			r := post(t, e.srv.Client(), e.srv.TokenURL(), form, tt.auth)
			if r.status != http.StatusOK {
				t.Fatalf("HTTP %d: %s", r.status, r.raw)
			}
			if r.str("issued_token_type") != tokenTypeAccess || r.str("token_type") != "Bearer" || r.str("scope") != "orders:read" {
				t.Errorf("response: %s", r.raw)
			}
			tok := r.str("access_token")
			claims := introspectActive(t, e.srv, tok)
			if claims["sub"] != e.agent.String() || claims["client_id"] != tt.client || claims["scope"] != "orders:read" || claims["act"] != nil {
				t.Errorf("introspection: %v", claims)
			}
			if aud := strs(claims["aud"]); !slices.Contains(aud, ordersAPI) || !slices.Contains(aud, paymentsAPI) {
				t.Errorf("introspected aud = %v, want %s and %s", aud, ordersAPI, paymentsAPI)
			}
			jc := jwtClaims(t, tok)
			if aud := strs(jc["aud"]); jc["sub"] != e.agent.String() || !slices.Contains(aud, ordersAPI) || !slices.Contains(aud, paymentsAPI) {
				t.Errorf("JWT claims: %v", jc)
			}

			// The other client may not revoke it; its own client may.
			other := basic("svc", "svc-secret")
			if tt.client == "svc" {
				other = basic("other", "other-secret")
			}
			wantError(t, revoke(t, e, tok, other), http.StatusBadRequest, "unauthorized_client")
			introspectActive(t, e.srv, tok)
			if r := revoke(t, e, tok, tt.auth); r.status != http.StatusOK {
				t.Fatalf("revoke: HTTP %d: %s", r.status, r.raw)
			}
			wantInactive(t, e.srv, tok)
		})
	}

	t.Run("defaults", func(t *testing.T) {
		// No requested_token_type, audience or scope: an access token for
		// the client, with no scope.
		form := exchangeForm(e.svid(t, spiffeid.ID{}), nil)
		form.Del("requested_token_type")
		r := post(t, e.srv.Client(), e.srv.TokenURL(), form, assertion(e.svid(t, spiffeid.ID{})))
		if r.status != http.StatusOK || r.str("issued_token_type") != tokenTypeAccess {
			t.Fatalf("HTTP %d: %s", r.status, r.raw)
		}
		claims := introspectActive(t, e.srv, r.str("access_token"))
		if claims["sub"] != e.agent.String() || !slices.Equal(strs(claims["aud"]), []string{"support-bot"}) || claims["scope"] != nil {
			t.Errorf("introspection: %v", claims)
		}
	})
}

func TestTokenExchangeOnBehalfOfUser(t *testing.T) {
	e := newEnv(t)
	user := e.srv.UserToken(t, "alice", "orders:read", "refunds:write")
	if claims := introspectActive(t, e.srv, user); claims["sub"] != "alice" || claims["scope"] != "orders:read refunds:write" {
		t.Fatalf("user token: %v", claims)
	}
	if n := e.srv.TokenRequests(grantJWTBearer); n != 0 {
		t.Errorf("UserToken counted: TokenRequests(jwt-bearer) = %d", n)
	}

	form := url.Values{
		"grant_type":         {grantTokenExchange},
		"subject_token":      {user},
		"subject_token_type": {tokenTypeAccess},
		"actor_token":        {e.svid(t, spiffeid.ID{})},
		"actor_token_type":   {tokenTypeJWT},
		"audience":           {ordersAPI},
		"scope":              {"orders:read"},
	}
	r := post(t, e.srv.Client(), e.srv.TokenURL(), form, assertion(e.svid(t, spiffeid.ID{})))
	if r.status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", r.status, r.raw)
	}
	delegated := r.str("access_token")
	claims := introspectActive(t, e.srv, delegated)
	act, _ := claims["act"].(map[string]any)
	if claims["sub"] != "alice" || act["sub"] != e.agent.String() || act["act"] != nil || claims["client_id"] != "support-bot" || claims["scope"] != "orders:read" {
		t.Errorf("introspection: %v", claims)
	}
	jc := jwtClaims(t, delegated)
	if jact, _ := jc["act"].(map[string]any); jc["sub"] != "alice" || jact["sub"] != e.agent.String() {
		t.Errorf("JWT claims: %v", jc)
	}

	t.Run("sub-agent", func(t *testing.T) {
		// The delegated token, exchanged again with a sub-agent as actor:
		// the actors nest, newest outermost (RFC 8693 section 4.1).
		sub := spiffeid.RequireFromString("spiffe://example.org/agent/order-lookup")
		f := url.Values{
			"grant_type":         {grantTokenExchange},
			"subject_token":      {delegated},
			"subject_token_type": {tokenTypeAccess},
			"actor_token":        {e.svid(t, sub)},
			"actor_token_type":   {tokenTypeJWT},
			"scope":              {"orders:read"},
		}
		r := post(t, e.srv.Client(), e.srv.TokenURL(), f, basic("svc", "svc-secret"))
		if r.status != http.StatusOK {
			t.Fatalf("HTTP %d: %s", r.status, r.raw)
		}
		claims := introspectActive(t, e.srv, r.str("access_token"))
		act, _ := claims["act"].(map[string]any)
		inner, _ := act["act"].(map[string]any)
		if claims["sub"] != "alice" || act["sub"] != sub.String() || inner["sub"] != e.agent.String() {
			t.Errorf("introspection: %v", claims)
		}
	})

	// Revoking the delegated token leaves the user's token active.
	if r := revoke(t, e, delegated, assertion(e.svid(t, spiffeid.ID{}))); r.status != http.StatusOK {
		t.Fatalf("revoke: HTTP %d: %s", r.status, r.raw)
	}
	wantInactive(t, e.srv, delegated)
	introspectActive(t, e.srv, user)

	t.Run("revoked subject token", func(t *testing.T) {
		// A revoked access token of this server is no subject_token.
		f := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {delegated}, "subject_token_type": {tokenTypeAccess}}
		wantError(t, post(t, e.srv.Client(), e.srv.TokenURL(), f, basic("svc", "svc-secret")), http.StatusBadRequest, "invalid_request")
	})
}

func TestTokenExchangeRefused(t *testing.T) {
	e := newEnv(t)
	otherTD, err := identity.NewDevIssuer("other.org")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := otherTD.MintJWTSVID(spiffeid.RequireFromString("spiffe://other.org/agent/support-bot"), e.srv.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	user := e.srv.UserToken(t, "alice", "orders:read")
	obo := func(extra url.Values) url.Values {
		f := url.Values{
			"grant_type":         {grantTokenExchange},
			"subject_token":      {user},
			"subject_token_type": {tokenTypeAccess},
			"actor_token":        {e.svid(t, spiffeid.ID{})},
			"actor_token_type":   {tokenTypeJWT},
		}
		for k, v := range extra {
			f[k] = v
		}
		return f
	}
	tests := []struct {
		name string
		form url.Values
		code string
	}{
		{"subject JWT-SVID for another audience", exchangeForm(e.svid(t, spiffeid.ID{}, "https://elsewhere.example.com"), nil), "invalid_request"},
		{"expired subject JWT-SVID", exchangeForm(e.expiredSVID(t, spiffeid.ID{}), nil), "invalid_request"},
		{"subject JWT-SVID of an untrusted trust domain", exchangeForm(foreign.Marshal(), nil), "invalid_request"},
		{"audience not allowed", exchangeForm(e.svid(t, spiffeid.ID{}), url.Values{"audience": {"https://billing.example.com"}}), "invalid_target"},
		{"resource not allowed", exchangeForm(e.svid(t, spiffeid.ID{}), url.Values{"resource": {ordersAPI, "https://billing.example.com"}}), "invalid_target"},
		{"scope not allowed", exchangeForm(e.svid(t, spiffeid.ID{}), url.Values{"scope": {"orders:read orders:write"}}), "invalid_scope"},
		{"scope not in the user's token", obo(url.Values{"scope": {"refunds:write"}}), "invalid_scope"},
		{"expired actor JWT-SVID", obo(url.Values{"actor_token": {e.expiredSVID(t, spiffeid.ID{})}}), "invalid_request"},
		{"actor JWT-SVID of an untrusted trust domain", obo(url.Values{"actor_token": {foreign.Marshal()}}), "invalid_request"},
		{"actor_token without actor_token_type", obo(url.Values{"actor_token_type": {""}}), "invalid_request"},
		{"JWT-SVID as an access token", exchangeForm(e.svid(t, spiffeid.ID{}), url.Values{"subject_token_type": {tokenTypeAccess}}), "invalid_request"},
		{"user token as a JWT", obo(url.Values{"subject_token_type": {tokenTypeJWT}}), "invalid_request"},
		{"ID token subject", exchangeForm(e.svid(t, spiffeid.ID{}), url.Values{"subject_token_type": {tokenTypeID}}), "invalid_request"},
		{"refresh token requested", exchangeForm(e.svid(t, spiffeid.ID{}), url.Values{"requested_token_type": {tokenTypeRefresh}}), "invalid_request"},
		{"unknown token type", exchangeForm(e.svid(t, spiffeid.ID{}), url.Values{"subject_token_type": {"urn:example:saml"}}), "invalid_request"},
		{"no subject_token", exchangeForm("", nil), "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, e.srv.Client(), e.srv.TokenURL(), tt.form, assertion(e.svid(t, spiffeid.ID{})))
			wantError(t, r, http.StatusBadRequest, tt.code)
		})
	}
	// A client with no audiences may ask for none.
	r := post(t, e.srv.Client(), e.srv.TokenURL(), exchangeForm(e.svid(t, spiffeid.ID{}), url.Values{"audience": {ordersAPI}}), basic("other", "other-secret"))
	wantError(t, r, http.StatusBadRequest, "invalid_target")
}

func TestSetFault(t *testing.T) {
	e := newEnv(t)
	svc := basic("svc", "svc-secret")

	var seen sync.Map // grant_type the fault function saw
	e.srv.SetFault(func(r *http.Request) (int, time.Duration) {
		seen.Store(r.Form.Get("grant_type"), true)
		if r.URL.Path == authserver.TokenPath {
			return http.StatusInternalServerError, 0
		}
		return 0, 0
	})
	wantError(t, post(t, e.srv.Client(), e.srv.TokenURL(), ccForm(), svc), http.StatusInternalServerError, "server_error")
	if _, ok := seen.Load(grantClientCredentials); !ok {
		t.Error("the fault function did not see the request's form")
	}
	// Introspection and UserToken are not faulted.
	e.srv.Introspect(t, "x")
	e.srv.UserToken(t, "alice")

	e.srv.SetFault(func(*http.Request) (int, time.Duration) { return http.StatusServiceUnavailable, 0 })
	wantError(t, post(t, e.srv.Client(), e.srv.TokenURL(), ccForm(), svc), http.StatusServiceUnavailable, "temporarily_unavailable")
	e.srv.SetFault(func(*http.Request) (int, time.Duration) { return http.StatusUnauthorized, 0 })
	wantError(t, post(t, e.srv.Client(), e.srv.TokenURL(), ccForm(), svc), http.StatusUnauthorized, "invalid_client")

	// Revocation: the fault answers instead of op, so nothing is revoked.
	e.srv.SetFault(nil)
	tok := e.token(t, ccForm(), svc)
	e.srv.SetFault(func(r *http.Request) (int, time.Duration) {
		if r.URL.Path == authserver.RevocationPath {
			return http.StatusBadGateway, 0
		}
		return 0, 0
	})
	wantError(t, revoke(t, e, tok, svc), http.StatusBadGateway, "server_error")
	introspectActive(t, e.srv, tok)
	e.token(t, ccForm(), svc) // the token endpoint is unaffected

	// A delay longer than the client's timeout: the client gives up, and
	// the server's handler ends with it.
	e.srv.SetFault(func(*http.Request) (int, time.Duration) { return 0, time.Minute })
	impatient := &http.Client{Transport: e.srv.Client().Transport, Timeout: 100 * time.Millisecond}
	start := time.Now()
	_, err := tryPost(impatient, e.srv.TokenURL(), ccForm(), svc)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "Timeout") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("timed out after %v", d)
	}

	// A delay within the timeout, then op answers.
	e.srv.SetFault(func(*http.Request) (int, time.Duration) { return 0, 50 * time.Millisecond })
	start = time.Now()
	e.token(t, ccForm(), svc)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answered after %v, before the delay", d)
	}

	// A delayed error.
	e.srv.SetFault(func(*http.Request) (int, time.Duration) { return http.StatusTooManyRequests, 20 * time.Millisecond })
	wantError(t, post(t, e.srv.Client(), e.srv.TokenURL(), ccForm(), svc), http.StatusTooManyRequests, "invalid_request")

	e.srv.SetFault(nil)
	e.token(t, ccForm(), svc)
	f := exchangeForm(e.svid(t, spiffeid.ID{}), nil)
	e.token(t, f, svc)
}

func TestTokenRequests(t *testing.T) {
	e := newEnv(t)
	svc := basic("svc", "svc-secret")
	e.token(t, ccForm(), svc)
	e.token(t, ccForm(), svc)
	post(t, e.srv.Client(), e.srv.TokenURL(), ccForm(), basic("svc", "wrong"))
	e.srv.SetFault(func(r *http.Request) (int, time.Duration) {
		if r.Form.Get("grant_type") == grantTokenExchange {
			return http.StatusInternalServerError, 0
		}
		return 0, 0
	})
	post(t, e.srv.Client(), e.srv.TokenURL(), exchangeForm(e.svid(t, spiffeid.ID{}), nil), svc)
	e.srv.SetFault(nil)
	e.token(t, exchangeForm(e.svid(t, spiffeid.ID{}), nil), svc)
	e.srv.UserToken(t, "alice")
	revoke(t, e, "x", svc) // not a token request
	e.srv.Introspect(t, "x")

	for grant, want := range map[string]int{grantClientCredentials: 3, grantTokenExchange: 2, grantJWTBearer: 0, "": 0} {
		if got := e.srv.TokenRequests(grant); got != want {
			t.Errorf("TokenRequests(%q) = %d, want %d", grant, got, want)
		}
	}
}

func TestConcurrentClientCredentials(t *testing.T) {
	e := newEnv(t)
	const n = 200
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		tokens = map[string]bool{}
		errs   []error
	)
	for i := range n {
		wg.Go(func() {
			a := basic("svc", "svc-secret")
			if i%2 == 1 {
				a = postSecret("svc", "svc-secret")
			}
			r, err := tryPost(e.srv.Client(), e.srv.TokenURL(), ccForm("orders:read"), a)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case r.status != http.StatusOK || r.str("access_token") == "":
				errs = append(errs, fmt.Errorf("HTTP %d: %s", r.status, r.raw))
			default:
				tokens[r.str("access_token")] = true
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d requests failed, first: %v", len(errs), n, errs[0])
	}
	if len(tokens) != n {
		t.Errorf("%d distinct tokens, want %d", len(tokens), n)
	}
	if got := e.srv.TokenRequests(grantClientCredentials); got != n {
		t.Errorf("TokenRequests = %d, want %d", got, n)
	}
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t)
	resp, err := e.srv.Client().Get(e.srv.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Issuer        string   `json:"issuer"`
		Token         string   `json:"token_endpoint"`
		Introspection string   `json:"introspection_endpoint"`
		Revocation    string   `json:"revocation_endpoint"`
		JWKS          string   `json:"jwks_uri"`
		Grants        []string `json:"grant_types_supported"`
	}
	if err := jsonDecode(resp, &d); err != nil {
		t.Fatal(err)
	}
	if d.Issuer != e.srv.Issuer() || d.Token != e.srv.TokenURL() || d.Introspection != e.srv.IntrospectionURL() ||
		d.Revocation != e.srv.RevocationURL() || d.JWKS != e.srv.Issuer()+authserver.KeysPath ||
		!slices.Contains(d.Grants, grantClientCredentials) || !slices.Contains(d.Grants, grantTokenExchange) {
		t.Errorf("discovery: %+v", d)
	}
}

func TestStartRefusesBadConfig(t *testing.T) {
	td, err := identity.NewDevIssuer("example.org")
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]authserver.Config{
		"no ID":                 {Clients: []authserver.Client{{Secret: "s"}}},
		"duplicate ID":          {Clients: []authserver.Client{{ID: "a", Secret: "s"}, {ID: "a", Secret: "t"}}},
		"reserved ID":           {Clients: []authserver.Client{{ID: authserver.IntrospectorClientID, Secret: "s"}}},
		"no credentials":        {Clients: []authserver.Client{{ID: "a"}}},
		"bad SPIFFE ID":         {Bundles: td, Clients: []authserver.Client{{ID: "a", SPIFFEID: "https://example.org/a"}}},
		"shared SPIFFE ID":      {Bundles: td, Clients: []authserver.Client{{ID: "a", SPIFFEID: "spiffe://example.org/a"}, {ID: "b", SPIFFEID: "spiffe://example.org/a"}}},
		"SPIFFE ID, no bundles": {Clients: []authserver.Client{{ID: "a", SPIFFEID: "spiffe://example.org/a"}}},
		"negative TTL":          {Clients: []authserver.Client{{ID: "a", Secret: "s", AccessTokenTTL: -time.Second}}},
	} {
		t.Run(name, func(t *testing.T) {
			ft := &fatalTB{TB: t}
			if srv := authserver.Start(ft, cfg); srv != nil || !ft.failed {
				t.Error("Start accepted the config")
			}
		})
	}
}

func TestAccessTokenTTL(t *testing.T) {
	td, err := identity.NewDevIssuer("example.org")
	if err != nil {
		t.Fatal(err)
	}
	srv := authserver.Start(t, authserver.Config{Bundles: td, Clients: []authserver.Client{
		{ID: "short", Secret: "s", AccessTokenTTL: time.Second},
	}})
	r := post(t, srv.Client(), srv.TokenURL(), ccForm(), basic("short", "s"))
	if exp, _ := r.body["expires_in"].(float64); r.status != http.StatusOK || exp > 1 {
		t.Fatalf("HTTP %d: %s", r.status, r.raw)
	}
	tok := r.str("access_token")
	introspectActive(t, srv, tok)
	time.Sleep(1100 * time.Millisecond)
	wantInactive(t, srv, tok)
}

// TestLogsNoTokens checks that what op logs reaches the test's log, with
// the reasons for refusals and without the tokens or secrets.
func TestLogsNoTokens(t *testing.T) {
	rec := &recordingTB{TB: t}
	e := newEnv(rec)
	secrets := []string{"svc-secret", "wrong-secret"}
	expired := e.expiredSVID(t, spiffeid.ID{})
	secrets = append(secrets, expired)
	post(t, e.srv.Client(), e.srv.TokenURL(), exchangeForm(expired, nil), basic("svc", "svc-secret"))
	post(t, e.srv.Client(), e.srv.TokenURL(), ccForm(), basic("svc", "wrong-secret"))
	bad := e.svid(t, spiffeid.ID{}, "https://elsewhere.example.com")
	secrets = append(secrets, bad)
	post(t, e.srv.Client(), e.srv.TokenURL(), ccForm(), assertion(bad))
	user := e.srv.UserToken(t, "alice")
	secrets = append(secrets, user)
	tok := e.token(t, exchangeForm(user, url.Values{"subject_token_type": {tokenTypeAccess}}), basic("svc", "svc-secret"))
	secrets = append(secrets, tok)
	revoke(t, e, tok, basic("other", "other-secret"))

	lines := rec.lines()
	if len(lines) == 0 {
		t.Fatal("nothing logged")
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{"expired", "audience", "invalid_client", "unauthorized_client"} {
		if !strings.Contains(all, want) {
			t.Errorf("log does not mention %q:\n%s", want, all)
		}
	}
	for _, s := range secrets {
		// A JWT's signature alone is enough to recognise it.
		if i := strings.LastIndex(s, "."); i >= 0 {
			s = s[i+1:]
		}
		if strings.Contains(all, s) {
			t.Errorf("log contains a token or secret:\n%s", all)
		}
	}
}

// TestNoGoroutineLeak checks that a stopped server leaves no goroutines,
// even after a request abandoned during a fault's delay.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("server", func(t *testing.T) {
		e := newEnv(t)
		e.token(t, ccForm(), basic("svc", "svc-secret"))
		e.token(t, exchangeForm(e.svid(t, spiffeid.ID{}), nil), assertion(e.svid(t, spiffeid.ID{})))
		e.srv.SetFault(func(*http.Request) (int, time.Duration) { return 0, time.Hour })
		impatient := &http.Client{Transport: e.srv.Client().Transport, Timeout: 50 * time.Millisecond}
		if _, err := tryPost(impatient, e.srv.TokenURL(), ccForm(), basic("svc", "svc-secret")); err == nil {
			t.Fatal("no timeout")
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
