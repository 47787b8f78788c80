package oauth_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/oauth"
)

// auths are the client authentications the tests use: every method is
// exercised across the tables.
var auths = []struct {
	name string
	auth oauth.ClientAuth
}{
	{"basic", oauth.ClientSecretBasic(clientID, credentials.NewSecret(clientSecret))},
	{"post", oauth.ClientSecretPost(clientID, credentials.NewSecret(clientSecret))},
	{"svid", oauth.SVIDAssertion("")},
}

// eachProvider runs f for every provider with every client authentication,
// against a fresh server answering token requests with h.
func eachProvider(t *testing.T, h handler, f func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request)) {
	for _, pv := range providers {
		for _, au := range auths {
			t.Run(pv.name+"/"+au.name, func(t *testing.T) {
				_, a, _ := devAgents(t)
				as := newAS(t, h, nil)
				p := pv.make(t, oauth.Config{TokenURL: as.tokenURL(), RevocationURL: as.revokeURL(), Auth: au.auth})
				f(t, p, as, newReq(a))
			})
		}
	}
}

func TestErrorRefusal(t *testing.T) {
	h := func(w http.ResponseWriter, _ *http.Request, _ int, _ request) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_scope", "error_description": "scope write is not allowed"})
	}
	eachProvider(t, h, func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request) {
		c, err := p.Issue(bg(t), req)
		if err == nil {
			t.Fatalf("Issue = %v, want an error", c)
		}
		var oe *oauth.Error
		if !errors.As(err, &oe) {
			t.Fatalf("error %v (%T) is not an *oauth.Error", err, err)
		}
		if oe.Code != "invalid_scope" || oe.Description != "scope write is not allowed" || oe.StatusCode != 400 || oe.Endpoint != "token" {
			t.Errorf("Error = %+v", *oe)
		}
		if credentials.Temporary(err) || errors.Is(err, credentials.ErrUnavailable) {
			t.Errorf("a refusal is temporary: %v", err)
		}
		if !strings.Contains(err.Error(), "invalid_scope") {
			t.Errorf("error %q does not name the code", err)
		}
		if n := as.total(); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
		noCanary(t, "refusal", errTexts(err), clientSecret, userToken)
	})
}

func TestErrorUnauthorized(t *testing.T) {
	eachProvider(t, status(http.StatusUnauthorized, "invalid_client"), func(t *testing.T, p credentials.Provider, _ *asServer, req credentials.Request) {
		_, err := p.Issue(bg(t), req)
		var oe *oauth.Error
		if !errors.As(err, &oe) || oe.StatusCode != 401 || oe.Code != "invalid_client" {
			t.Fatalf("error %v, want an *oauth.Error 401 invalid_client", err)
		}
		if credentials.Temporary(err) {
			t.Errorf("401 is temporary: %v", err)
		}
		noCanary(t, "401", errTexts(err), clientSecret, userToken)
	})
}

func TestErrorTemporary(t *testing.T) {
	for _, tc := range []struct {
		code int
		h    handler
	}{
		{500, status(500, "server_error")},
		{502, raw(502, "text/html", "<html>bad gateway</html>")},
		{503, status(503, "temporarily_unavailable")},
		{429, status(429, "")},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			eachProvider(t, tc.h, func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request) {
				_, err := p.Issue(bg(t), req)
				if !errors.Is(err, credentials.ErrUnavailable) || !credentials.Temporary(err) {
					t.Fatalf("error %v, want one wrapping ErrUnavailable", err)
				}
				var oe *oauth.Error
				if !errors.As(err, &oe) || oe.StatusCode != tc.code {
					t.Errorf("error %v does not carry an *oauth.Error with status %d", err, tc.code)
				}
				if n := as.total(); n != 1 {
					t.Errorf("%d requests, want 1 (retrying is the broker's job)", n)
				}
				noCanary(t, "temporary", errTexts(err), clientSecret, userToken)
			})
		})
	}
}

func TestErrorConnectionRefused(t *testing.T) {
	eachProvider(t, nil, func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request) {
		as.Close()
		_, err := p.Issue(bg(t), req)
		if !errors.Is(err, credentials.ErrUnavailable) {
			t.Fatalf("error %v, want one wrapping ErrUnavailable", err)
		}
		var oe *oauth.Error
		if errors.As(err, &oe) {
			t.Errorf("a network error is an *oauth.Error: %+v", oe)
		}
		noCanary(t, "connection refused", errTexts(err), clientSecret, userToken)
	})
}

// sentSecrets returns what the request carried that must never be quoted
// back: the client secret, the client assertion, the subject and actor
// tokens.
func sentSecrets(t *testing.T, r request) []string {
	var out []string
	if r.HasBasic {
		sec, err := url.QueryUnescape(r.BasicPass)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sec)
	}
	for _, k := range []string{"client_secret", "client_assertion", "subject_token", "actor_token"} {
		if v := r.Form.Get(k); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// echo answers 400 with an error_description quoting every secret the
// request carried in the form enc gives.
func echo(t *testing.T, enc func(string) string) handler {
	return func(w http.ResponseWriter, _ *http.Request, _ int, r request) {
		var parts []string
		for _, s := range sentSecrets(t, r) {
			parts = append(parts, enc(s))
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": strings.Join(parts, " ")})
	}
}

// TestErrorScrubsEchoes: a server quoting the agent's secrets back (as is,
// URL-encoded, base64) has them scrubbed from the error. Each quoted value
// is at the start of the description, so the 200-byte clip cannot cut an
// opaque secret; JWT-SVIDs, longer than 200 bytes, are checked by their
// signature.
func TestErrorScrubsEchoes(t *testing.T) {
	for _, form := range []struct {
		name string
		enc  func(string) string
	}{
		{"as is", func(s string) string { return s }},
		{"query escaped", url.QueryEscape},
		{"path escaped", url.PathEscape},
		{"base64", func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }},
		{"base64url", func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }},
	} {
		t.Run(form.name, func(t *testing.T) {
			for _, pv := range providers {
				for _, au := range auths {
					t.Run(pv.name+"/"+au.name, func(t *testing.T) {
						_, a, _ := devAgents(t)
						// One secret per description, so each fits before the clip.
						for i := 0; ; i++ {
							h := func(w http.ResponseWriter, _ *http.Request, _ int, r request) {
								sent := sentSecrets(t, r)
								if i >= len(sent) {
									writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
									return
								}
								writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "bad: " + form.enc(sent[i])})
							}
							as := newAS(t, h, nil)
							p := pv.make(t, oauth.Config{TokenURL: as.tokenURL(), Auth: au.auth})
							_, err := p.Issue(bg(t), newReq(a))
							if err == nil {
								t.Fatal("no error")
							}
							sent := sentSecrets(t, as.requests("/token")[0])
							if i >= len(sent) {
								if i == 0 {
									t.Fatal("nothing secret sent")
								}
								break
							}
							s := sent[i]
							secrets := []string{form.enc(s)}
							if strings.Count(s, ".") == 2 && len(s) > 200 { // a JWT: its signature
								secrets = append(secrets, form.enc(s[strings.LastIndex(s, ".")+1:]))
							}
							noCanary(t, fmt.Sprintf("echo of sent value %d", i), errTexts(err), secrets...)
						}
					})
				}
			}
		})
	}
}

// TestErrorScrubsBasicHeaderEcho: a server quoting the Authorization header
// it received gives away the client secret (base64 of "id:secret").
func TestErrorScrubsBasicHeaderEcho(t *testing.T) {
	_, a, _ := devAgents(t)
	h := func(w http.ResponseWriter, _ *http.Request, _ int, r request) {
		writeJSON(w, 401, map[string]string{"error": "invalid_client", "error_description": "bad credentials " + r.Header.Get("Authorization")})
	}
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			as := newAS(t, h, nil)
			p := pv.make(t, oauth.Config{TokenURL: as.tokenURL(), Auth: oauth.ClientSecretBasic(clientID, credentials.NewSecret(clientSecret))})
			_, err := p.Issue(bg(t), newReq(a))
			if err == nil {
				t.Fatal("no error")
			}
			hdr := as.requests("/token")[0].Header.Get("Authorization")
			b64 := strings.TrimPrefix(hdr, "Basic ")
			if strings.Contains(err.Error(), b64) {
				dec, _ := base64.StdEncoding.DecodeString(b64)
				t.Errorf("BUG: error quotes the Basic credentials, which decode to %q (the client secret, form-encoded): %q", dec, err)
			}
		})
	}
}

// TestErrorScrubBeforeClip: a description that quotes a secret across the
// 200-byte clip must not keep the part before the cut.
func TestErrorScrubBeforeClip(t *testing.T) {
	_, a, _ := devAgents(t)
	for _, pv := range providers {
		for _, au := range auths[:2] {
			t.Run(pv.name+"/"+au.name, func(t *testing.T) {
				h := func(w http.ResponseWriter, _ *http.Request, _ int, r request) {
					// The canary of the secret ends just before byte 200.
					sec := sentSecrets(t, r)[0]
					pad := 200 - (strings.Index(sec, canary) + len(canary)) - 1
					writeJSON(w, 400, map[string]string{"error": "invalid_client", "error_description": strings.Repeat("x", pad) + sec})
				}
				as := newAS(t, h, nil)
				p := pv.make(t, oauth.Config{TokenURL: as.tokenURL(), Auth: au.auth})
				_, err := p.Issue(bg(t), newReq(a))
				if err == nil {
					t.Fatal("no error")
				}
				if strings.Contains(err.Error(), canary) {
					t.Errorf("BUG: a secret cut by the description clip is not scrubbed (clip before scrub, server.go newError): %q", err)
				}
			})
		}
	}
}

func TestErrorHugeBody(t *testing.T) {
	huge := strings.Repeat("A", 4<<20)
	for _, tc := range []struct {
		name string
		h    handler
	}{
		{"400 description", func(w http.ResponseWriter, _ *http.Request, _ int, _ request) {
			writeJSON(w, 400, map[string]string{"error": "invalid_request" + huge, "error_description": huge})
		}},
		{"500 body", raw(500, "application/json", huge)},
		{"200 body", func(w http.ResponseWriter, _ *http.Request, _ int, _ request) {
			writeJSON(w, 200, map[string]string{"access_token": accessToken, "token_type": "Bearer", "padding": huge})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachProvider(t, tc.h, func(t *testing.T, p credentials.Provider, _ *asServer, req credentials.Request) {
				c, err := p.Issue(bg(t), req)
				if err == nil {
					// A body over the read limit is cut: the JSON cannot parse.
					t.Fatalf("Issue = %v for a body over the limit, want an error", c)
				}
				if n := len(err.Error()); n > 2000 {
					t.Errorf("error of %d bytes", n)
				}
				noCanary(t, "huge body", errTexts(err), clientSecret, userToken)
			})
		})
	}
}

func TestErrorBadSuccess(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    handler
	}{
		{"invalid JSON", raw(200, "application/json", "{not json")},
		{"not an object", raw(200, "application/json", `["access_token"]`)},
		{"no access_token", func(w http.ResponseWriter, _ *http.Request, _ int, _ request) {
			writeJSON(w, 200, map[string]any{"token_type": "Bearer", "expires_in": 300})
		}},
		{"empty access_token", okToken("", 300, "")},
		{"DPoP token", func(w http.ResponseWriter, _ *http.Request, _ int, _ request) {
			writeJSON(w, 200, map[string]any{"access_token": accessToken, "token_type": "DPoP", "expires_in": 300})
		}},
		{"N_A token", func(w http.ResponseWriter, _ *http.Request, _ int, _ request) {
			writeJSON(w, 200, map[string]any{"access_token": accessToken, "token_type": "N_A", "expires_in": 300})
		}},
		{"expires_in negative", okToken(accessToken, -5, "")},
		{"expires_in bad string", okToken(accessToken, "soon", "")},
		{"expires_in fraction", okToken(accessToken, 1.5, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachProvider(t, tc.h, func(t *testing.T, p credentials.Provider, _ *asServer, req credentials.Request) {
				c, err := p.Issue(bg(t), req)
				if err == nil {
					t.Fatalf("Issue succeeded (expires %s), want an error", c.ExpiresAt.Sub(c.IssuedAt))
				}
				if credentials.Temporary(err) {
					t.Errorf("a bad answer is temporary: %v", err)
				}
				noCanary(t, tc.name, errTexts(err), clientSecret, userToken)
			})
		})
	}
}

func TestTokenTypeAndExpiry(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tokenType any
		expiresIn any
		want      time.Duration
	}{
		{"lower-case bearer", "bearer", 300, 300 * time.Second},
		{"no token_type", nil, 300, 300 * time.Second},
		{"expires_in string", "Bearer", "300", 300 * time.Second},
		{"no expires_in: requirement TTL", "Bearer", nil, 90 * time.Second},
	} {
		h := func(w http.ResponseWriter, _ *http.Request, _ int, _ request) {
			m := map[string]any{"access_token": accessToken}
			if tc.tokenType != nil {
				m["token_type"] = tc.tokenType
			}
			if tc.expiresIn != nil {
				m["expires_in"] = tc.expiresIn
			}
			writeJSON(w, 200, m)
		}
		t.Run(tc.name, func(t *testing.T) {
			eachProvider(t, h, func(t *testing.T, p credentials.Provider, _ *asServer, req credentials.Request) {
				req.TTL = 90 * time.Second
				before := time.Now()
				c, err := p.Issue(bg(t), req)
				after := time.Now()
				if err != nil {
					t.Fatalf("Issue: %v", err)
				}
				if c.Secret.Reveal() != accessToken {
					t.Errorf("wrong Secret")
				}
				within(t, "ExpiresAt", c.ExpiresAt, before.Add(tc.want), after.Add(tc.want))
			})
		})
	}
}

// TestErrorTokenTypeNotQuoted: the token_type quoted in the refusal of a
// non-bearer token is the server's text: a server putting a secret there
// must not have it quoted.
func TestErrorTokenTypeNotQuoted(t *testing.T) {
	h := func(w http.ResponseWriter, _ *http.Request, _ int, r request) {
		writeJSON(w, 200, map[string]any{"access_token": accessToken, "token_type": sentSecrets(t, r)[0], "expires_in": 300})
	}
	_, a, _ := devAgents(t)
	for _, pv := range providers {
		for _, au := range auths[:2] { // the client secret, with the canary in its first 32 bytes
			t.Run(pv.name+"/"+au.name, func(t *testing.T) {
				as := newAS(t, h, nil)
				p := pv.make(t, oauth.Config{TokenURL: as.tokenURL(), Auth: au.auth})
				_, err := p.Issue(bg(t), newReq(a))
				if err == nil {
					t.Fatal("no error")
				}
				if strings.Contains(err.Error(), canary) {
					t.Errorf("BUG (minor): the refusal quotes the server's token_type unscrubbed: %q", err)
				}
			})
		}
	}
}

// TestExpiresInZero: "expires_in": 0 says the token is already expired.
// TokenExchange refuses it; ClientCredentials must too, rather than read
// it as "no expires_in" and lease the token for the default TTL.
func TestExpiresInZero(t *testing.T) {
	eachProvider(t, okToken(accessToken, 0, ""), func(t *testing.T, p credentials.Provider, _ *asServer, req credentials.Request) {
		c, err := p.Issue(bg(t), req)
		if err == nil {
			t.Errorf("BUG: expires_in 0 accepted; the credential expires after %s", c.ExpiresAt.Sub(c.IssuedAt))
			return
		}
		noCanary(t, "expires_in 0", errTexts(err), clientSecret, userToken)
	})
}
