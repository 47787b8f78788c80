package local_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

// TestRemoteVerifierAfterIssuerRestart: an issuer that restarts has new
// keys and an empty revocation list; a remote verifier that cached the old
// key refuses a token signed (and revoked) before the restart once it next
// fetches the revocation list.
func TestRemoteVerifierAfterIssuerRestart(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	i1, err := local.NewIssuer(local.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	var h atomic.Value
	h.Store(i1.Handler())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.Load().(http.Handler).ServeHTTP(w, r)
	}))
	defer srv.Close()
	v := local.NewRemoteVerifier(srv.URL, local.WithHTTPClient(srv.Client()), local.WithRemoteClock(clk.Now))

	c, tok := issue(t, i1, request())
	if _, err := v.Verify(ctx, tok, audience); err != nil {
		t.Fatal(err)
	}
	if err := i1.Revoke(ctx, c); err != nil {
		t.Fatal(err)
	}
	clk.Advance(local.DefaultRevocationMaxAge)
	if _, err := v.Verify(ctx, tok, audience); !errors.Is(err, credentials.ErrRevoked) {
		t.Fatalf("before restart: %v, want ErrRevoked", err)
	}

	// The issuer restarts: new key, empty revocation list, same URL.
	i2, err := local.NewIssuer(local.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	h.Store(i2.Handler())
	clk.Advance(local.DefaultRevocationMaxAge)
	if _, err := v.Verify(ctx, tok, audience); err == nil {
		t.Errorf("a token signed and revoked before the issuer restarted is accepted after it (exp %s)", c.ExpiresAt.Sub(clk.Now()).Round(time.Second))
	}
}
