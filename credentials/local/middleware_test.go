package local_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials/local"
)

func TestMiddleware(t *testing.T) {
	i, clk := newIssuer(t)
	ctx := context.Background()
	_, good := issue(t, i, request())
	revokedCred, revoked := issue(t, i, request())
	if err := i.Revoke(ctx, revokedCred); err != nil {
		t.Fatal(err)
	}
	short := request()
	short.TTL = 10 * time.Second
	_, expiring := issue(t, i, short)
	readOnly := request()
	readOnly.Scopes = []string{"read"}
	_, reader := issue(t, i, readOnly)
	otherAud := request()
	otherAud.Audience = "https://other.example"
	_, elsewhere := issue(t, i, otherAud)
	clk.Advance(10 * time.Second) // expiring has expired

	var seen *local.Claims
	h := i.Verifier().Middleware(audience, "write", "read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := local.ClaimsFromContext(r.Context())
		if !ok {
			t.Error("no claims in the context")
		}
		seen = c
		_, _ = w.Write([]byte("ok"))
	}))

	tests := []struct {
		name, header string
		code         int
		challenge    string
	}{
		{"no header", "", 401, "Bearer"},
		{"other scheme", "Basic dXNlcjpwYXNz", 401, "Bearer"},
		{"empty bearer", "Bearer ", 401, `Bearer error="invalid_token", error_description="The access token is invalid"`},
		{"garbage", "Bearer abc.def.ghi-not-a-token-at-all", 401, `Bearer error="invalid_token", error_description="The access token is invalid"`},
		{"tampered", "Bearer " + good[:len(good)-4] + "AAAA", 401, `Bearer error="invalid_token", error_description="The access token is invalid"`},
		{"expired", "Bearer " + expiring, 401, `Bearer error="invalid_token", error_description="The access token expired"`},
		{"revoked", "Bearer " + revoked, 401, `Bearer error="invalid_token", error_description="The access token was revoked"`},
		{"other audience", "Bearer " + elsewhere, 401, `Bearer error="invalid_token", error_description="The access token is not for this resource"`},
		{"missing scope", "Bearer " + reader, 403, `Bearer error="insufficient_scope", error_description="The access token lacks a required scope", scope="read write"`},
		{"valid", "Bearer " + good, 200, ""},
		{"valid, lower-case scheme", "bearer " + good, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			r := httptest.NewRequest(http.MethodGet, "/tickets", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.code {
				t.Fatalf("status %d, want %d", w.Code, tt.code)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
			_, token, _ := strings.Cut(tt.header, " ")
			for name, vals := range w.Header() {
				assertNoLeak(t, "header "+name, strings.Join(vals, " "), token)
			}
			assertNoLeak(t, "body", w.Body.String(), token)
			if tt.code == 200 {
				if seen == nil || seen.Subject != agent || seen.TaskID != "task-1" || seen.Issuer != local.DefaultIssuer {
					t.Errorf("claims in context = %+v", seen)
				}
			} else if seen != nil {
				t.Error("the handler ran")
			}
		})
	}
}

func TestMiddlewareUnavailableIssuerIs503(t *testing.T) {
	i, clk := newIssuer(t)
	s := serve(t, i)
	s.setFail(local.JWKSPath, true)
	_, tok := issue(t, i, request())
	h := remote(s, clk).Middleware(audience)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the handler ran")
	}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", w.Code)
	}
}

func TestMiddlewareNeedsAudience(t *testing.T) {
	i, _ := newIssuer(t)
	defer func() {
		if recover() == nil {
			t.Error("Middleware(\"\") did not panic")
		}
	}()
	i.Verifier().Middleware("")
}

func TestClaimsFromContextWithoutClaims(t *testing.T) {
	if c, ok := local.ClaimsFromContext(context.Background()); ok || c != nil {
		t.Errorf("ClaimsFromContext = %v, %v", c, ok)
	}
}
