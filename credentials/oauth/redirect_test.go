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

// TestNoRedirects: a token endpoint answering with a redirect gets no
// second request: following it would resend the form (client secret, the
// user's subject token) to another origin.
func TestNoRedirects(t *testing.T) {
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

// TestClientCredentialsScopeNotAString: a "scope" that is not a string
// (here an array, wider than asked) is refused, not read as "same as
// requested".
func TestClientCredentialsScopeNotAString(t *testing.T) {
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
