package oauth_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/oauth"
)

// newBroker returns the broker of the brief: three attempts, 1ms backoff,
// 50ms per attempt.
func newBroker(p credentials.Provider, opts ...credentials.BrokerOption) *credentials.Broker {
	return credentials.NewBroker(append([]credentials.BrokerOption{credentials.WithProvider("p", p),
		credentials.WithRetry(3, time.Millisecond), credentials.WithAttemptTimeout(50 * time.Millisecond)}, opts...)...)
}

// eachBrokerProvider runs f with each provider, authenticating by client
// secret (even providers) or SVID assertion, against a server answering
// token requests with token and revocations with revoke.
func eachBrokerProvider(t *testing.T, token, revoke handler, f func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request)) {
	for i, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			_, a, _ := devAgents(t)
			as := newAS(t, token, revoke)
			auth := oauth.ClientSecretBasic(clientID, credentials.NewSecret(clientSecret))
			if i%2 == 1 {
				auth = oauth.SVIDAssertion("")
			}
			p := pv.make(t, oauth.Config{TokenURL: as.tokenURL(), RevocationURL: as.revokeURL(), Auth: auth})
			f(t, p, as, newReq(a))
		})
	}
}

func TestBrokerRetriesThenLeases(t *testing.T) {
	eachBrokerProvider(t, failFirst(2, 500, okToken(accessToken, 300, "")), nil, func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request) {
		c, err := newBroker(p).Lease(bg(t), req)
		if err != nil {
			t.Fatalf("Lease: %v", err)
		}
		if c.Secret.Reveal() != accessToken || c.TaskID != req.TaskID || c.Name != "api" {
			t.Errorf("lease %+v", c)
		}
		if n := len(as.requests("/token")); n != 3 {
			t.Errorf("%d token requests, want 3", n)
		}
	})
}

func TestBrokerAlways500(t *testing.T) {
	eachBrokerProvider(t, status(500, "server_error"), nil, func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request) {
		c, err := newBroker(p).Lease(bg(t), req)
		if err == nil {
			t.Fatalf("Lease = %v, want an error", c)
		}
		if !errors.Is(err, credentials.ErrUnavailable) {
			t.Errorf("error %v does not wrap ErrUnavailable", err)
		}
		if n := len(as.requests("/token")); n != 3 {
			t.Errorf("%d token requests, want exactly 3", n)
		}
		noCanary(t, "always 500", errTexts(err), clientSecret, userToken)
	})
}

func TestBrokerPermanentRefusalNotRetried(t *testing.T) {
	eachBrokerProvider(t, status(400, "invalid_scope"), nil, func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request) {
		_, err := newBroker(p).Lease(bg(t), req)
		var oe *oauth.Error
		if !errors.As(err, &oe) || oe.Code != "invalid_scope" {
			t.Fatalf("Lease error %v, want the *oauth.Error", err)
		}
		if n := len(as.requests("/token")); n != 1 {
			t.Errorf("%d token requests for a refusal, want 1", n)
		}
	})
}

// hangRecorder is a token handler that answers only when the request's
// context is done; it reports how long each request was held.
type hangRecorder struct {
	stop <-chan struct{}
	cut  chan time.Duration
}

func newHang(t *testing.T) *hangRecorder {
	return &hangRecorder{stop: stopper(t), cut: make(chan time.Duration, 100)}
}

func (h *hangRecorder) handle(_ http.ResponseWriter, r *http.Request, _ int, _ request) {
	start := time.Now()
	select {
	case <-r.Context().Done():
		h.cut <- time.Since(start)
	case <-h.stop:
	}
}

// wait returns how long each of n requests was held before the client cut
// it, failing if they are not all cut within 10s.
func (h *hangRecorder) wait(t *testing.T, n int) []time.Duration {
	t.Helper()
	var out []time.Duration
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case d := <-h.cut:
			out = append(out, d)
		case <-timeout:
			t.Fatalf("only %d of %d requests were cut by the client", len(out), n)
		}
	}
	return out
}

func TestBrokerHangingServer(t *testing.T) {
	for i, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			_, a, _ := devAgents(t)
			h := newHang(t)
			as := newAS(t, h.handle, nil)
			auth := oauth.ClientSecretPost(clientID, credentials.NewSecret(clientSecret))
			if i%2 == 1 {
				auth = oauth.SVIDAssertion("")
			}
			p := pv.make(t, oauth.Config{TokenURL: as.tokenURL(), Auth: auth})
			start := time.Now()
			c, err := newBroker(p).Lease(bg(t), newReq(a))
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("Lease = %v, want an error", c)
			}
			if elapsed > 5*time.Second {
				t.Errorf("Lease took %v with 3 attempts of 50ms", elapsed)
			}
			held := h.wait(t, 3)
			for _, d := range held {
				if d > 2*time.Second {
					t.Errorf("an attempt was held %v, not cut at the 50ms attempt timeout", d)
				}
			}
			if n := len(as.requests("/token")); n != 3 {
				t.Errorf("%d token requests, want 3", n)
			}
			if !credentials.Temporary(err) {
				t.Errorf("error %v is not temporary", err)
			}
			if !errors.Is(err, credentials.ErrUnavailable) {
				// transportError returns the attempt's context.DeadlineExceeded;
				// the broker must mark the cut attempt ErrUnavailable.
				t.Errorf("attempts cut by the attempt timeout give %q, not wrapping ErrUnavailable", err)
			}
			noCanary(t, "hanging server", errTexts(err), clientSecret, userToken)
		})
	}
}

func TestBrokerCallerDeadline(t *testing.T) {
	for _, tc := range []struct {
		name           string
		attemptTimeout time.Duration
		deadline       time.Duration
		bound          time.Duration
	}{
		// The brief's broker: 3 × 50ms attempts, caller allows 70ms.
		{"shorter than the attempts' total", 50 * time.Millisecond, 70 * time.Millisecond, 5 * time.Second},
		// Each attempt could take 10s: the caller's 100ms must win.
		{"shorter than one attempt", 10 * time.Second, 100 * time.Millisecond, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachBrokerProvider(t, newHang(t).handle, nil, func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request) {
				b := newBroker(p, credentials.WithAttemptTimeout(tc.attemptTimeout))
				ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
				defer cancel()
				start := time.Now()
				c, err := b.Lease(ctx, req)
				elapsed := time.Since(start)
				if err == nil {
					t.Fatalf("Lease = %v, want an error", c)
				}
				if elapsed > tc.bound {
					t.Errorf("Lease returned after %v with a %v deadline", elapsed, tc.deadline)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Logf("note: error %v does not wrap context.DeadlineExceeded", err)
				}
				if n := len(as.requests("/token")); n > 3 {
					t.Errorf("%d token requests", n)
				}
				noCanary(t, "caller deadline", errTexts(err), clientSecret, userToken)
			})
		})
	}
}

func TestBrokerExcessScopeRevoked(t *testing.T) {
	eachBrokerProvider(t, okToken(accessToken, 300, "read write admin"), nil, func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request) {
		c, err := newBroker(p).Lease(bg(t), req)
		if err == nil {
			t.Fatalf("Lease = %v granting more than required, want a refusal", c)
		}
		if !strings.Contains(err.Error(), "admin") {
			t.Errorf("error %q does not name the excess scope", err)
		}
		revs := as.requests("/revoke")
		if len(revs) != 1 {
			t.Fatalf("%d revocation requests, want 1", len(revs))
		}
		if revs[0].Form.Get("token") != accessToken || revs[0].Form.Get("token_type_hint") != "access_token" {
			t.Errorf("revocation of the wrong token")
		}
		noCanary(t, "excess scope", errTexts(err), clientSecret, userToken)
	})
}

// TestBrokerExcessScopeRevokeFails: the refusal reports the failed
// revocation too, without the token.
func TestBrokerExcessScopeRevokeFails(t *testing.T) {
	revoke := func(w http.ResponseWriter, _ *http.Request, _ int, r request) {
		writeJSON(w, 400, map[string]string{"error": "invalid_request", "error_description": "no " + r.Form.Get("token")})
	}
	eachBrokerProvider(t, okToken(accessToken, 300, "read write admin"), revoke, func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request) {
		_, err := newBroker(p).Lease(bg(t), req)
		if err == nil || !strings.Contains(err.Error(), "revok") {
			t.Fatalf("Lease error %v; want a refusal reporting the failed revocation", err)
		}
		noCanary(t, "excess scope, revoke failed", errTexts(err), clientSecret, userToken, accessToken)
	})
}

func TestBrokerRevokeRetried(t *testing.T) {
	eachBrokerProvider(t, nil, failFirst(1, 503, status(200, "")), func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request) {
		b := newBroker(p)
		c, err := b.Lease(bg(t), req)
		if err != nil {
			t.Fatal(err)
		}
		revs, err := b.Revoke(bg(t), req.TaskID)
		if err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if len(revs) != 1 || revs[0].Attempts != 2 || revs[0].Err != nil || revs[0].NotRevocable || revs[0].Credential.LeaseID != c.LeaseID {
			t.Fatalf("revocations %+v; want one, after 2 attempts", revs)
		}
		rr := as.requests("/revoke")
		if len(rr) != 2 {
			t.Fatalf("%d revocation requests, want 2", len(rr))
		}
		for _, r := range rr {
			if r.Form.Get("token") != accessToken {
				t.Errorf("revocation of the wrong token")
			}
		}
	})
}

func TestBrokerRevokeFails(t *testing.T) {
	revoke := func(w http.ResponseWriter, _ *http.Request, _ int, r request) {
		writeJSON(w, 503, map[string]string{"error": "temporarily_unavailable", "error_description": "try later to revoke " + r.Form.Get("token")})
	}
	eachBrokerProvider(t, nil, revoke, func(t *testing.T, p credentials.Provider, as *asServer, req credentials.Request) {
		b := newBroker(p)
		c, err := b.Lease(bg(t), req)
		if err != nil {
			t.Fatal(err)
		}
		revs, err := b.Revoke(bg(t), req.TaskID)
		if err == nil {
			t.Fatalf("Revoke succeeded: %+v", revs)
		}
		if !strings.Contains(err.Error(), c.LeaseID) {
			t.Errorf("error %q does not name lease %s", err, c.LeaseID)
		}
		if len(revs) != 1 || revs[0].Err == nil || revs[0].Attempts != 3 {
			t.Errorf("revocations %+v; want one failure after 3 attempts", revs)
		}
		if !errors.Is(err, credentials.ErrUnavailable) {
			t.Errorf("error %v does not wrap ErrUnavailable", err)
		}
		if n := len(as.requests("/revoke")); n != 3 {
			t.Errorf("%d revocation requests, want 3", n)
		}
		noCanary(t, "revoke fails", errTexts(err), clientSecret, userToken, accessToken)
		for _, r := range revs {
			noCanary(t, "revocation error", errTexts(r.Err), clientSecret, userToken, accessToken)
		}
	})
}
