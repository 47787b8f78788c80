package local_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

func b64(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// signWith signs payload with key under header fields hdr.
func signWith(t *testing.T, alg jose.SignatureAlgorithm, key any, kid, payload string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(raw)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerifyRefusesForgedTokensWithoutLeakingThem(t *testing.T) {
	i, _ := newIssuer(t)
	_, tok := issue(t, i, request())
	parts := strings.Split(tok, ".")
	header, payload, sig := parts[0], parts[1], parts[2]
	kid := i.JWKS().Keys[0].KeyID

	claims := decodePart(t, payload)
	claims["scope"] = "read write admin"
	escalated := b64(claims)

	otherIssuer, _ := newIssuer(t)
	_, otherTok := issue(t, otherIssuer, request())

	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&otherKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	jwksJSON, _ := json.Marshal(i.JWKS().Keys[0])

	flipped := []byte(sig)
	flipped[len(flipped)/2] ^= 1
	if flipped[len(flipped)/2] == sig[len(sig)/2] {
		t.Fatal("flip failed")
	}

	tests := map[string]string{
		"tampered payload":                 header + "." + escalated + "." + sig,
		"tampered signature":               header + "." + payload + "." + string(flipped),
		"no signature":                     header + "." + payload + ".",
		"another issuer's token":           otherTok,
		"another key under the right kid":  signWith(t, jose.ES256, otherKey, kid, payload),
		"alg none":                         b64(map[string]string{"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + payload + ".",
		"alg HS256 keyed with the JWKS":    signWith(t, jose.HS256, jwksJSON, kid, payload),
		"alg HS256 keyed with the pub key": signWith(t, jose.HS256, pubDER, kid, payload),
		"ES384 claiming to be ours":        b64(map[string]string{"alg": "ES384", "typ": "at+jwt", "kid": kid}) + "." + payload + "." + sig,
		"JSON serialization":               `{"payload":"` + payload + `","protected":"` + header + `","signature":"` + sig + `"}`,
		"two parts":                        header + "." + payload,
		"garbage":                          "not-a-token-at-all-but-long-enough-to-check",
		"empty":                            "",
		"oversized":                        header + "." + strings.Repeat(payload, 100) + "." + sig,
	}
	for name, forged := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := i.Verifier().Verify(context.Background(), forged, audience, "read")
			if !errors.Is(err, local.ErrInvalidToken) {
				t.Fatalf("Verify = %v, want ErrInvalidToken", err)
			}
			assertNoLeak(t, "error", err.Error(), forged)
			assertNoLeak(t, "error", err.Error(), tok)
		})
	}
}

func TestVerifyExpiryHasNoLeeway(t *testing.T) {
	i, clk := newIssuer(t)
	c, tok := issue(t, i, request())
	v := i.Verifier()
	clk.Advance(c.ExpiresAt.Sub(t0) - time.Nanosecond)
	if _, err := v.Verify(context.Background(), tok, audience); err != nil {
		t.Fatalf("a nanosecond before expiry: %v", err)
	}
	clk.Advance(time.Nanosecond)
	_, err := v.Verify(context.Background(), tok, audience)
	if !errors.Is(err, local.ErrExpired) {
		t.Fatalf("at expiry: %v, want ErrExpired", err)
	}
	if errors.Is(err, local.ErrInvalidToken) {
		t.Error("ErrExpired also matches ErrInvalidToken")
	}
	assertNoLeak(t, "error", err.Error(), tok)
}

func TestVerifyRefusesBeforeIssue(t *testing.T) {
	i, clk := newIssuer(t)
	_, tok := issue(t, i, request())
	clk.Advance(-time.Second) // before nbf, which is the issue time truncated
	if _, err := i.Verifier().Verify(context.Background(), tok, audience); !errors.Is(err, local.ErrInvalidToken) {
		t.Errorf("before nbf: %v, want ErrInvalidToken", err)
	}
}

func TestVerifyAudienceAndScopes(t *testing.T) {
	i, _ := newIssuer(t)
	req := request()
	req.Resources = []string{"https://files.example"}
	_, tok := issue(t, i, req)
	v, ctx := i.Verifier(), context.Background()

	for _, aud := range []string{audience, "https://files.example"} {
		if _, err := v.Verify(ctx, tok, aud, "read"); err != nil {
			t.Errorf("audience %q: %v", aud, err)
		}
	}
	for _, aud := range []string{"https://other.example", "https://api.example/", ""} {
		_, err := v.Verify(ctx, tok, aud)
		if !errors.Is(err, local.ErrAudience) {
			t.Errorf("audience %q: %v, want ErrAudience", aud, err)
			continue
		}
		assertNoLeak(t, "error", err.Error(), tok)
	}

	_, err := v.Verify(ctx, tok, audience, "read", "admin", "delete", "admin")
	if !errors.Is(err, local.ErrScope) {
		t.Fatalf("missing scopes: %v, want ErrScope", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `"admin" "delete"`) || strings.Count(msg, "admin") != 1 {
		t.Errorf("error %q does not name the missing scopes once each", msg)
	}
	assertNoLeak(t, "error", err.Error(), tok)
	if _, err := v.Verify(ctx, tok, audience, "rea"); !errors.Is(err, local.ErrScope) {
		t.Errorf("prefix of a scope: %v, want ErrScope", err)
	}
}

func TestVerifyRevoked(t *testing.T) {
	i, _ := newIssuer(t)
	ctx := context.Background()
	c, tok := issue(t, i, request())
	if err := i.Revoke(ctx, c); err != nil {
		t.Fatal(err)
	}
	// Revocation is reported before audience and scope problems.
	for _, args := range [][]string{{audience}, {audience, "admin"}, {"https://other.example"}} {
		_, err := i.Verifier().Verify(ctx, tok, args[0], args[1:]...)
		if !errors.Is(err, credentials.ErrRevoked) {
			t.Errorf("Verify%q = %v, want ErrRevoked", args, err)
			continue
		}
		if !strings.Contains(err.Error(), c.LeaseID) {
			t.Errorf("error %q does not name the lease", err)
		}
		assertNoLeak(t, "error", err.Error(), tok)
	}
	// Other leases are unaffected.
	_, tok2 := issue(t, i, request())
	if _, err := i.Verifier().Verify(ctx, tok2, audience); err != nil {
		t.Errorf("another lease: %v", err)
	}
}

func TestVerifyDoneContext(t *testing.T) {
	i, _ := newIssuer(t)
	_, tok := issue(t, i, request())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := i.Verifier().Verify(ctx, tok, audience); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify = %v, want context.Canceled", err)
	}
}
