package integration_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
)

// fault answers status after delay for requests to path.
func fault(path string, status int, delay time.Duration) func(*http.Request) (int, time.Duration) {
	return func(r *http.Request) (int, time.Duration) {
		if r.URL.Path != path {
			return 0, 0
		}
		return status, delay
	}
}

// TestServerErrorsDenyAfterRetries: a token endpoint answering 500 denies
// the call with ErrCredential after the broker's bounded retries.
func TestServerErrorsDenyAfterRetries(t *testing.T) {
	w := newWorld(t, clientCredentials(t), credentials.WithRetry(3, 10*time.Millisecond))
	w.as.SetFault(fault("/oauth/token", http.StatusInternalServerError, 0))
	_, err := w.g.Invoke(context.Background(), w.tool("invoice:read"), agentguard.Call{})
	if !errors.Is(err, agentguard.ErrCredential) || !errors.Is(err, credentials.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrCredential, temporary", err)
	}
	if n := w.as.TokenRequests(grantCC); n != 3 {
		t.Errorf("%d token requests, want 3 (bounded retries)", n)
	}
	f := w.rec.Kind(audit.KindCredentialFail)
	if len(f) != 1 || f[0].Credential.Attempts != 3 {
		t.Errorf("fail records = %+v", f)
	}
	// The server recovers: the next call gets its credential.
	w.as.SetFault(nil)
	if _, err := w.g.Invoke(context.Background(), w.tool("invoice:read"), agentguard.Call{}); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	w.noLeak(t, err)
}

// TestServerTimeoutDeniesWithinDeadline: a token endpoint that does not
// answer denies the call with ErrCredential once the call's deadline is
// near, not after the server's delay, and each attempt is cut short.
func TestServerTimeoutDeniesWithinDeadline(t *testing.T) {
	w := newWorld(t, clientCredentials(t), credentials.WithRetry(5, 10*time.Millisecond), credentials.WithAttemptTimeout(200*time.Millisecond))
	w.as.SetFault(fault("/oauth/token", 0, time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := w.g.Invoke(ctx, w.tool("invoice:read"), agentguard.Call{})
	took := time.Since(start)
	if !errors.Is(err, agentguard.ErrCredential) || !errors.Is(err, credentials.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrCredential, temporary", err)
	}
	if took > 10*time.Second {
		t.Errorf("took %v: the server's delay was waited out", took)
	}
	if n := w.as.TokenRequests(grantCC); n < 2 || n > 5 {
		t.Errorf("%d token requests, want between 2 and 5 (retried, bounded)", n)
	}
	// A call whose own deadline is shorter than one attempt ends at its
	// deadline.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := w.g.Invoke(ctx2, w.tool("invoice:read"), agentguard.Call{}); !errors.Is(err, agentguard.ErrCredential) {
		t.Errorf("short deadline: err = %v, want ErrCredential", err)
	}
}

// TestRevocationFailureAtEnd: a revocation endpoint that fails is retried;
// when it keeps failing, End reports it and the audit log records it; the
// token, not revoked, stays active at the server (which is why it must be
// reported). When it fails once, the retry revokes it.
func TestRevocationFailureAtEnd(t *testing.T) {
	t.Run("keeps failing", func(t *testing.T) {
		w := newWorld(t, clientCredentials(t), credentials.WithRetry(3, 10*time.Millisecond))
		ctx, task, err := w.g.StartTask(context.Background(), agentguard.TaskSpec{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.g.Invoke(ctx, w.tool("invoice:read"), agentguard.Call{}); err != nil {
			t.Fatal(err)
		}
		var revokes int
		w.as.SetFault(func(r *http.Request) (int, time.Duration) {
			if r.URL.Path == "/oauth/revoke" {
				revokes++ // the server's handler runs one request at a time here
				return http.StatusServiceUnavailable, 0
			}
			return 0, 0
		})
		err = task.End(context.Background())
		lease := w.rec.Kind(audit.KindCredentialIssue)[0].Leases[0]
		if err == nil || !strings.Contains(err.Error(), lease) {
			t.Fatalf("End = %v, want an error naming lease %s", err, lease)
		}
		if revokes != 3 {
			t.Errorf("%d revocation requests, want 3", revokes)
		}
		rv := w.rec.Kind(audit.KindCredentialRevoke)
		if len(rv) != 1 || rv[0].Outcome != audit.OutcomeError || rv[0].Credential.Attempts != 3 || !strings.Contains(rv[0].Error, "503") {
			t.Errorf("revoke records = %+v", rv)
		}
		if active, _ := w.as.Introspect(t, w.token(t)); !active {
			t.Error("the token is inactive although revocation failed: the test proves nothing")
		}
		w.noLeak(t, err)
	})
	t.Run("fails once", func(t *testing.T) {
		w := newWorld(t, clientCredentials(t), credentials.WithRetry(3, 10*time.Millisecond))
		ctx, task, err := w.g.StartTask(context.Background(), agentguard.TaskSpec{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.g.Invoke(ctx, w.tool("invoice:read"), agentguard.Call{}); err != nil {
			t.Fatal(err)
		}
		failed := false
		w.as.SetFault(func(r *http.Request) (int, time.Duration) {
			if r.URL.Path == "/oauth/revoke" && !failed {
				failed = true
				return http.StatusBadGateway, 0
			}
			return 0, 0
		})
		if err := task.End(context.Background()); err != nil {
			t.Fatal(err)
		}
		if active, _ := w.as.Introspect(t, w.token(t)); active {
			t.Error("token active after a retried revocation")
		}
		rv := w.rec.Kind(audit.KindCredentialRevoke)
		if len(rv) != 1 || rv[0].Outcome != audit.OutcomeOK || rv[0].Credential.Attempts != 2 {
			t.Errorf("revoke records = %+v", rv)
		}
	})
}
