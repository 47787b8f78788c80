package local_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentguard/go-sdk/credentials/local"
)

func get(h http.Handler, method, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestHandlerServesJWKS(t *testing.T) {
	i, _ := newIssuer(t)
	issue(t, i, request())
	if err := i.Rotate(); err != nil {
		t.Fatal(err)
	}
	w := get(i.Handler(), http.MethodGet, "/.well-known/jwks.json")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET JWKS: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if strings.Contains(w.Body.String(), `"d"`) {
		t.Error("JWKS response holds a private key")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	want := i.JWKS()
	if len(set.Keys) != 2 || set.Keys[0].KeyID != want.Keys[0].KeyID || set.Keys[1].KeyID != want.Keys[1].KeyID {
		t.Errorf("served kids %v, want %v", kids(set.Keys), kids(want.Keys))
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Errorf("key %q is not public", k.KeyID)
		}
	}
}

func TestHandlerServesRevocationList(t *testing.T) {
	i, _ := newIssuer(t)
	h := i.Handler()
	w := get(h, http.MethodGet, "/revoked")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /revoked: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if got := strings.TrimSpace(w.Body.String()); got != `{"revoked":[]}` {
		t.Errorf("empty list = %s", got)
	}
	c, tok := issue(t, i, request())
	if err := i.Revoke(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	w = get(h, http.MethodGet, "/revoked")
	var doc struct {
		Revoked []local.Revocation `json:"revoked"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Revoked) != 1 || doc.Revoked[0].ID != c.LeaseID || !doc.Revoked[0].Expiry.Equal(c.ExpiresAt) {
		t.Errorf("revoked = %+v, want the lease", doc.Revoked)
	}
	if !strings.Contains(w.Body.String(), `"jti":"`+c.LeaseID+`"`) {
		t.Errorf("body %s does not name the lease as jti", w.Body)
	}
	assertNoLeak(t, "revocation list", w.Body.String(), tok)
}

func TestHandlerMethodsAndPaths(t *testing.T) {
	i, _ := newIssuer(t)
	h := i.Handler()
	for _, path := range []string{"/.well-known/jwks.json", "/revoked"} {
		if w := get(h, http.MethodHead, path); w.Code != http.StatusOK {
			t.Errorf("HEAD %s: %d", path, w.Code)
		}
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			w := get(h, m, path)
			if w.Code != http.StatusMethodNotAllowed || !strings.Contains(w.Header().Get("Allow"), "GET") {
				t.Errorf("%s %s: %d, Allow %q; want 405 allowing GET", m, path, w.Code, w.Header().Get("Allow"))
			}
		}
	}
	for _, path := range []string{"/", "/jwks.json", "/.well-known/openid-configuration", "/revoked/x", "/revokedx"} {
		if w := get(h, http.MethodGet, path); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, w.Code)
		}
	}
}
