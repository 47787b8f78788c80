package oauth_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/oauth"
)

func TestRevoke(t *testing.T) {
	for _, pv := range providers {
		for _, au := range auths {
			t.Run(pv.name+"/"+au.name, func(t *testing.T) {
				d, a, _ := devAgents(t)
				as := newAS(t, nil, nil)
				p := pv.make(t, oauth.Config{TokenURL: as.tokenURL(), RevocationURL: as.revokeURL(), Auth: au.auth})
				c, err := p.Issue(bg(t), newReq(a))
				if err != nil {
					t.Fatalf("Issue: %v", err)
				}
				if err := p.Revoke(bg(t), c); err != nil {
					t.Fatalf("Revoke: %v", err)
				}
				revs := as.requests("/revoke")
				if len(revs) != 1 {
					t.Fatalf("%d revocation requests, want 1", len(revs))
				}
				r, tok := revs[0], as.requests("/token")[0]
				if r.Form.Get("token") != accessToken {
					t.Errorf("token is not the access token")
				}
				if got := r.Form.Get("token_type_hint"); got != "access_token" {
					t.Errorf("token_type_hint = %q", got)
				}
				// The same client authentication as the token request.
				if r.HasBasic != tok.HasBasic || r.ClientID(t) != tok.ClientID(t) ||
					r.BasicPass != tok.BasicPass || r.Form.Get("client_secret") != tok.Form.Get("client_secret") {
					t.Errorf("revocation authenticated differently: basic=%v id=%q", r.HasBasic, r.ClientID(t))
				}
				switch au.name {
				case "basic":
					if !r.HasBasic || r.ClientID(t) != clientID || r.Form.Has("client_secret") {
						t.Errorf("not client_secret_basic")
					}
				case "post":
					if r.Form.Get("client_id") != clientID || r.Form.Get("client_secret") != clientSecret {
						t.Errorf("not client_secret_post")
					}
				case "svid":
					if r.Form.Get("client_assertion_type") != oauth.ClientAssertionTypeJWT {
						t.Errorf("client_assertion_type = %q", r.Form.Get("client_assertion_type"))
					}
					verifySVID(t, d, a, r.Form.Get("client_assertion"), as.tokenURL(), "revocation client_assertion")
					if r.Form.Get("client_assertion") == tok.Form.Get("client_assertion") {
						t.Errorf("the token request's assertion was replayed; want a fresh one")
					}
					if r.Form.Get("client_id") != a.ID().String() {
						t.Errorf("client_id = %q", r.Form.Get("client_id"))
					}
				}
			})
		}
	}
}

func TestRevokeErrors(t *testing.T) {
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			_, a, _ := devAgents(t)
			cfgFor := func(as *asServer) oauth.Config {
				return oauth.Config{TokenURL: as.tokenURL(), RevocationURL: as.revokeURL(), Auth: oauth.ClientSecretPost(clientID, credentials.NewSecret(clientSecret))}
			}
			t.Run("503", func(t *testing.T) {
				as := newAS(t, nil, status(http.StatusServiceUnavailable, "temporarily_unavailable"))
				p := pv.make(t, cfgFor(as))
				c, err := p.Issue(bg(t), newReq(a))
				if err != nil {
					t.Fatal(err)
				}
				err = p.Revoke(bg(t), c)
				if !errors.Is(err, credentials.ErrUnavailable) {
					t.Fatalf("Revoke = %v, want ErrUnavailable", err)
				}
				noCanary(t, "revoke 503", errTexts(err), clientSecret, accessToken)
			})
			t.Run("400", func(t *testing.T) {
				h := func(w http.ResponseWriter, _ *http.Request, _ int, r request) {
					// A server quoting the token it was asked to revoke.
					writeJSON(w, 400, map[string]string{"error": "unsupported_token_type", "error_description": "cannot revoke " + r.Form.Get("token")})
				}
				as := newAS(t, nil, h)
				p := pv.make(t, cfgFor(as))
				c, err := p.Issue(bg(t), newReq(a))
				if err != nil {
					t.Fatal(err)
				}
				err = p.Revoke(bg(t), c)
				var oe *oauth.Error
				if !errors.As(err, &oe) || oe.Endpoint != "revocation" || oe.StatusCode != 400 || oe.Code != "unsupported_token_type" {
					t.Fatalf("Revoke = %v, want an *oauth.Error from the revocation endpoint", err)
				}
				if credentials.Temporary(err) {
					t.Errorf("400 is temporary")
				}
				noCanary(t, "revoke 400", errTexts(err), clientSecret, accessToken)
			})
			t.Run("connection refused", func(t *testing.T) {
				as := newAS(t, nil, nil)
				p := pv.make(t, cfgFor(as))
				c, err := p.Issue(bg(t), newReq(a))
				if err != nil {
					t.Fatal(err)
				}
				as.Close()
				if err := p.Revoke(bg(t), c); !errors.Is(err, credentials.ErrUnavailable) {
					t.Fatalf("Revoke = %v, want ErrUnavailable", err)
				}
			})
			t.Run("no revocation URL", func(t *testing.T) {
				as := newAS(t, nil, nil)
				cfg := cfgFor(as)
				cfg.RevocationURL = ""
				p := pv.make(t, cfg)
				c, err := p.Issue(bg(t), newReq(a))
				if err != nil {
					t.Fatal(err)
				}
				err = p.Revoke(bg(t), c)
				if err == nil {
					t.Fatal("Revoke without a revocation URL succeeded")
				}
				if errors.Is(err, credentials.ErrNotRevocable) || credentials.Temporary(err) {
					t.Logf("note: %v", err)
				}
				if n := len(as.requests("/revoke")); n != 0 {
					t.Errorf("%d revocation requests", n)
				}
			})
			t.Run("lease not issued by the provider", func(t *testing.T) {
				as := newAS(t, nil, nil)
				p := pv.make(t, cfgFor(as))
				// Another provider's lease, with the same server.
				other := pv.make(t, cfgFor(as))
				c, err := other.Issue(bg(t), newReq(a))
				if err != nil {
					t.Fatal(err)
				}
				forged := &credentials.Credential{LeaseID: credentials.NewLeaseID(), Secret: credentials.NewSecret(accessToken)}
				for _, c := range []*credentials.Credential{c, forged} {
					if err := p.Revoke(bg(t), c); err == nil {
						t.Errorf("Revoke of lease %s not issued by the provider succeeded", c.LeaseID)
					} else {
						noCanary(t, "foreign lease", errTexts(err), accessToken)
					}
				}
				if n := len(as.requests("/revoke")); n != 0 {
					t.Errorf("%d revocation requests for foreign leases", n)
				}
			})
			t.Run("twice", func(t *testing.T) {
				as := newAS(t, nil, nil)
				p := pv.make(t, cfgFor(as))
				c, err := p.Issue(bg(t), newReq(a))
				if err != nil {
					t.Fatal(err)
				}
				if err := p.Revoke(bg(t), c); err != nil {
					t.Fatal(err)
				}
				// Revoked leases are forgotten: a second Revoke is refused
				// without a request.
				if err := p.Revoke(bg(t), c); err == nil {
					t.Logf("second Revoke succeeded")
				}
				if n := len(as.requests("/revoke")); n != 1 {
					t.Errorf("%d revocation requests, want 1", n)
				}
			})
		})
	}
}

// TestRevokeSVIDAssertionUsesLeaseIssuer: the revocation's client assertion
// comes from the JWTIssuer of the lease's own Issue request, for the agent
// it named, even with leases of several agents outstanding.
func TestRevokeSVIDAssertionUsesLeaseIssuer(t *testing.T) {
	d, a, o := devAgents(t)
	as := newAS(t, nil, nil)
	p := ccProvider(t, oauth.Config{TokenURL: as.tokenURL(), RevocationURL: as.revokeURL(), Auth: oauth.SVIDAssertion(""), SVIDAudience: "https://as.example.com"})
	ca, err := p.Issue(bg(t), newReq(a))
	if err != nil {
		t.Fatal(err)
	}
	co, err := p.Issue(bg(t), newReq(o))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Revoke(bg(t), co); err != nil {
		t.Fatal(err)
	}
	if err := p.Revoke(bg(t), ca); err != nil {
		t.Fatal(err)
	}
	revs := as.requests("/revoke")
	if len(revs) != 2 {
		t.Fatalf("%d revocations", len(revs))
	}
	verifySVID(t, d, o, revs[0].Form.Get("client_assertion"), "https://as.example.com", "revocation of the other agent's lease")
	verifySVID(t, d, a, revs[1].Form.Get("client_assertion"), "https://as.example.com", "revocation of the agent's lease")
}
