package approval_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

// requestBody is a webhook request body as documented.
func requestBody(id string, expires time.Time, edit func(map[string]any)) []byte {
	m := map[string]any{
		"version": 1, "id": id, "action": "call_tool", "agent": "spiffe://example.org/agent/a",
		"chain": []string{"spiffe://example.org/agent/root"}, "task": "t", "tool": "refund", "call_id": "c",
		"args": map[string]any{"amount": 1}, "args_digest": "sha256:aa", "digest": "sha256:" + id,
		"kind": "manager", "reason": "", "policies": []string{"p"}, "expires_at": expires,
	}
	if edit != nil {
		edit(m)
	}
	b, _ := json.Marshal(m)
	return b
}

// post sends body to h signed with key at ts.
func post(h http.Handler, key []byte, ts time.Time, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	r.Header.Set(approval.TimestampHeader, unix(ts))
	r.Header.Set(approval.SignatureHeader, signRequest(key, unix(ts), body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// counting returns a decide that grants as alice and counts its calls.
func counting(n *atomic.Int64) approval.DecideFunc {
	return func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		n.Add(1)
		return req.Grant("alice"), nil
	}
}

func TestWebhookHandlerChecks(t *testing.T) {
	now := time.Now()
	otherKey := bytes.Repeat([]byte("o"), 32)
	for _, tc := range []struct {
		name    string
		send    func(h http.Handler) *httptest.ResponseRecorder
		status  int
		decides int64
	}{
		{"valid", func(h http.Handler) *httptest.ResponseRecorder {
			return post(h, testKey, now, requestBody("r1", now.Add(time.Minute), nil))
		}, http.StatusOK, 1},
		{"GET", func(h http.Handler) *httptest.ResponseRecorder {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			return w
		}, http.StatusMethodNotAllowed, 0},
		{"unsigned", func(h http.Handler) *httptest.ResponseRecorder {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("POST", "/", bytes.NewReader(requestBody("r1", now.Add(time.Minute), nil)))
			r.Header.Set(approval.TimestampHeader, unix(now))
			h.ServeHTTP(w, r)
			return w
		}, http.StatusUnauthorized, 0},
		{"wrong key", func(h http.Handler) *httptest.ResponseRecorder {
			return post(h, otherKey, now, requestBody("r1", now.Add(time.Minute), nil))
		}, http.StatusUnauthorized, 0},
		{"answer-signed body", func(h http.Handler) *httptest.ResponseRecorder {
			body := requestBody("r1", now.Add(time.Minute), nil)
			r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
			r.Header.Set(approval.TimestampHeader, unix(now))
			r.Header.Set(approval.SignatureHeader, signAnswer(testKey, unix(now), "r1", body))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w
		}, http.StatusUnauthorized, 0},
		{"stale timestamp", func(h http.Handler) *httptest.ResponseRecorder {
			return post(h, testKey, now.Add(-6*time.Minute), requestBody("r1", now.Add(time.Minute), nil))
		}, http.StatusUnauthorized, 0},
		{"expired", func(h http.Handler) *httptest.ResponseRecorder {
			return post(h, testKey, now, requestBody("r1", now.Add(-time.Second), nil))
		}, http.StatusGone, 0},
		{"version 2", func(h http.Handler) *httptest.ResponseRecorder {
			return post(h, testKey, now, requestBody("r1", now.Add(time.Minute), func(m map[string]any) { m["version"] = 2 }))
		}, http.StatusBadRequest, 0},
		{"agent not a SPIFFE ID", func(h http.Handler) *httptest.ResponseRecorder {
			return post(h, testKey, now, requestBody("r1", now.Add(time.Minute), func(m map[string]any) { m["agent"] = "alice" }))
		}, http.StatusBadRequest, 0},
		{"not JSON", func(h http.Handler) *httptest.ResponseRecorder {
			return post(h, testKey, now, []byte("{"))
		}, http.StatusBadRequest, 0},
		{"too large", func(h http.Handler) *httptest.ResponseRecorder {
			return post(h, testKey, now, requestBody("r1", now.Add(time.Minute), func(m map[string]any) {
				m["args"] = map[string]any{"x": strings.Repeat("a", 5<<20)}
			}))
		}, http.StatusRequestEntityTooLarge, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var decides atomic.Int64
			h := newHandler(t, counting(&decides), approval.WithClock(func() time.Time { return now }))
			w := tc.send(h)
			if w.Code != tc.status || decides.Load() != tc.decides {
				t.Fatalf("status %d (%s), %d decisions; want %d, %d", w.Code, w.Body, decides.Load(), tc.status, tc.decides)
			}
			signedAnswer := w.Header().Get(approval.SignatureHeader) != ""
			if signedAnswer != (tc.status == http.StatusOK) {
				t.Fatalf("answer %d signed: %v", w.Code, signedAnswer)
			}
			if tc.status != http.StatusOK {
				return
			}
			// The answer is as documented.
			ts := w.Header().Get(approval.TimestampHeader)
			if w.Header().Get(approval.SignatureHeader) != signAnswer(testKey, ts, "r1", w.Body.Bytes()) {
				t.Fatal("answer not signed as documented")
			}
			var a struct {
				RequestID string   `json:"request_id"`
				Digest    string   `json:"digest"`
				Granted   bool     `json:"granted"`
				Approvers []string `json:"approvers"`
				Reason    *string  `json:"reason"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.RequestID != "r1" || a.Digest != "sha256:r1" ||
				!a.Granted || len(a.Approvers) != 1 || a.Approvers[0] != "alice" || a.Reason == nil {
				t.Fatalf("answer %s (%v)", w.Body, err)
			}
		})
	}
}

// TestWebhookHandlerReplayedRequest: a real signed request, captured and
// sent again, is refused; so is the same request with its body changed.
func TestWebhookHandlerReplayedRequest(t *testing.T) {
	var decides atomic.Int64
	h := newHandler(t, counting(&decides))
	cp := &capture{h: h}
	hook := serveHook(t, cp)
	env := guardWith(t, "manager", hook)
	var runs atomic.Int64
	if _, err := env.Guard.Invoke(context.Background(), counted("refund", &runs), agentguard.Call{Args: json.RawMessage(`{"amount":10}`)}); err != nil {
		t.Fatal(err)
	}
	resend := func(body []byte) int {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		r.Header = cp.reqHdr.Clone()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if code := resend(cp.reqBody); code != http.StatusConflict {
		t.Fatalf("replayed request: %d, want 409", code)
	}
	tampered := bytes.Replace(cp.reqBody, []byte(`"amount":10`), []byte(`"amount":99`), 1)
	if bytes.Equal(tampered, cp.reqBody) {
		t.Fatalf("sanity: nothing to tamper with in %s", cp.reqBody)
	}
	if code := resend(tampered); code != http.StatusUnauthorized {
		t.Fatalf("tampered request: %d, want 401", code)
	}
	if decides.Load() != 1 || runs.Load() != 1 {
		t.Fatalf("%d decisions, %d runs; want 1, 1", decides.Load(), runs.Load())
	}
}

// TestWebhookHandlerReplayMemory: memory is bounded; an ID is forgotten
// only once its request has expired, and an expired request is refused.
func TestWebhookHandlerReplayMemory(t *testing.T) {
	clk := &clock{}
	var decides atomic.Int64
	h := newHandler(t, counting(&decides), approval.WithClock(clk.now), approval.WithReplayCapacity(1))
	start := clk.now()
	r1 := requestBody("r1", start.Add(time.Minute), nil)
	if w := post(h, testKey, start, r1); w.Code != http.StatusOK {
		t.Fatalf("r1: %d %s", w.Code, w.Body)
	}
	if w := post(h, testKey, start, requestBody("r2", start.Add(time.Minute), nil)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("r2 with the memory full: %d, want 503", w.Code)
	}
	if w := post(h, testKey, start, r1); w.Code != http.StatusConflict {
		t.Fatalf("r1 again: %d, want 409", w.Code)
	}
	clk.add(2 * time.Minute)
	later := clk.now()
	if w := post(h, testKey, later, r1); w.Code != http.StatusGone {
		t.Fatalf("r1 after it expired: %d, want 410", w.Code)
	}
	if w := post(h, testKey, later, requestBody("r2", later.Add(time.Minute), nil)); w.Code != http.StatusOK {
		t.Fatalf("r2 once r1 expired: %d %s", w.Code, w.Body)
	}
	if decides.Load() != 2 {
		t.Fatalf("%d decisions, want 2", decides.Load())
	}
}

func TestWebhookHandlerDecideContext(t *testing.T) {
	// decide's context ends when the request expires.
	now := time.Now()
	got := make(chan time.Time, 1)
	h := newHandler(t, func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		d, _ := ctx.Deadline()
		got <- d
		return req.Grant("alice"), nil
	})
	if w := post(h, testKey, now, requestBody("r1", now.Add(time.Minute), nil)); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if d := <-got; d.Before(now.Add(55*time.Second)) || d.After(time.Now().Add(time.Minute)) {
		t.Fatalf("decide's deadline %v, want about %v", d, now.Add(time.Minute))
	}
}

func TestWebhookHandlerDecideTooLate(t *testing.T) {
	// decide still undecided when the request expires: 504, unsigned.
	h := newHandler(t, func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		<-ctx.Done()
		return agentguard.Approval{}, ctx.Err()
	})
	now := time.Now()
	w := post(h, testKey, now, requestBody("r1", now.Add(50*time.Millisecond), nil))
	if w.Code != http.StatusGatewayTimeout || w.Header().Get(approval.SignatureHeader) != "" {
		t.Fatalf("expired decision answered %d %v %s", w.Code, w.Header(), w.Body)
	}
}

func TestWebhookHandlerDecideError(t *testing.T) {
	h := newHandler(t, func(context.Context, *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		return agentguard.Approval{}, errors.New("secret internals")
	})
	now := time.Now()
	w := post(h, testKey, now, requestBody("r1", now.Add(time.Minute), nil))
	if w.Code != http.StatusInternalServerError || w.Header().Get(approval.SignatureHeader) != "" ||
		strings.Contains(w.Body.String(), "secret internals") {
		t.Fatalf("decide error answered %d %v %s", w.Code, w.Header(), w.Body)
	}
}
