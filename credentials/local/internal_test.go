package local

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentguard/go-sdk/credentials"
)

var base = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// forge signs claims with the issuer's own current key, under JOSE type
// typ (none if empty), to test the checks made after the signature.
func forge(t *testing.T, i *Issuer, typ string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithHeader("kid", i.cur.kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: i.cur.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func validClaims() map[string]any {
	return map[string]any{
		"iss": DefaultIssuer, "sub": "spiffe://example.org/a", "aud": []string{"api"},
		"scope": "read", "client_id": "spiffe://example.org/a", "jti": "lease-1", "task": "t",
		"iat": base.Unix(), "nbf": base.Unix(), "exp": base.Add(time.Minute).Unix(),
	}
}

func TestVerifyChecksHeaderAndClaimsAfterTheSignature(t *testing.T) {
	i, err := NewIssuer(WithClock(func() time.Time { return base }))
	if err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) map[string]any {
		c := validClaims()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	ok := []struct {
		name, typ string
		claims    map[string]any
	}{
		{"valid", "at+jwt", validClaims()},
		{"media type", "application/at+jwt", validClaims()},
		{"upper case type", "AT+JWT", validClaims()},
		{"aud as a string", "at+jwt", with("aud", "api")},
		{"no nbf", "at+jwt", with("nbf", nil)},
	}
	for _, tt := range ok {
		if _, err := i.Verifier().Verify(context.Background(), forge(t, i, tt.typ, tt.claims), "api", "read"); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	bad := []struct {
		name, typ string
		claims    map[string]any
		want      string
	}{
		{"typ JWT", "JWT", validClaims(), "not an access token"},
		{"no typ", "", validClaims(), "not an access token"},
		{"other issuer", "at+jwt", with("iss", "urn:evil"), "not issued by"},
		{"no iss", "at+jwt", with("iss", nil), "missing claims iss"},
		{"no sub", "at+jwt", with("sub", nil), "missing claims sub"},
		{"no aud", "at+jwt", with("aud", nil), "missing claims aud"},
		{"no client_id", "at+jwt", with("client_id", nil), "missing claims client_id"},
		{"no jti", "at+jwt", with("jti", nil), "missing claims jti"},
		{"no task", "at+jwt", with("task", nil), "missing claims task"},
		{"no iat", "at+jwt", with("iat", nil), "missing claims iat"},
		{"no exp", "at+jwt", with("exp", nil), "missing claims exp"},
		{"nbf in the future", "at+jwt", with("nbf", base.Add(time.Second).Unix()), "not valid before"},
		{"exp not a number", "at+jwt", with("exp", "tomorrow"), "malformed claims"},
		{"huge exp", "at+jwt", with("exp", 1e300), "malformed claims"},
	}
	for _, tt := range bad {
		tok := forge(t, i, tt.typ, tt.claims)
		_, err := i.Verifier().Verify(context.Background(), tok, "api")
		if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrInvalidToken saying %q", tt.name, err, tt.want)
		}
	}
}

func TestIssuerForgetsExpiredLeasesAndKeys(t *testing.T) {
	now := base
	i, err := NewIssuer(WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	req := credentials.Request{TaskID: "t", Agent: "a", Requirement: credentials.Requirement{Audience: "api", TTL: time.Minute}}
	for range 3 {
		if _, err := i.Issue(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if err := i.Rotate(); err != nil {
		t.Fatal(err)
	}
	if len(i.issued) != 3 || len(i.retired) != 1 {
		t.Fatalf("issued %d, retired %d; want 3, 1", len(i.issued), len(i.retired))
	}
	now = now.Add(time.Minute)
	if _, err := i.Issue(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if len(i.issued) != 1 || len(i.retired) != 0 {
		t.Errorf("issued %d, retired %d; want 1, 0", len(i.issued), len(i.retired))
	}
	if !i.nextPrune.Equal(now.Add(time.Minute)) {
		t.Errorf("nextPrune = %v", i.nextPrune)
	}
}

func TestRemoteVerifierKeepsOnlyES256Keys(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &p384.PublicKey, KeyID: "p384", Algorithm: "ES384", Use: "sig"},
		{Key: &p256.PublicKey, KeyID: "enc", Algorithm: "ES256", Use: "enc"},
		{Key: &p256.PublicKey, KeyID: "other-alg", Algorithm: "ES384"},
		{Key: &p256.PublicKey, KeyID: "", Algorithm: "ES256"},
		{Key: &p256.PublicKey, KeyID: "good", Algorithm: "ES256", Use: "sig"},
		{Key: &p256.PublicKey, KeyID: "bare"},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(set)
	}))
	defer srv.Close()
	v := NewRemoteVerifier(srv.URL)
	keys, err := v.src.(*remoteSource).fetchKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys["good"] == nil || keys["bare"] == nil {
		t.Errorf("kept %v, want good and bare", keys)
	}
}

func TestValidScope(t *testing.T) {
	for _, s := range []string{"read", "tickets:read", "a!#$%&'()*+,-./:;<=>?@[]^_`{|}~"} {
		if !validScope(s) {
			t.Errorf("validScope(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a b", "a\tb", `a"b`, `a\b`, "é", "a\x7f"} {
		if validScope(s) {
			t.Errorf("validScope(%q) = true", s)
		}
	}
}
