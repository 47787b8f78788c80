package local_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

// server serves an issuer's Handler, counts requests per path, and fails
// the paths in fail with 500.
type server struct {
	*httptest.Server
	mu     sync.Mutex
	counts map[string]int
	fail   map[string]bool
}

func serve(t *testing.T, i *local.Issuer) *server {
	t.Helper()
	s := &server{counts: map[string]int{}, fail: map[string]bool{}}
	h := i.Handler()
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[r.URL.Path]++
		fail := s.fail[r.URL.Path]
		s.mu.Unlock()
		if fail {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

func (s *server) setFail(path string, fail bool) {
	s.mu.Lock()
	s.fail[path] = fail
	s.mu.Unlock()
}

func remote(s *server, clk *clock, opts ...local.RemoteOption) *local.Verifier {
	return local.NewRemoteVerifier(s.URL+"/", append([]local.RemoteOption{
		local.WithHTTPClient(s.Client()), local.WithRemoteClock(clk.Now),
	}, opts...)...)
}

func TestRemoteVerifierRoundTrip(t *testing.T) {
	i, clk := newIssuer(t)
	s := serve(t, i)
	v := remote(s, clk)
	c, tok := issue(t, i, request())
	claims, err := v.Verify(context.Background(), tok, audience, "read", "write")
	if err != nil {
		t.Fatal(err)
	}
	if claims.ID != c.LeaseID || claims.Subject != agent || claims.TaskID != "task-1" {
		t.Errorf("claims = %+v", claims)
	}
	// Cached: no more fetches within the revocation list's max age.
	for range 3 {
		if _, err := v.Verify(context.Background(), tok, audience); err != nil {
			t.Fatal(err)
		}
	}
	if n, m := s.count(local.JWKSPath), s.count(local.RevokedPath); n != 1 || m != 1 {
		t.Errorf("fetched the JWKS %d and the revocation list %d times, want 1 and 1", n, m)
	}
	clk.Advance(c.ExpiresAt.Sub(t0))
	if _, err := v.Verify(context.Background(), tok, audience); !errors.Is(err, local.ErrExpired) {
		t.Errorf("expired: %v, want ErrExpired", err)
	}
	if _, err := v.Verify(context.Background(), tok, audience); !errors.Is(err, local.ErrExpired) {
		t.Errorf("expired: %v, want ErrExpired", err)
	}
}

func TestRemoteVerifierSeesRevocations(t *testing.T) {
	ctx := context.Background()
	t.Run("on every Verify", func(t *testing.T) {
		i, clk := newIssuer(t)
		s := serve(t, i)
		v := remote(s, clk, local.WithRevocationMaxAge(0))
		c, tok := issue(t, i, request())
		if _, err := v.Verify(ctx, tok, audience); err != nil {
			t.Fatal(err)
		}
		if err := i.Revoke(ctx, c); err != nil {
			t.Fatal(err)
		}
		_, err := v.Verify(ctx, tok, audience)
		if !errors.Is(err, credentials.ErrRevoked) {
			t.Fatalf("Verify = %v, want ErrRevoked", err)
		}
		assertNoLeak(t, "error", err.Error(), tok)
		if n := s.count(local.RevokedPath); n != 2 {
			t.Errorf("fetched the revocation list %d times, want 2", n)
		}
	})
	t.Run("after the max age", func(t *testing.T) {
		i, clk := newIssuer(t)
		s := serve(t, i)
		v := remote(s, clk) // default max age
		c, tok := issue(t, i, request())
		if _, err := v.Verify(ctx, tok, audience); err != nil {
			t.Fatal(err)
		}
		if err := i.Revoke(ctx, c); err != nil {
			t.Fatal(err)
		}
		clk.Advance(local.DefaultRevocationMaxAge - time.Nanosecond)
		if _, err := v.Verify(ctx, tok, audience); err != nil {
			t.Fatalf("within the max age, the cached list is used: %v", err)
		}
		clk.Advance(time.Nanosecond)
		if _, err := v.Verify(ctx, tok, audience); !errors.Is(err, credentials.ErrRevoked) {
			t.Fatalf("Verify = %v, want ErrRevoked", err)
		}
	})
}

func TestRemoteVerifierRefetchesJWKSOnUnknownKeyAtMostOncePerSecond(t *testing.T) {
	ctx := context.Background()
	i, clk := newIssuer(t)
	s := serve(t, i)
	v := remote(s, clk)
	_, old := issue(t, i, request())
	if _, err := v.Verify(ctx, old, audience); err != nil {
		t.Fatal(err)
	}
	if err := i.Rotate(); err != nil {
		t.Fatal(err)
	}
	_, fresh := issue(t, i, request())

	// Within a second of the last fetch, the new key is not looked for.
	if _, err := v.Verify(ctx, fresh, audience); !errors.Is(err, local.ErrInvalidToken) {
		t.Fatalf("new key within the second: %v, want ErrInvalidToken", err)
	}
	if n := s.count(local.JWKSPath); n != 1 {
		t.Fatalf("fetched the JWKS %d times, want 1", n)
	}
	clk.Advance(time.Second)
	if _, err := v.Verify(ctx, fresh, audience); err != nil {
		t.Fatalf("new key after a second: %v", err)
	}
	if _, err := v.Verify(ctx, old, audience); err != nil {
		t.Fatalf("old key after rotation: %v", err)
	}
	if n := s.count(local.JWKSPath); n != 2 {
		t.Fatalf("fetched the JWKS %d times, want 2", n)
	}

	// Tokens under unknown keys cause at most one fetch a second.
	clk.Advance(time.Second)
	other, _ := newIssuer(t)
	_, foreign := issue(t, other, request())
	for range 5 {
		if _, err := v.Verify(ctx, foreign, audience); !errors.Is(err, local.ErrInvalidToken) {
			t.Fatalf("another issuer's token: %v, want ErrInvalidToken", err)
		}
	}
	if n := s.count(local.JWKSPath); n != 3 {
		t.Errorf("fetched the JWKS %d times, want 3", n)
	}
}

func TestRemoteVerifierExpectsItsIssuer(t *testing.T) {
	ctx := context.Background()
	i, clk := newIssuer(t, local.WithIssuer("urn:test:custom"))
	s := serve(t, i)
	_, tok := issue(t, i, request())
	if _, err := remote(s, clk).Verify(ctx, tok, audience); !errors.Is(err, local.ErrInvalidToken) {
		t.Errorf("default expected issuer: %v, want ErrInvalidToken", err)
	}
	if _, err := remote(s, clk, local.WithRemoteIssuer(i.Name())).Verify(ctx, tok, audience); err != nil {
		t.Errorf("WithRemoteIssuer: %v", err)
	}
}

func TestRemoteVerifierFailsClosed(t *testing.T) {
	ctx := context.Background()
	t.Run("JWKS unavailable", func(t *testing.T) {
		i, clk := newIssuer(t)
		s := serve(t, i)
		s.setFail(local.JWKSPath, true)
		v := remote(s, clk)
		_, tok := issue(t, i, request())
		_, err := v.Verify(ctx, tok, audience)
		if !errors.Is(err, local.ErrUnavailable) || !errors.Is(err, credentials.ErrUnavailable) {
			t.Fatalf("Verify = %v, want ErrUnavailable, a credentials.ErrUnavailable", err)
		}
		assertNoLeak(t, "error", err.Error(), tok)
		// The failure is remembered for a second, then the fetch retried.
		s.setFail(local.JWKSPath, false)
		if _, err := v.Verify(ctx, tok, audience); !errors.Is(err, local.ErrUnavailable) {
			t.Fatalf("within the second: %v, want ErrUnavailable", err)
		}
		clk.Advance(time.Second)
		if _, err := v.Verify(ctx, tok, audience); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	})
	t.Run("revocation list unavailable", func(t *testing.T) {
		i, clk := newIssuer(t)
		s := serve(t, i)
		v := remote(s, clk, local.WithRevocationMaxAge(0))
		_, tok := issue(t, i, request())
		if _, err := v.Verify(ctx, tok, audience); err != nil {
			t.Fatal(err)
		}
		s.setFail(local.RevokedPath, true)
		if _, err := v.Verify(ctx, tok, audience); !errors.Is(err, local.ErrUnavailable) {
			t.Fatalf("Verify = %v, want ErrUnavailable", err)
		}
	})
	t.Run("issuer gone", func(t *testing.T) {
		i, clk := newIssuer(t)
		s := serve(t, i)
		v := remote(s, clk)
		_, tok := issue(t, i, request())
		if _, err := v.Verify(ctx, tok, audience); err != nil {
			t.Fatal(err)
		}
		s.Close()
		clk.Advance(local.DefaultRevocationMaxAge)
		if _, err := v.Verify(ctx, tok, audience); !errors.Is(err, local.ErrUnavailable) {
			t.Fatalf("Verify = %v, want ErrUnavailable", err)
		}
	})
	t.Run("not an issuer", func(t *testing.T) {
		_, clk := newIssuer(t)
		i, _ := newIssuer(t)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("<html>hello</html>"))
		}))
		defer srv.Close()
		_, tok := issue(t, i, request())
		v := local.NewRemoteVerifier(srv.URL, local.WithRemoteClock(clk.Now))
		if _, err := v.Verify(ctx, tok, audience); !errors.Is(err, local.ErrUnavailable) {
			t.Fatalf("Verify = %v, want ErrUnavailable", err)
		}
	})
	t.Run("caller gives up", func(t *testing.T) {
		i, clk := newIssuer(t)
		called := make(chan struct{}, 1)
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case called <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
			i.Handler().ServeHTTP(w, r)
		}))
		defer srv.Close()
		defer close(release)
		_, tok := issue(t, i, request())
		v := local.NewRemoteVerifier(srv.URL, local.WithRemoteClock(clk.Now))
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-called
			cancel()
		}()
		if _, err := v.Verify(ctx, tok, audience); !errors.Is(err, local.ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Verify = %v, want ErrUnavailable and context.Canceled", err)
		}
	})
}
