package local_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

// decodePart decodes one base64url part of a compact JWS into a map.
func decodePart(t *testing.T, part string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatalf("decode part: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal part: %v", err)
	}
	return m
}

func TestIssueVerifyRoundTripCarriesEveryClaim(t *testing.T) {
	i, clk := newIssuer(t)
	req := request()
	req.Scopes = []string{"write", "read", "read"}
	req.Resources = []string{"https://files.example/v1", audience, "https://files.example/v1"}
	req.TTL = 2 * time.Minute
	c, tok := issue(t, i, req)

	wantExp := t0.Add(2 * time.Minute).Truncate(time.Second)
	if !strings.HasPrefix(c.LeaseID, "lease-") {
		t.Errorf("LeaseID = %q, want a lease ID", c.LeaseID)
	}
	if !c.IssuedAt.Equal(t0) || !c.ExpiresAt.Equal(wantExp) {
		t.Errorf("IssuedAt, ExpiresAt = %v, %v; want %v, %v", c.IssuedAt, c.ExpiresAt, t0, wantExp)
	}
	if !slices.Equal(c.Scopes, []string{"read", "write"}) {
		t.Errorf("Scopes = %q, want sorted unique", c.Scopes)
	}

	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want a compact JWS", len(parts))
	}
	h := decodePart(t, parts[0])
	jwks := i.JWKS()
	if h["alg"] != "ES256" || h["typ"] != "at+jwt" || h["kid"] != jwks.Keys[0].KeyID {
		t.Errorf("header = %v, want ES256, at+jwt and the JWKS key's kid", h)
	}
	p := decodePart(t, parts[1])
	want := map[string]any{
		"iss":       local.DefaultIssuer,
		"sub":       agent,
		"aud":       []any{audience, "https://files.example/v1"},
		"scope":     "read write",
		"client_id": agent,
		"jti":       c.LeaseID,
		"task":      "task-1",
		"iat":       float64(t0.Unix()),
		"nbf":       float64(t0.Unix()),
		"exp":       float64(wantExp.Unix()),
	}
	for k, v := range want {
		got, _ := json.Marshal(p[k])
		exp, _ := json.Marshal(v)
		if string(got) != string(exp) {
			t.Errorf("claim %s = %s, want %s", k, got, exp)
		}
	}
	if len(p) != len(want) {
		t.Errorf("token has %d claims, want %d", len(p), len(want))
	}

	clk.Advance(time.Minute)
	claims, err := i.Verifier().Verify(context.Background(), tok, "https://files.example/v1", "read", "write")
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	wantClaims := local.Claims{
		Issuer:   local.DefaultIssuer,
		Subject:  agent,
		Audience: []string{audience, "https://files.example/v1"},
		Scopes:   []string{"read", "write"},
		TaskID:   "task-1",
		ID:       c.LeaseID,
		IssuedAt: t0.Truncate(time.Second),
		Expiry:   wantExp,
	}
	if claims.Issuer != wantClaims.Issuer || claims.Subject != wantClaims.Subject ||
		!slices.Equal(claims.Audience, wantClaims.Audience) || !slices.Equal(claims.Scopes, wantClaims.Scopes) ||
		claims.TaskID != wantClaims.TaskID || claims.ID != wantClaims.ID ||
		!claims.IssuedAt.Equal(wantClaims.IssuedAt) || !claims.Expiry.Equal(wantClaims.Expiry) {
		t.Errorf("claims = %+v, want %+v", *claims, wantClaims)
	}
	if _, err := i.Verifier().Verify(context.Background(), tok, audience); err != nil {
		t.Errorf("Verify for the audience, no scopes: %v", err)
	}
}

func TestIssueWithoutScopesOmitsScopeClaim(t *testing.T) {
	i, _ := newIssuer(t)
	req := request()
	req.Scopes = nil
	c, tok := issue(t, i, req)
	if len(c.Scopes) != 0 {
		t.Errorf("Scopes = %q, want none", c.Scopes)
	}
	if _, ok := decodePart(t, strings.Split(tok, ".")[1])["scope"]; ok {
		t.Error("token has a scope claim")
	}
	if _, err := i.Verifier().Verify(context.Background(), tok, audience, "read"); !errors.Is(err, local.ErrScope) {
		t.Errorf("Verify with a scope = %v, want ErrScope", err)
	}
}

func TestIssueCustomIssuerName(t *testing.T) {
	i, _ := newIssuer(t, local.WithIssuer("urn:test:issuer"))
	if i.Name() != "urn:test:issuer" {
		t.Errorf("Name = %q", i.Name())
	}
	_, tok := issue(t, i, request())
	claims, err := i.Verifier().Verify(context.Background(), tok, audience)
	if err != nil || claims.Issuer != "urn:test:issuer" {
		t.Fatalf("Verify = %+v, %v", claims, err)
	}
	d, _ := newIssuer(t, local.WithIssuer(""))
	if d.Name() != local.DefaultIssuer {
		t.Errorf("WithIssuer(\"\") Name = %q, want the default", d.Name())
	}
}

func TestIssueTTLIsCappedByMaxTTLAndDeadline(t *testing.T) {
	sec := time.Second
	tests := []struct {
		name     string
		opts     []local.Option
		ttl      time.Duration
		notAfter time.Time
		want     time.Time
	}{
		{name: "default TTL", want: t0.Add(credentials.DefaultTTL).Truncate(sec)},
		{name: "TTL under the max", ttl: 90 * time.Second, want: t0.Add(90 * time.Second).Truncate(sec)},
		{name: "TTL over the default max", ttl: time.Hour, want: t0.Add(credentials.DefaultTTL).Truncate(sec)},
		{name: "default TTL over WithMaxTTL", opts: []local.Option{local.WithMaxTTL(time.Minute)}, want: t0.Add(time.Minute).Truncate(sec)},
		{name: "TTL over WithMaxTTL", opts: []local.Option{local.WithMaxTTL(time.Minute)}, ttl: 2 * time.Minute, want: t0.Add(time.Minute).Truncate(sec)},
		{name: "WithMaxTTL raises the max", opts: []local.Option{local.WithMaxTTL(time.Hour)}, ttl: 30 * time.Minute, want: t0.Add(30 * time.Minute).Truncate(sec)},
		{name: "non-positive WithMaxTTL keeps the default", opts: []local.Option{local.WithMaxTTL(-1)}, ttl: time.Hour, want: t0.Add(credentials.DefaultTTL).Truncate(sec)},
		{name: "deadline before TTL, truncated", ttl: time.Minute, notAfter: t0.Add(10 * time.Second), want: t0.Add(10 * time.Second).Truncate(sec)},
		{name: "deadline on a whole second", ttl: time.Minute, notAfter: t0.Add(9500 * time.Millisecond), want: t0.Add(9500 * time.Millisecond)},
		{name: "deadline after TTL", ttl: time.Minute, notAfter: t0.Add(time.Hour), want: t0.Add(time.Minute).Truncate(sec)},
		{name: "deadline after max", notAfter: t0.Add(time.Hour), want: t0.Add(credentials.DefaultTTL).Truncate(sec)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i, _ := newIssuer(t, tt.opts...)
			req := request()
			req.TTL, req.NotAfter = tt.ttl, tt.notAfter
			c, tok := issue(t, i, req)
			if !c.ExpiresAt.Equal(tt.want) {
				t.Errorf("ExpiresAt = %v, want %v", c.ExpiresAt, tt.want)
			}
			if !tt.notAfter.IsZero() && c.ExpiresAt.After(tt.notAfter) {
				t.Errorf("ExpiresAt %v is past the deadline %v", c.ExpiresAt, tt.notAfter)
			}
			claims, err := i.Verifier().Verify(context.Background(), tok, audience)
			if err != nil {
				t.Fatal(err)
			}
			if !claims.Expiry.Equal(c.ExpiresAt) {
				t.Errorf("exp claim %v, credential %v", claims.Expiry, c.ExpiresAt)
			}
		})
	}
}

func TestIssueRefuses(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		change func(*credentials.Request)
		want   string
	}{
		{name: "no agent", change: func(r *credentials.Request) { r.Agent = "" }, want: "no agent"},
		{name: "no task", change: func(r *credentials.Request) { r.TaskID = "" }, want: "no task"},
		{name: "no audience", change: func(r *credentials.Request) { r.Audience = "" }, want: "no audience"},
		{name: "context done", ctx: canceled, want: "context canceled"},
		{name: "deadline now", change: func(r *credentials.Request) { r.NotAfter = t0 }, want: "has passed"},
		{name: "deadline passed", change: func(r *credentials.Request) { r.NotAfter = t0.Add(-time.Hour) }, want: "has passed"},
		{name: "deadline within the second", change: func(r *credentials.Request) { r.NotAfter = t0.Add(300 * time.Millisecond) }, want: "less than a second"},
		{name: "empty scope", change: func(r *credentials.Request) { r.Scopes = []string{"read", ""} }, want: "invalid scope"},
		{name: "scope with a space", change: func(r *credentials.Request) { r.Scopes = []string{"read admin"} }, want: "invalid scope"},
		{name: "scope with a quote", change: func(r *credentials.Request) { r.Scopes = []string{`re"ad`} }, want: "invalid scope"},
		{name: "relative resource", change: func(r *credentials.Request) { r.Resources = []string{"/v1"} }, want: "absolute URI"},
		{name: "resource with a fragment", change: func(r *credentials.Request) { r.Resources = []string{"https://x.example/#f"} }, want: "absolute URI"},
		{name: "resource with an empty fragment", change: func(r *credentials.Request) { r.Resources = []string{"https://x.example/#"} }, want: "absolute URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i, _ := newIssuer(t)
			req := request()
			if tt.change != nil {
				tt.change(&req)
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			c, err := i.Issue(ctx, req)
			if err == nil || c != nil {
				t.Fatalf("Issue = %v, %v; want a refusal", c, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestRevokeRecordsLeaseUntilExpiryAndIsIdempotent(t *testing.T) {
	i, _ := newIssuer(t)
	ctx := context.Background()
	c, tok := issue(t, i, request())
	if err := i.Revoke(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := i.Revoke(ctx, c); err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	got := i.Revoked()
	if len(got) != 1 || got[0].ID != c.LeaseID || !got[0].Expiry.Equal(c.ExpiresAt) {
		t.Fatalf("Revoked = %+v, want one entry for the lease", got)
	}
	if _, err := i.Verifier().Verify(ctx, tok, audience); !errors.Is(err, credentials.ErrRevoked) {
		t.Errorf("Verify = %v, want ErrRevoked", err)
	}

	// The entry lasts as long as the token, whatever the credential says.
	c2, _ := issue(t, i, request())
	forged := *c2
	forged.ExpiresAt = t0.Add(24 * time.Hour)
	if err := i.Revoke(ctx, &forged); err != nil {
		t.Fatal(err)
	}
	for _, r := range i.Revoked() {
		if r.ID == c2.LeaseID && !r.Expiry.Equal(c2.ExpiresAt) {
			t.Errorf("entry expires %v, want the token's %v", r.Expiry, c2.ExpiresAt)
		}
	}
}

func TestRevokeRefuses(t *testing.T) {
	i, _ := newIssuer(t)
	other, _ := newIssuer(t)
	foreign, _ := issue(t, other, request())
	if err := i.Revoke(context.Background(), foreign); !errors.Is(err, local.ErrUnknownLease) {
		t.Errorf("Revoke of another issuer's lease = %v, want ErrUnknownLease", err)
	}
	if err := i.Revoke(context.Background(), &credentials.Credential{LeaseID: "lease-nope", ExpiresAt: t0.Add(time.Minute)}); !errors.Is(err, local.ErrUnknownLease) {
		t.Errorf("Revoke of an unknown lease = %v, want ErrUnknownLease", err)
	}
	if err := i.Revoke(context.Background(), nil); err == nil {
		t.Error("Revoke(nil) succeeded")
	}
	c, _ := issue(t, i, request())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := i.Revoke(ctx, c); !errors.Is(err, context.Canceled) {
		t.Errorf("Revoke with a done context = %v, want context.Canceled", err)
	}
	if got := i.Revoked(); len(got) != 0 {
		t.Errorf("Revoked = %+v after a refused Revoke", got)
	}
	// An expired credential needs no revocation, whoever issued it.
	expired := &credentials.Credential{LeaseID: "lease-old", ExpiresAt: t0.Add(-time.Second)}
	if err := i.Revoke(context.Background(), expired); err != nil {
		t.Errorf("Revoke of an expired credential = %v, want nil", err)
	}
}

func TestRevocationListIsPrunedWhenTokensExpire(t *testing.T) {
	i, clk := newIssuer(t)
	ctx := context.Background()
	short := request()
	short.TTL = time.Minute
	long := request()
	long.TTL = 3 * time.Minute
	c1, _ := issue(t, i, short)
	c2, _ := issue(t, i, long)
	c3, _ := issue(t, i, long)
	for _, c := range []*credentials.Credential{c1, c2, c3} {
		if err := i.Revoke(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	ids := func() []string {
		var out []string
		for _, r := range i.Revoked() {
			out = append(out, r.ID)
		}
		return out
	}
	got := ids()
	if len(got) != 3 || got[0] != c1.LeaseID {
		t.Fatalf("Revoked = %q, want three, the earliest expiry first", got)
	}
	want23 := []string{c2.LeaseID, c3.LeaseID}
	slices.Sort(want23)
	if !slices.Equal(got[1:], want23) {
		t.Errorf("entries of equal expiry = %q, want sorted by ID %q", got[1:], want23)
	}

	clk.Advance(c1.ExpiresAt.Sub(t0) - time.Nanosecond)
	if got := ids(); len(got) != 3 {
		t.Errorf("just before the first expiry, Revoked = %q", got)
	}
	clk.Advance(time.Nanosecond)
	if got := ids(); !slices.Equal(got, want23) {
		t.Errorf("after the first expiry, Revoked = %q, want %q", got, want23)
	}
	// Revoking the forgotten, expired lease again is harmless.
	if err := i.Revoke(ctx, c1); err != nil {
		t.Errorf("Revoke of an expired lease: %v", err)
	}
	clk.Advance(2 * time.Minute)
	if got := ids(); len(got) != 0 {
		t.Errorf("after every expiry, Revoked = %q, want none", got)
	}
}

func TestRotateKeepsOldKeyUntilItsTokensExpire(t *testing.T) {
	i, clk := newIssuer(t)
	ctx := context.Background()
	v := i.Verifier()
	short := request()
	short.TTL = time.Minute
	_, old := issue(t, i, short)
	oldKid := i.JWKS().Keys[0].KeyID

	if err := i.Rotate(); err != nil {
		t.Fatal(err)
	}
	_, fresh := issue(t, i, request())
	keys := i.JWKS().Keys
	if len(keys) != 2 || keys[1].KeyID != oldKid || keys[0].KeyID == oldKid {
		t.Fatalf("JWKS after Rotate has kids %v, want the new key then %q", kids(keys), oldKid)
	}
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		if _, err := v.Verify(ctx, tok, audience); err != nil {
			t.Errorf("%s token: %v", name, err)
		}
	}

	clk.Advance(time.Minute)
	if keys := i.JWKS().Keys; len(keys) != 1 || keys[0].KeyID == oldKid {
		t.Errorf("JWKS once the old tokens expired has kids %v, want only the new key", kids(keys))
	}
	if _, err := v.Verify(ctx, old, audience); !errors.Is(err, local.ErrInvalidToken) && !errors.Is(err, local.ErrExpired) {
		t.Errorf("old token after expiry: %v", err)
	}
	if _, err := v.Verify(ctx, fresh, audience); err != nil {
		t.Errorf("new token: %v", err)
	}

	// A key that signed nothing leaves the JWKS at once.
	newKid := i.JWKS().Keys[0].KeyID
	clk.Advance(credentials.DefaultTTL)
	if err := i.Rotate(); err != nil {
		t.Fatal(err)
	}
	if keys := i.JWKS().Keys; len(keys) != 1 || keys[0].KeyID == newKid {
		t.Errorf("JWKS has kids %v, want only the newest key", kids(keys))
	}
}

func TestJWKSHoldsPublicKeysOnly(t *testing.T) {
	i, _ := newIssuer(t)
	issue(t, i, request())
	if err := i.Rotate(); err != nil {
		t.Fatal(err)
	}
	set := i.JWKS()
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"d"`) {
		t.Errorf("JWKS JSON has a private part: %s", b)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || !k.Valid() || k.Algorithm != "ES256" || k.Use != "sig" || k.KeyID == "" {
			t.Errorf("key %q: public %v, valid %v, alg %q, use %q", k.KeyID, k.IsPublic(), k.Valid(), k.Algorithm, k.Use)
		}
	}
	if set.Keys[0].KeyID == set.Keys[1].KeyID {
		t.Error("rotated key has the same kid")
	}
}

func kids(keys []jwk) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.KeyID)
	}
	return out
}
