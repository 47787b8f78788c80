package oauth_test

import (
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/oauth"
	"github.com/agentguard/go-sdk/identity"
)

// checkCCParams checks the grant parameters common to every client
// authentication method.
func checkCCParams(t *testing.T, r request, req credentials.Request) {
	t.Helper()
	if got := r.Form.Get("grant_type"); got != "client_credentials" {
		t.Errorf("grant_type = %q", got)
	}
	if got, want := r.Form.Get("scope"), strings.Join(req.Scopes, " "); got != want {
		t.Errorf("scope = %q, want %q", got, want)
	}
	if got := r.Form["audience"]; !slices.Equal(got, []string{req.Audience}) {
		t.Errorf("audience = %q, want [%q]", got, req.Audience)
	}
	if got := r.Form["resource"]; !slices.Equal(got, req.Resources) {
		t.Errorf("resource = %q, want %q", got, req.Resources)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestClientCredentialsSecretBasic(t *testing.T) {
	_, a, _ := devAgents(t)
	as := newAS(t, okToken(accessToken, 300, "read write"), nil)
	p := ccProvider(t, oauth.Config{TokenURL: as.tokenURL(), Auth: oauth.ClientSecretBasic(clientID, credentials.NewSecret(clientSecret))})
	req := newReq(a)

	before := time.Now()
	c, err := p.Issue(bg(t), req)
	after := time.Now()
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	reqs := as.requests("/token")
	if len(reqs) != 1 || as.total() != 1 {
		t.Fatalf("%d token requests (%d in all), want exactly 1", len(reqs), as.total())
	}
	r := reqs[0]
	checkCCParams(t, r, req)
	if !r.HasBasic {
		t.Fatalf("no Basic Authorization header: %q", r.Header.Get("Authorization"))
	}
	// RFC 6749 §2.3.1: id and secret are each form-encoded before the
	// Basic encoding, so the ':' in the id cannot split it.
	if r.BasicUser != url.QueryEscape(clientID) || r.BasicPass != url.QueryEscape(clientSecret) {
		t.Errorf("Basic credentials %q:%q, want the form-encoded id and secret", r.BasicUser, r.BasicPass)
	}
	wantHdr := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID)+":"+url.QueryEscape(clientSecret)))
	if got := r.Header.Get("Authorization"); got != wantHdr {
		t.Errorf("Authorization = %q, want %q", got, wantHdr)
	}
	if id := r.ClientID(t); id != clientID {
		t.Errorf("decoded client id = %q, want %q", id, clientID)
	}
	if sec, _ := url.QueryUnescape(r.BasicPass); sec != clientSecret {
		t.Errorf("decoded client secret differs")
	}
	for _, k := range []string{"client_secret", "client_assertion", "client_assertion_type"} {
		if r.Form.Has(k) {
			t.Errorf("client_secret_basic also sent %s in the body", k)
		}
	}

	if c.Secret.Reveal() != accessToken {
		t.Errorf("Secret is not the access token")
	}
	within(t, "ExpiresAt", c.ExpiresAt, before.Add(300*time.Second), after.Add(300*time.Second))
	within(t, "IssuedAt", c.IssuedAt, before, after)
	if !slices.Equal(c.Scopes, []string{"read", "write"}) {
		t.Errorf("Scopes = %q, want the granted [read write]", c.Scopes)
	}
	if c.LeaseID == "" {
		t.Errorf("no lease ID")
	}
}

func TestClientCredentialsSecretPost(t *testing.T) {
	_, a, _ := devAgents(t)
	as := newAS(t, okToken(accessToken, 300, "read"), nil)
	p := ccProvider(t, oauth.Config{TokenURL: as.tokenURL(), Auth: oauth.ClientSecretPost(clientID, credentials.NewSecret(clientSecret))})
	req := newReq(a)
	c, err := p.Issue(bg(t), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	reqs := as.requests("/token")
	if len(reqs) != 1 {
		t.Fatalf("%d token requests, want 1", len(reqs))
	}
	r := reqs[0]
	checkCCParams(t, r, req)
	if r.HasBasic || r.Header.Get("Authorization") != "" {
		t.Errorf("client_secret_post sent an Authorization header")
	}
	if r.Form.Get("client_id") != clientID || r.Form.Get("client_secret") != clientSecret {
		t.Errorf("client_id/client_secret not in the body as sent")
	}
	if r.Form.Has("client_assertion") {
		t.Errorf("client_secret_post sent a client assertion")
	}
	if !slices.Equal(c.Scopes, []string{"read"}) {
		t.Errorf("Scopes = %q, want the granted [read]", c.Scopes)
	}
}

func TestClientCredentialsSVIDAssertion(t *testing.T) {
	for _, tc := range []struct {
		name, clientID, svidAud string
	}{
		{"default client id and audience", "", ""},
		{"explicit client id and audience", "my-client", "https://as.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, a, _ := devAgents(t)
			as := newAS(t, okToken(accessToken, 300, ""), nil)
			cfg := oauth.Config{TokenURL: as.tokenURL(), Auth: oauth.SVIDAssertion(tc.clientID), SVIDAudience: tc.svidAud}
			p := ccProvider(t, cfg)
			req := newReq(a)
			c, err := p.Issue(bg(t), req)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			reqs := as.requests("/token")
			if len(reqs) != 1 {
				t.Fatalf("%d token requests, want 1", len(reqs))
			}
			r := reqs[0]
			checkCCParams(t, r, req)
			if r.Header.Get("Authorization") != "" || r.Form.Has("client_secret") {
				t.Errorf("an SVID assertion also sent a secret")
			}
			if got := r.Form.Get("client_assertion_type"); got != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
				t.Errorf("client_assertion_type = %q", got)
			}
			aud := tc.svidAud
			if aud == "" {
				aud = as.tokenURL()
			}
			verifySVID(t, d, a, r.Form.Get("client_assertion"), aud, "client_assertion")
			wantID := tc.clientID
			if wantID == "" {
				wantID = a.ID().String()
			}
			if got := r.Form.Get("client_id"); got != wantID {
				t.Errorf("client_id = %q, want %q", got, wantID)
			}
			if tc.svidAud != "" {
				if _, err := identity.VerifyJWTSVID(r.Form.Get("client_assertion"), d, as.tokenURL()); err == nil {
					t.Errorf("assertion also verifies for the token URL; want it addressed to SVIDAudience only")
				}
			}
			// No scope in the answer: the requested scopes are left for the
			// broker to fill in.
			if len(c.Scopes) != 0 {
				t.Errorf("Scopes = %q with no scope in the answer", c.Scopes)
			}
		})
	}
}

func TestClientCredentialsSVIDAssertionRefusals(t *testing.T) {
	_, a, other := devAgents(t)
	as := newAS(t, nil, nil)
	p := ccProvider(t, oauth.Config{TokenURL: as.tokenURL(), Auth: oauth.SVIDAssertion("")})

	req := newReq(a)
	req.JWTIssuer = nil
	if c, err := p.Issue(bg(t), req); err == nil {
		t.Errorf("nil JWTIssuer: Issue = %v, want an error", c)
	}
	req = newReq(a)
	req.JWTIssuer = other
	if c, err := p.Issue(bg(t), req); err == nil {
		t.Errorf("JWTIssuer of another agent: Issue = %v, want an error", c)
	}
	if n := as.total(); n != 0 {
		t.Errorf("%d requests sent for refused issuances", n)
	}
}

// TestClientCredentialsExactlyOneRequest: a refusal is not retried with
// another client authentication style (x/oauth2's probing).
func TestClientCredentialsExactlyOneRequest(t *testing.T) {
	_, a, _ := devAgents(t)
	for _, code := range []int{400, 401} {
		as := newAS(t, status(code, "invalid_client"), nil)
		p := ccProvider(t, oauth.Config{TokenURL: as.tokenURL(), Auth: oauth.ClientSecretBasic(clientID, credentials.NewSecret(clientSecret))})
		if _, err := p.Issue(bg(t), newReq(a)); err == nil {
			t.Errorf("%d: no error", code)
		}
		if n := as.total(); n != 1 {
			t.Errorf("%d: %d requests for one Issue, want 1", code, n)
		}
	}
}

func TestClientCredentialsNoScopesNoAudience(t *testing.T) {
	_, a, _ := devAgents(t)
	as := newAS(t, nil, nil)
	p := ccProvider(t, oauth.Config{TokenURL: as.tokenURL(), Auth: oauth.ClientSecretPost(clientID, credentials.NewSecret(clientSecret))})
	req := newReq(a)
	req.Scopes, req.Audience, req.Resources = nil, "", nil
	if _, err := p.Issue(bg(t), req); err != nil {
		t.Fatal(err)
	}
	r := as.requests("/token")[0]
	for _, k := range []string{"scope", "audience", "resource"} {
		if r.Form.Has(k) {
			t.Errorf("%s sent for a requirement without one: %q", k, r.Form[k])
		}
	}
}

func TestNewProviderChecksConfig(t *testing.T) {
	for _, cfg := range []oauth.Config{
		{Auth: oauth.SVIDAssertion("")},
		{TokenURL: "https://as.example.com/token"},
	} {
		if _, err := oauth.NewClientCredentials(cfg); err == nil {
			t.Errorf("NewClientCredentials(%+v) accepted", cfg)
		}
		if _, err := oauth.NewTokenExchange(cfg, oauth.AsAgent); err == nil {
			t.Errorf("NewTokenExchange(%+v) accepted", cfg)
		}
	}
	if _, err := oauth.NewTokenExchange(oauth.Config{TokenURL: "https://as.example.com/token", Auth: oauth.SVIDAssertion("")}, oauth.Mode(7)); err == nil {
		t.Errorf("NewTokenExchange accepted an unknown mode")
	}
}
