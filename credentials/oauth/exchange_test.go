package oauth_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/oauth"
)

const (
	typeJWT    = "urn:ietf:params:oauth:token-type:jwt"
	typeAccess = "urn:ietf:params:oauth:token-type:access_token"
	grantTE    = "urn:ietf:params:oauth:grant-type:token-exchange"
)

func checkTEParams(t *testing.T, r request, req credentials.Request) {
	t.Helper()
	if got := r.Form.Get("grant_type"); got != grantTE {
		t.Errorf("grant_type = %q", got)
	}
	if got := r.Form.Get("requested_token_type"); got != typeAccess {
		t.Errorf("requested_token_type = %q", got)
	}
	if got := r.Form["audience"]; !slices.Equal(got, []string{req.Audience}) {
		t.Errorf("audience = %q, want [%q]", got, req.Audience)
	}
	if got := r.Form["resource"]; !slices.Equal(got, req.Resources) {
		t.Errorf("resource = %q, want %q", got, req.Resources)
	}
	if got, want := r.Form.Get("scope"), strings.Join(req.Scopes, " "); got != want {
		t.Errorf("scope = %q, want %q", got, want)
	}
}

func TestTokenExchangeAsAgent(t *testing.T) {
	d, a, _ := devAgents(t)
	as := newAS(t, okToken(accessToken, 600, "read"), nil)
	const aud = "https://as.example.com"
	p := teProvider(oauth.AsAgent)(t, oauth.Config{TokenURL: as.tokenURL(), SVIDAudience: aud,
		Auth: oauth.ClientSecretBasic(clientID, credentials.NewSecret(clientSecret))})
	req := newReq(a)
	before := time.Now()
	c, err := p.Issue(bg(t), req)
	after := time.Now()
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	reqs := as.requests("/token")
	if len(reqs) != 1 || as.total() != 1 {
		t.Fatalf("%d token requests (%d in all), want 1", len(reqs), as.total())
	}
	r := reqs[0]
	checkTEParams(t, r, req)
	verifySVID(t, d, a, r.Form.Get("subject_token"), aud, "subject_token")
	if got := r.Form.Get("subject_token_type"); got != typeJWT {
		t.Errorf("subject_token_type = %q", got)
	}
	if r.Form.Has("actor_token") || r.Form.Has("actor_token_type") {
		t.Errorf("as-agent exchange sent an actor token")
	}
	if strings.Contains(r.Form.Encode(), canary+"-user") {
		t.Errorf("as-agent exchange sent the user token")
	}
	if id := r.ClientID(t); id != clientID || !r.HasBasic {
		t.Errorf("client authentication: basic=%v id=%q", r.HasBasic, id)
	}
	if c.Secret.Reveal() != accessToken {
		t.Errorf("Secret is not the access token")
	}
	within(t, "ExpiresAt", c.ExpiresAt, before.Add(600*time.Second), after.Add(600*time.Second))
	if !slices.Equal(c.Scopes, []string{"read"}) {
		t.Errorf("Scopes = %q", c.Scopes)
	}
}

func TestTokenExchangeOnBehalfOfUser(t *testing.T) {
	d, a, _ := devAgents(t)
	as := newAS(t, nil, nil)
	// Default SVID audience: the token URL. Client auth by SVID assertion.
	p := teProvider(oauth.OnBehalfOfUser)(t, oauth.Config{TokenURL: as.tokenURL(), Auth: oauth.SVIDAssertion("")})
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
	checkTEParams(t, r, req)
	if r.Form.Get("subject_token") != userToken {
		t.Errorf("subject_token is not the user token")
	}
	if got := r.Form.Get("subject_token_type"); got != typeAccess {
		t.Errorf("subject_token_type = %q", got)
	}
	verifySVID(t, d, a, r.Form.Get("actor_token"), as.tokenURL(), "actor_token")
	if got := r.Form.Get("actor_token_type"); got != typeJWT {
		t.Errorf("actor_token_type = %q", got)
	}
	verifySVID(t, d, a, r.Form.Get("client_assertion"), as.tokenURL(), "client_assertion")
	if r.Form.Get("client_id") != a.ID().String() {
		t.Errorf("client_id = %q", r.Form.Get("client_id"))
	}
	if c.Secret.Reveal() != accessToken {
		t.Errorf("Secret is not the access token")
	}
	if len(c.Scopes) != 0 {
		t.Errorf("Scopes = %q without scope in the answer", c.Scopes)
	}
}

func TestTokenExchangeUserTokenType(t *testing.T) {
	_, a, _ := devAgents(t)
	as := newAS(t, nil, nil)
	te, err := oauth.NewTokenExchange(oauth.Config{TokenURL: as.tokenURL(), Auth: oauth.ClientSecretPost(clientID, credentials.NewSecret(clientSecret))}, oauth.OnBehalfOfUser)
	if err != nil {
		t.Fatal(err)
	}
	te.UserTokenType = "urn:ietf:params:oauth:token-type:id_token"
	if _, err := te.Issue(bg(t), newReq(a)); err != nil {
		t.Fatal(err)
	}
	if got := as.requests("/token")[0].Form.Get("subject_token_type"); got != te.UserTokenType {
		t.Errorf("subject_token_type = %q, want %q", got, te.UserTokenType)
	}
}

func TestTokenExchangeRefusals(t *testing.T) {
	_, a, other := devAgents(t)
	for _, mode := range []oauth.Mode{oauth.AsAgent, oauth.OnBehalfOfUser} {
		for _, auth := range []oauth.ClientAuth{oauth.SVIDAssertion(""), oauth.ClientSecretBasic(clientID, credentials.NewSecret(clientSecret))} {
			t.Run(mode.String()+"/"+auth.String(), func(t *testing.T) {
				as := newAS(t, nil, nil)
				p := teProvider(mode)(t, oauth.Config{TokenURL: as.tokenURL(), Auth: auth})

				req := newReq(a)
				req.JWTIssuer = nil
				if c, err := p.Issue(bg(t), req); err == nil {
					t.Errorf("nil JWTIssuer: Issue = %v, want an error", c)
				}
				req = newReq(a)
				req.JWTIssuer = other
				if c, err := p.Issue(bg(t), req); err == nil {
					t.Errorf("JWTIssuer of another agent: Issue = %v, want an error", c)
				} else if !strings.Contains(err.Error(), a.ID().String()) {
					t.Logf("refusal does not name the acting agent: %v", err)
				}
				if mode == oauth.OnBehalfOfUser {
					req = newReq(a)
					req.UserToken = credentials.Secret{}
					if c, err := p.Issue(bg(t), req); err == nil {
						t.Errorf("no user token: Issue = %v, want an error", c)
					}
				}
				if n := as.total(); n != 0 {
					t.Errorf("%d requests sent for refused exchanges", n)
				}
			})
		}
	}
}
