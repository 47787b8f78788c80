package approval_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/identity"
)

// testKey is printable so that a leak shows in any string.
var testKey = []byte("SECRET-webhook-key-0123456789-abcdefghij")

// The test's own implementation of the documented wire format, written
// from the package documentation rather than from the code.

func specMAC(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.Join(parts, "\n")))
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

func signRequest(key []byte, ts string, body []byte) string {
	return specMAC(key, "agentguard-approval-request", ts, string(body))
}

func signAnswer(key []byte, ts, requestID string, body []byte) string {
	return specMAC(key, "agentguard-approval-answer", ts, requestID, string(body))
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// wireReq is the part of a webhook request the tests read.
type wireReq struct {
	Version   int             `json:"version"`
	ID        string          `json:"id"`
	Digest    string          `json:"digest"`
	Args      json.RawMessage `json:"args"`
	ExpiresAt time.Time       `json:"expires_at"`
}

// clock is a settable offset from the real time.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time      { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) add(d time.Duration) { c.offset.Add(int64(d)) }
func grant(names ...string) approval.DecideFunc {
	return func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		return req.Grant(names...), nil
	}
}

// newHandler returns a webhook handler for testKey.
func newHandler(t *testing.T, decide approval.DecideFunc, opts ...approval.WebhookOption) http.Handler {
	t.Helper()
	h, err := approval.NewWebhookHandler(testKey, decide, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// serveHook serves h and returns a Webhook posting to it with testKey.
func serveHook(t *testing.T, h http.Handler, opts ...approval.WebhookOption) *approval.Webhook {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	hook, err := approval.NewWebhook(srv.URL+"/approve", testKey, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return hook
}

func TestWebhookGrant(t *testing.T) {
	var asked []*agentguard.ApprovalRequest
	var mu sync.Mutex
	hook := serveHook(t, newHandler(t, func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		mu.Lock()
		asked = append(asked, req)
		mu.Unlock()
		a := req.Grant("alice", "bob")
		a.Reason = "checked"
		return a, nil
	}))
	env := guardWith(t, "manager", hook)
	var runs atomic.Int64
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "task-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	if _, err := env.Guard.Invoke(ctx, counted("refund", &runs), agentguard.Call{ID: "call-1", Args: json.RawMessage(`{"amount": 40}`)}); err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 1 {
		t.Fatalf("runs = %d, want 1", runs.Load())
	}
	a := wantApproval(t, env, agentguard.ApprovalGranted, "alice", "bob")
	if a.Reason != "checked" {
		t.Fatalf("audit reason %q", a.Reason)
	}
	if len(asked) != 1 {
		t.Fatalf("decide asked %d times", len(asked))
	}
	r := asked[0]
	if r.ID != a.RequestID || r.Digest != a.Digest || r.Action != agentguard.ApproveCall ||
		r.Agent.ID.String() != agentguardtest.AgentID || len(r.Agent.Chain) != 0 || r.TaskID != "task-1" ||
		r.Tool != "refund" || r.CallID != "call-1" || string(r.Args) != `{"amount":40}` || r.ArgsDigest == "" ||
		r.Kind != "manager" || !slices.Equal(r.Policies, []string{"refund-approval"}) || !r.ExpiresAt.After(time.Now()) {
		t.Fatalf("decide saw %+v", r)
	}
}

// TestWebhookRoundTrip: every field of a request, chain included, reaches
// decide as it was asked.
func TestWebhookRoundTrip(t *testing.T) {
	got := make(chan *agentguard.ApprovalRequest, 1)
	hook := serveHook(t, newHandler(t, func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		got <- req
		return req.Refuse("no", "carol"), nil
	}))
	want := &agentguard.ApprovalRequest{
		ID: "approval-1", Action: agentguard.ApproveToolChange,
		Agent:  identity.MustParse("spiffe://example.org/agent/sub", "spiffe://example.org/agent/root"),
		TaskID: "t", Tool: "search", CallID: "c", Args: json.RawMessage(`{"a":[1,"x"]}`),
		ArgsDigest: "sha256:aa", Digest: "sha256:bb", Kind: "change_toolset", Reason: "why",
		Policies: []string{"p1", "p2"}, ExpiresAt: time.Now().Add(time.Minute).Truncate(time.Millisecond),
	}
	a, err := hook.Approve(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	if a.Granted || a.Reason != "no" || !slices.Equal(a.Approvers, []string{"carol"}) || a.RequestID != want.ID || a.Digest != want.Digest {
		t.Fatalf("answer %+v", a)
	}
	r := <-got
	if r.ID != want.ID || r.Action != want.Action || r.Agent.String() != want.Agent.String() || r.TaskID != want.TaskID ||
		r.Tool != want.Tool || r.CallID != want.CallID || string(r.Args) != string(want.Args) ||
		r.ArgsDigest != want.ArgsDigest || r.Digest != want.Digest || r.Kind != want.Kind || r.Reason != want.Reason ||
		!slices.Equal(r.Policies, want.Policies) || !r.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("decide saw\n%+v\nwant\n%+v", r, want)
	}
}

func TestWebhookRefusalAndError(t *testing.T) {
	for _, tc := range []struct {
		name      string
		decide    approval.DecideFunc
		status    string
		approvers []string
	}{
		{"refused", func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			return req.Refuse("not today", "bob"), nil
		}, agentguard.ApprovalRefused, []string{"bob"}},
		{"approver error", func(context.Context, *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			return agentguard.Approval{}, errors.New("database down")
		}, agentguard.ApprovalError, nil},
		{"unbound grant", func(context.Context, *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			return agentguard.Approval{Granted: true, Approvers: []string{"alice"}}, nil
		}, agentguard.ApprovalRefused, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := guardWith(t, "manager", serveHook(t, newHandler(t, tc.decide)))
			var runs atomic.Int64
			_, err := env.Guard.Invoke(context.Background(), counted("refund", &runs), agentguard.Call{})
			if !errors.Is(err, agentguard.ErrApprovalRequired) || runs.Load() != 0 {
				t.Fatalf("call: %v, runs %d; want ErrApprovalRequired and no run", err, runs.Load())
			}
			wantApproval(t, env, tc.status, tc.approvers...)
			if strings.Contains(err.Error(), "database down") {
				t.Fatalf("the receiver's error text crossed the wire: %v", err)
			}
			if se, ok := errors.AsType[*approval.StatusError](err); tc.status == agentguard.ApprovalError && (!ok || se.StatusCode != http.StatusInternalServerError) {
				t.Fatalf("approver error: %v, want a *StatusError 500", err)
			}
		})
	}
}

// flipLast changes the last hex digit of s.
func flipLast(s string) string {
	if strings.HasSuffix(s, "0") {
		return s[:len(s)-1] + "1"
	}
	return s[:len(s)-1] + "0"
}

// answerer makes a webhook's answer to the request it was sent.
type answerer func(w http.ResponseWriter, req wireReq, reqHeader http.Header, reqBody []byte)

// serveAnswers serves answer, after checking that the request is signed
// as documented.
func serveAnswers(t *testing.T, answer answerer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get(approval.TimestampHeader)
		if r.Header.Get(approval.SignatureHeader) != signRequest(testKey, ts, body) {
			t.Errorf("request not signed as documented")
		}
		var req wireReq
		if err := json.Unmarshal(body, &req); err != nil || req.Version != 1 {
			t.Errorf("request body %s: %v", body, err)
		}
		answer(w, req, r.Header, body)
	})
}

// signed writes an answer body signed with key at ts, for requestID.
func signed(w http.ResponseWriter, key []byte, ts time.Time, requestID string, body []byte) {
	w.Header().Set(approval.TimestampHeader, unix(ts))
	w.Header().Set(approval.SignatureHeader, signAnswer(key, unix(ts), requestID, body))
	_, _ = w.Write(body)
}

func answerBody(id, digest string, granted bool, approvers ...string) []byte {
	b, _ := json.Marshal(map[string]any{"request_id": id, "digest": digest, "granted": granted, "approvers": approvers, "reason": ""})
	return b
}

// TestWebhookRejectsAnswers: only a 200 answer, signed with the key, for
// this request, recent and well formed, is accepted; every other answer
// denies the call.
func TestWebhookRejectsAnswers(t *testing.T) {
	otherKey := bytes.Repeat([]byte("k"), 40)
	genuine := newHandler(t, grant("alice"))
	forward := func(edit func(h http.Header, body []byte) []byte) answerer {
		return func(w http.ResponseWriter, _ wireReq, reqHeader http.Header, reqBody []byte) {
			r := httptest.NewRequest("POST", "/", bytes.NewReader(reqBody))
			r.Header = reqHeader.Clone()
			rec := httptest.NewRecorder()
			genuine.ServeHTTP(rec, r)
			body := edit(rec.Header(), rec.Body.Bytes())
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body)
		}
	}
	for _, tc := range []struct {
		name   string
		answer answerer
		want   error
	}{
		{"sanity: genuine answer", forward(func(_ http.Header, b []byte) []byte { return b }), nil},
		{"signature altered", forward(func(h http.Header, b []byte) []byte {
			h.Set(approval.SignatureHeader, flipLast(h.Get(approval.SignatureHeader)))
			return b
		}), approval.ErrBadSignature},
		{"body altered", forward(func(_ http.Header, b []byte) []byte {
			return bytes.Replace(b, []byte(`"alice"`), []byte(`"mallo"`), 1)
		}), approval.ErrBadSignature},
		{"unsigned", forward(func(h http.Header, b []byte) []byte { h.Del(approval.SignatureHeader); return b }), approval.ErrBadSignature},
		{"no timestamp", forward(func(h http.Header, b []byte) []byte { h.Del(approval.TimestampHeader); return b }), approval.ErrBadSignature},
		{"other scheme only", forward(func(h http.Header, b []byte) []byte {
			h.Set(approval.SignatureHeader, "v2="+strings.TrimPrefix(h.Get(approval.SignatureHeader), "v1="))
			return b
		}), approval.ErrBadSignature},
		{"wrong key", func(w http.ResponseWriter, req wireReq, _ http.Header, _ []byte) {
			signed(w, otherKey, time.Now(), req.ID, answerBody(req.ID, req.Digest, true, "alice"))
		}, approval.ErrBadSignature},
		{"request reflected as answer", func(w http.ResponseWriter, _ wireReq, h http.Header, body []byte) {
			w.Header().Set(approval.TimestampHeader, h.Get(approval.TimestampHeader))
			w.Header().Set(approval.SignatureHeader, h.Get(approval.SignatureHeader))
			_, _ = w.Write(body)
		}, approval.ErrBadSignature},
		{"signed for another request ID", func(w http.ResponseWriter, req wireReq, _ http.Header, _ []byte) {
			signed(w, testKey, time.Now(), "approval-other", answerBody(req.ID, req.Digest, true, "alice"))
		}, approval.ErrBadSignature},
		{"stale timestamp", func(w http.ResponseWriter, req wireReq, _ http.Header, _ []byte) {
			signed(w, testKey, time.Now().Add(-10*time.Minute), req.ID, answerBody(req.ID, req.Digest, true, "alice"))
		}, approval.ErrStaleAnswer},
		{"future timestamp", func(w http.ResponseWriter, req wireReq, _ http.Header, _ []byte) {
			signed(w, testKey, time.Now().Add(10*time.Minute), req.ID, answerBody(req.ID, req.Digest, true, "alice"))
		}, approval.ErrStaleAnswer},
		{"other digest", func(w http.ResponseWriter, req wireReq, _ http.Header, _ []byte) {
			signed(w, testKey, time.Now(), req.ID, answerBody(req.ID, "sha256:other", true, "alice"))
		}, approval.ErrWrongRequest},
		{"other request ID in body", func(w http.ResponseWriter, req wireReq, _ http.Header, _ []byte) {
			signed(w, testKey, time.Now(), req.ID, answerBody("approval-other", req.Digest, true, "alice"))
		}, approval.ErrWrongRequest},
		{"grant naming nobody", func(w http.ResponseWriter, req wireReq, _ http.Header, _ []byte) {
			signed(w, testKey, time.Now(), req.ID, answerBody(req.ID, req.Digest, true))
		}, approval.ErrBadAnswer},
		{"not JSON", func(w http.ResponseWriter, req wireReq, _ http.Header, _ []byte) {
			signed(w, testKey, time.Now(), req.ID, []byte("granted"))
		}, approval.ErrBadAnswer},
		{"too large", func(w http.ResponseWriter, req wireReq, _ http.Header, _ []byte) {
			body := answerBody(req.ID, req.Digest, true, "alice", strings.Repeat("a", 70<<10))
			signed(w, testKey, time.Now(), req.ID, body)
		}, approval.ErrBadAnswer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := guardWith(t, "manager", serveHook(t, serveAnswers(t, tc.answer)))
			var runs atomic.Int64
			_, err := env.Guard.Invoke(context.Background(), counted("refund", &runs), agentguard.Call{})
			if tc.want == nil {
				if err != nil || runs.Load() != 1 {
					t.Fatalf("genuine answer: %v, runs %d", err, runs.Load())
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, agentguard.ErrApprovalRequired) {
				t.Fatalf("call: %v, want %v", err, tc.want)
			}
			if runs.Load() != 0 {
				t.Fatal("tool ran")
			}
			wantApproval(t, env, agentguard.ApprovalError)
		})
	}
}

func TestWebhookStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		code int
	}{
		{"long error page", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, strings.Repeat("<html>", 10_000))
		}, http.StatusBadGateway},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}, http.StatusTemporaryRedirect},
		{"nobody decided in time", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no decision", http.StatusGatewayTimeout)
		}, http.StatusGatewayTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := guardWith(t, "manager", serveHook(t, tc.h))
			var runs atomic.Int64
			_, err := env.Guard.Invoke(context.Background(), counted("refund", &runs), agentguard.Call{})
			se, ok := errors.AsType[*approval.StatusError](err)
			if !ok || se.StatusCode != tc.code || runs.Load() != 0 {
				t.Fatalf("call: %v, runs %d; want a *StatusError %d", err, runs.Load(), tc.code)
			}
			if len(se.Excerpt) > 128 || len(err.Error()) > 1024 {
				t.Fatalf("excerpt of %d bytes, error of %d", len(se.Excerpt), len(err.Error()))
			}
			timeout := tc.code == http.StatusGatewayTimeout
			if errors.Is(err, agentguard.ErrApprovalTimeout) != timeout {
				t.Fatalf("call: %v; a timeout: %v, want %v", err, !timeout, timeout)
			}
			status := agentguard.ApprovalError
			if timeout {
				status = agentguard.ApprovalTimeout
			}
			wantApproval(t, env, status)
		})
	}
}

func TestWebhookTimeout(t *testing.T) {
	decided := make(chan error, 1)
	hook := serveHook(t, newHandler(t, func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		<-ctx.Done() // nobody answers
		decided <- ctx.Err()
		return agentguard.Approval{}, ctx.Err()
	}))
	env := guardWith(t, "manager", hook, agentguard.WithApprovalTimeout(100*time.Millisecond))
	var runs atomic.Int64
	_, err := env.Guard.Invoke(context.Background(), counted("refund", &runs), agentguard.Call{})
	if !errors.Is(err, agentguard.ErrApprovalTimeout) || !errors.Is(err, agentguard.ErrApprovalRequired) || runs.Load() != 0 {
		t.Fatalf("call: %v, runs %d; want a timeout", err, runs.Load())
	}
	wantApproval(t, env, agentguard.ApprovalTimeout)
	if err := <-decided; err == nil {
		t.Fatal("decide's context did not end")
	}
}

func TestWebhookCancelled(t *testing.T) {
	started := make(chan struct{})
	hook := serveHook(t, newHandler(t, func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		close(started)
		<-ctx.Done()
		return agentguard.Approval{}, ctx.Err()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := hook.Approve(ctx, request("approval-1", ""))
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("Approve returned before decide was asked: %v", err)
	}
	cancel()
	if err := wait(t, done); !errors.Is(err, context.Canceled) || errors.Is(err, agentguard.ErrApprovalTimeout) {
		t.Fatalf("cancelled Approve: %v, want context.Canceled", err)
	}
}

// capture forwards to h the first request it gets, keeps h's answer, and
// answers every later request with that same answer, bytes and headers:
// a replay.
type capture struct {
	h        http.Handler
	mu       sync.Mutex
	requests int
	reqBody  []byte
	reqHdr   http.Header
	answer   *httptest.ResponseRecorder
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	if c.answer == nil {
		c.reqBody, c.reqHdr = body, r.Header.Clone()
		fwd := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		fwd.Header = r.Header.Clone()
		c.answer = httptest.NewRecorder()
		c.h.ServeHTTP(c.answer, fwd)
	}
	for k, v := range c.answer.Header() {
		w.Header()[k] = slices.Clone(v)
	}
	w.WriteHeader(c.answer.Code)
	_, _ = w.Write(c.answer.Body.Bytes())
}

// TestWebhookReplayedAnswer: a genuine signed grant for one call
// authorizes no other: not other arguments, not another task, not later.
func TestWebhookReplayedAnswer(t *testing.T) {
	var decides atomic.Int64
	cp := &capture{h: newHandler(t, func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		decides.Add(1)
		return req.Grant("alice"), nil
	})}
	clk := &clock{}
	hook := serveHook(t, cp, approval.WithClock(clk.now))
	var first *agentguard.ApprovalRequest
	var mu sync.Mutex
	env := guardWith(t, "manager", agentguard.ApproverFunc(func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		mu.Lock()
		if first == nil {
			first = req
		}
		mu.Unlock()
		return hook.Approve(ctx, req)
	}))
	var runs atomic.Int64
	tool := counted("refund", &runs)
	ctx1, task1, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	defer task1.End(context.Background())
	ctx2, task2, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t2"})
	if err != nil {
		t.Fatal(err)
	}
	defer task2.End(context.Background())

	if _, err := env.Guard.Invoke(ctx1, tool, agentguard.Call{Args: json.RawMessage(`{"amount":10}`)}); err != nil {
		t.Fatalf("first call: %v", err)
	}
	if runs.Load() != 1 {
		t.Fatal("first call did not run")
	}
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		args    string
		advance time.Duration
		want    error
	}{
		{"other arguments", ctx1, `{"amount":1000}`, 0, approval.ErrBadSignature},
		{"same arguments, another task", ctx2, `{"amount":10}`, 0, approval.ErrBadSignature},
		{"same call again", ctx1, `{"amount":10}`, 0, approval.ErrBadSignature},
		{"after expiry", ctx1, `{"amount":10}`, time.Hour, approval.ErrBadSignature},
	} {
		clk.add(tc.advance)
		_, err := env.Guard.Invoke(tc.ctx, tool, agentguard.Call{Args: json.RawMessage(tc.args)})
		if !errors.Is(err, tc.want) || !errors.Is(err, agentguard.ErrApprovalRequired) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if runs.Load() != 1 {
			t.Fatalf("%s: the replayed grant ran the tool", tc.name)
		}
	}
	if cp.requests != 5 || decides.Load() != 1 {
		t.Fatalf("%d requests, %d decisions; want 5 requests (each replayed to) and 1 decision", cp.requests, decides.Load())
	}

	// The captured answer is genuine for its own request, but only while
	// it is recent: replayed an hour later it is stale.
	clk.add(-time.Hour)
	if a, err := hook.Approve(context.Background(), first); err != nil || !a.Granted {
		t.Fatalf("sanity: the captured answer to its own request: %+v, %v", a, err)
	}
	clk.add(time.Hour)
	if _, err := hook.Approve(context.Background(), first); !errors.Is(err, approval.ErrStaleAnswer) {
		t.Fatalf("the captured answer an hour later: %v, want ErrStaleAnswer", err)
	}
}

func TestWebhookConcurrent(t *testing.T) {
	hook := serveHook(t, newHandler(t, func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		if strings.Contains(string(req.Args), `"no"`) {
			return req.Refuse("", "bob"), nil
		}
		return req.Grant("alice"), nil
	}))
	env := guardWith(t, "manager", hook)
	var runs, allowed atomic.Int64
	tool := counted("refund", &runs)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			args := `{"n":` + strconv.Itoa(i) + `,"d":"yes"}`
			if i%2 == 0 {
				args = `{"n":` + strconv.Itoa(i) + `,"d":"no"}`
			}
			_, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{Args: json.RawMessage(args)})
			switch {
			case err == nil:
				allowed.Add(1)
			case !errors.Is(err, agentguard.ErrApprovalRequired):
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if runs.Load() != 16 || allowed.Load() != 16 {
		t.Fatalf("runs %d, allowed %d; want 16", runs.Load(), allowed.Load())
	}
}

func TestNewWebhookErrors(t *testing.T) {
	short := testKey[:approval.MinKeySize-1]
	for name, url := range map[string]string{"empty": "", "relative": "/approve", "ftp": "ftp://example.org/x", "no host": "https:///x"} {
		if _, err := approval.NewWebhook(url, testKey); err == nil {
			t.Errorf("URL %s accepted", name)
		}
	}
	if _, err := approval.NewWebhook("https://example.org/approve", short); err == nil || strings.Contains(err.Error(), string(short)) {
		t.Errorf("short key: %v", err)
	}
	if _, err := approval.NewWebhookHandler(short, grant("a")); err == nil || strings.Contains(err.Error(), string(short)) {
		t.Errorf("handler, short key: %v", err)
	}
	if _, err := approval.NewWebhookHandler(testKey, nil); err == nil {
		t.Error("handler without decide accepted")
	}
}

// TestWebhookCopiesKey: changing the caller's slice afterwards changes
// nothing.
func TestWebhookCopiesKey(t *testing.T) {
	key := bytes.Clone(testKey)
	srv := httptest.NewServer(newHandler(t, grant("alice")))
	defer srv.Close()
	hook, err := approval.NewWebhook(srv.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	clear(key)
	if a, err := hook.Approve(context.Background(), request("approval-1", "")); err != nil || !a.Granted {
		t.Fatalf("after the caller cleared its key: %+v, %v", a, err)
	}
}

// TestWebhookArgsAreCanonicalBytes: the arguments cross the wire as the
// very bytes args_digest covers, <, > and & unescaped: the receiver's
// SHA-256 of what it got is the request's ArgsDigest.
func TestWebhookArgsAreCanonicalBytes(t *testing.T) {
	seen := make(chan *agentguard.ApprovalRequest, 1)
	var wire []byte
	receiver := newHandler(t, func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		seen <- req
		return req.Grant("alice"), nil
	})
	hook := serveHook(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		wire = body
		r.Body = io.NopCloser(bytes.NewReader(body))
		receiver.ServeHTTP(w, r)
	}))
	env := guardWith(t, "manager", hook)
	var runs atomic.Int64
	if _, err := env.Guard.Invoke(context.Background(), counted("refund", &runs), agentguard.Call{Args: json.RawMessage(`{"note": "<b>&"}`)}); err != nil {
		t.Fatal(err)
	}
	req := <-seen
	sum := sha256.Sum256(req.Args)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != req.ArgsDigest || string(req.Args) != `{"note":"<b>&"}` {
		t.Fatalf("receiver got args %s with SHA-256 %s; args_digest is %s", req.Args, got, req.ArgsDigest)
	}
	if !bytes.Contains(wire, []byte(`"args":{"note":"<b>&"}`)) {
		t.Fatalf("wire body %s does not carry the canonical arguments", wire)
	}
}

// TestWebhookToolsetAndFingerprint: toolset and fingerprint reach the
// receiver intact, as the wire fields "toolset" and "fingerprint", both
// from a direct request and from the guard's.
func TestWebhookToolsetAndFingerprint(t *testing.T) {
	got := make(chan *agentguard.ApprovalRequest, 1)
	var wire map[string]any
	receiver := newHandler(t, func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		got <- req
		return req.Grant("alice"), nil
	})
	hook := serveHook(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		wire = nil
		_ = json.Unmarshal(body, &wire)
		r.Body = io.NopCloser(bytes.NewReader(body))
		receiver.ServeHTTP(w, r)
	}))
	req := request("approval-1", "")
	req.Toolset, req.Fingerprint = "billing-mcp", "sha256:0123abcd"
	if _, err := hook.Approve(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.Toolset != "billing-mcp" || r.Fingerprint != "sha256:0123abcd" {
		t.Fatalf("receiver saw toolset %q, fingerprint %q", r.Toolset, r.Fingerprint)
	}
	if wire["toolset"] != "billing-mcp" || wire["fingerprint"] != "sha256:0123abcd" {
		t.Fatalf("wire fields: toolset %v, fingerprint %v", wire["toolset"], wire["fingerprint"])
	}

	var asked *agentguard.ApprovalRequest
	env := guardWith(t, "manager", agentguard.ApproverFunc(func(ctx context.Context, r *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		asked = r
		return hook.Approve(ctx, r)
	}))
	tool := counted("refund", new(atomic.Int64))
	tool.Toolset = "billing"
	if _, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if asked.Toolset != "billing" || asked.Fingerprint == "" || r.Toolset != asked.Toolset || r.Fingerprint != asked.Fingerprint {
		t.Fatalf("guard asked toolset %q, fingerprint %q; receiver saw %q, %q", asked.Toolset, asked.Fingerprint, r.Toolset, r.Fingerprint)
	}
}

// TestWebhookZeroValue: a Webhook not made by NewWebhook says so rather
// than panic.
func TestWebhookZeroValue(t *testing.T) {
	var zero approval.Webhook
	var nilHook *approval.Webhook
	for name, hook := range map[string]*approval.Webhook{"zero": &zero, "nil": nilHook} {
		_, err := hook.Approve(context.Background(), request("r1", ""))
		if err == nil || err.Error() != "approval: Webhook not made with NewWebhook" {
			t.Errorf("%s Webhook: %v", name, err)
		}
	}
	env := guardWith(t, "manager", &zero)
	var runs atomic.Int64
	if _, err := env.Guard.Invoke(context.Background(), counted("refund", &runs), agentguard.Call{}); !errors.Is(err, agentguard.ErrApprovalRequired) || runs.Load() != 0 {
		t.Fatalf("call through a zero Webhook: %v, runs %d", err, runs.Load())
	}
}

// TestWebhookStatusExcerpt: an unsigned error body reaches the error and
// the audit only as at most 128 bytes of valid UTF-8 without control or
// format characters.
func TestWebhookStatusExcerpt(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"control characters", "\x1b[2J\x1b[31mOK\r\nGRANTED by\u202e admin\u200b\x00\x7f\u2028", "[2J[31mOKGRANTED by admin"},
		{"long", strings.Repeat("x", 300), strings.Repeat("x", 128)},
		{"multi-byte at the cut", "x" + strings.Repeat("é", 100), "x" + strings.Repeat("é", 63)},
		{"invalid UTF-8", "a\xffb\xc3", "ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := guardWith(t, "manager", serveHook(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusForbidden)
				_, _ = io.WriteString(w, tc.body)
			})))
			_, err := env.Guard.Invoke(context.Background(), counted("refund", new(atomic.Int64)), agentguard.Call{})
			se, ok := errors.AsType[*approval.StatusError](err)
			if !ok || se.StatusCode != http.StatusForbidden {
				t.Fatalf("call: %v, want a *StatusError 403", err)
			}
			if se.Excerpt != tc.want || len(se.Excerpt) > 128 {
				t.Fatalf("excerpt %q, want %q", se.Excerpt, tc.want)
			}
			records, _ := json.Marshal(env.Audit.Events())
			for _, bad := range []string{"\x1b", "\\x1b", "\\u001b", "\r", "\\r", "\u202e", "\\u202e"} {
				if strings.Contains(err.Error(), bad) || bytes.Contains(records, []byte(bad)) {
					t.Fatalf("%q reached the error or audit: %v", bad, err)
				}
			}
		})
	}
}

// TestNewWebhookSchemes: plain http only to a loopback host, or with
// WithInsecureHTTP.
func TestNewWebhookSchemes(t *testing.T) {
	for url, ok := range map[string]bool{
		"https://example.org/approve":      true,
		"http://127.0.0.1:8080/approve":    true,
		"http://127.9.9.9/approve":         true,
		"http://[::1]:8080/approve":        true,
		"http://localhost:8080/approve":    true,
		"http://LocalHost/approve":         true,
		"http://example.org/approve":       false,
		"http://10.0.0.1/approve":          false,
		"http://127.0.0.1.nip.io/approve":  false,
		"http://localhost.example.org/x":   false,
		"http://user@example.org/approve":  false,
		"http://[::ffff:10.0.0.1]/approve": false,
	} {
		_, err := approval.NewWebhook(url, testKey)
		if (err == nil) != ok {
			t.Errorf("NewWebhook(%s): %v, want accepted %v", url, err, ok)
		}
		if _, err := approval.NewWebhook(url, testKey, approval.WithInsecureHTTP()); err != nil {
			t.Errorf("NewWebhook(%s, WithInsecureHTTP()): %v", url, err)
		}
	}
}
