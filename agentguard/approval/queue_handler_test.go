package approval_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

const (
	aliceToken = "alice-token-0123456789"
	bobToken   = "bob-token-9876543210"
)

// serveQueue serves q's handler under /approvals with tokens for alice and
// bob.
func serveQueue(t *testing.T, q *approval.Queue) *httptest.Server {
	t.Helper()
	auth := approval.Tokens(map[string]string{aliceToken: "alice", bobToken: "bob"})
	srv := httptest.NewServer(http.StripPrefix("/approvals", q.Handler(auth)))
	t.Cleanup(srv.Close)
	return srv
}

// do sends a request and returns the status and body.
func do(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

type listed struct {
	ID         string          `json:"id"`
	Action     string          `json:"action"`
	Agent      string          `json:"agent"`
	Chain      []string        `json:"chain"`
	Task       string          `json:"task"`
	Tool       string          `json:"tool"`
	CallID     string          `json:"call_id"`
	Args       json.RawMessage `json:"args"`
	ArgsDigest string          `json:"args_digest"`
	Digest     string          `json:"digest"`
	Kind       string          `json:"kind"`
	Reason     string          `json:"reason"`
	Policies   []string        `json:"policies"`
	ExpiresAt  time.Time       `json:"expires_at"`
	GrantedBy  []string        `json:"granted_by"`
	Needed     int             `json:"needed"`
}

func TestQueueHandlerListsAndDecides(t *testing.T) {
	q := approval.NewQueue()
	env := guardWith(t, "manager", q)
	srv := serveQueue(t, q)
	var runs atomic.Int64
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "task-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	done := invoke(ctx, env.Guard, counted("refund", &runs), `{"amount": 40}`)
	req := next(t, q)

	status, body := do(t, "GET", srv.URL+"/approvals/", aliceToken, "")
	if status != http.StatusOK {
		t.Fatalf("GET = %d %s", status, body)
	}
	var list []listed
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("listing %s: %v", body, err)
	}
	if len(list) != 1 {
		t.Fatalf("listing has %d requests, want 1: %s", len(list), body)
	}
	l := list[0]
	if l.ID != req.ID || l.Action != agentguard.ApproveCall || l.Agent != agentguardtest.AgentID ||
		l.Chain == nil || len(l.Chain) != 0 || l.Task != "task-1" || l.Tool != "refund" || l.CallID != req.CallID ||
		string(l.Args) != `{"amount":40}` || l.ArgsDigest != req.ArgsDigest || l.Digest != req.Digest ||
		l.Kind != "manager" || !slices.Equal(l.Policies, []string{"refund-approval"}) ||
		!l.ExpiresAt.Equal(req.ExpiresAt) || l.Needed != 1 || l.GrantedBy == nil {
		t.Fatalf("listed %+v, want %+v", l, req)
	}

	// The body names mallory; the decision is alice's all the same.
	status, body = do(t, "POST", srv.URL+"/approvals/"+req.ID, aliceToken,
		`{"decision": "grant", "reason": "checked", "approver": "mallory", "approvers": ["mallory"]}`)
	if status != http.StatusOK {
		t.Fatalf("POST grant = %d %s", status, body)
	}
	var out struct {
		ID        string   `json:"id"`
		Status    string   `json:"status"`
		Approvers []string `json:"approvers"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.ID != req.ID || out.Status != "granted" || !slices.Equal(out.Approvers, []string{"alice"}) {
		t.Fatalf("POST answered %s (%v)", body, err)
	}
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 1 {
		t.Fatalf("runs = %d", runs.Load())
	}
	wantApproval(t, env, agentguard.ApprovalGranted, "alice")
	wantPendingEmpty(t, q)

	status, body = do(t, "POST", srv.URL+"/approvals/"+req.ID, bobToken, `{"decision": "refuse"}`)
	if status != http.StatusConflict {
		t.Fatalf("POST on a decided request = %d %s, want 409", status, body)
	}
	status, body = do(t, "GET", srv.URL+"/approvals/", aliceToken, "")
	if status != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("listing after the outcome = %d %s, want []", status, body)
	}
}

func TestQueueHandlerRefuse(t *testing.T) {
	q := approval.NewQueue()
	env := guardWith(t, "manager", q)
	srv := serveQueue(t, q)
	var runs atomic.Int64
	done := invoke(context.Background(), env.Guard, counted("refund", &runs), `{}`)
	req := next(t, q)
	status, body := do(t, "POST", srv.URL+"/approvals/"+req.ID, bobToken, `{"decision": "refuse", "reason": "no"}`)
	if status != http.StatusOK || !strings.Contains(string(body), `"refused"`) {
		t.Fatalf("POST refuse = %d %s", status, body)
	}
	if err := wait(t, done); !errors.Is(err, agentguard.ErrApprovalRequired) {
		t.Fatalf("refused call: %v", err)
	}
	if runs.Load() != 0 {
		t.Fatal("refused call ran")
	}
	if a := wantApproval(t, env, agentguard.ApprovalRefused, "bob"); a.Reason != "no" {
		t.Fatalf("reason %q", a.Reason)
	}
}

func TestQueueHandlerQuorum(t *testing.T) {
	q := approval.NewQueue(approval.WithQuorum("two-person", 2))
	env := guardWith(t, "two-person", q)
	srv := serveQueue(t, q)
	var runs atomic.Int64
	done := invoke(context.Background(), env.Guard, counted("refund", &runs), `{}`)
	req := next(t, q)
	url := srv.URL + "/approvals/" + req.ID
	if status, body := do(t, "POST", url, aliceToken, `{"decision":"grant"}`); status != http.StatusOK || !strings.Contains(string(body), `"pending"`) {
		t.Fatalf("first grant = %d %s, want pending", status, body)
	}
	// alice cannot be the second person, whatever the body says.
	if status, body := do(t, "POST", url, aliceToken, `{"decision":"grant","approver":"bob"}`); status != http.StatusConflict {
		t.Fatalf("alice again = %d %s, want 409", status, body)
	}
	if runs.Load() != 0 || len(q.Pending()) != 1 {
		t.Fatal("one person's grants decided a two-person request")
	}
	if status, body := do(t, "POST", url, bobToken, `{"decision":"grant"}`); status != http.StatusOK || !strings.Contains(string(body), `"granted"`) {
		t.Fatalf("bob's grant = %d %s", status, body)
	}
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	wantApproval(t, env, agentguard.ApprovalGranted, "alice", "bob")
}

func TestQueueHandlerErrors(t *testing.T) {
	q := approval.NewQueue()
	defer q.Close()
	srv := serveQueue(t, q)
	go func() { _, _ = q.Approve(context.Background(), request("r1", "")) }()
	next(t, q)
	base := srv.URL + "/approvals/"
	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"no token", "GET", "", "", "", http.StatusUnauthorized},
		{"wrong token", "GET", "", "alice-token", "", http.StatusUnauthorized},
		{"no token, decision", "POST", "r1", "", `{"decision":"grant"}`, http.StatusUnauthorized},
		{"wrong token, decision", "POST", "r1", aliceToken + "x", `{"decision":"grant"}`, http.StatusUnauthorized},
		{"unknown request", "POST", "r9", aliceToken, `{"decision":"grant"}`, http.StatusNotFound},
		{"nested path", "POST", "r1/x", aliceToken, `{"decision":"grant"}`, http.StatusNotFound},
		{"not JSON", "POST", "r1", aliceToken, `grant`, http.StatusBadRequest},
		{"two values", "POST", "r1", aliceToken, `{"decision":"grant"} {}`, http.StatusBadRequest},
		{"bad decision", "POST", "r1", aliceToken, `{"decision":"maybe"}`, http.StatusBadRequest},
		{"no decision", "POST", "r1", aliceToken, `{}`, http.StatusBadRequest},
		{"too large", "POST", "r1", aliceToken, `{"decision":"grant","reason":"` + strings.Repeat("x", 20<<10) + `"}`, http.StatusRequestEntityTooLarge},
		{"GET one", "GET", "r1", aliceToken, "", http.StatusMethodNotAllowed},
		{"POST list", "POST", "", aliceToken, `{"decision":"grant"}`, http.StatusMethodNotAllowed},
		{"DELETE", "DELETE", "r1", aliceToken, "", http.StatusMethodNotAllowed},
	} {
		status, body := do(t, tc.method, base+tc.path, tc.token, tc.body)
		if status != tc.want {
			t.Errorf("%s: status %d %s, want %d", tc.name, status, body, tc.want)
		}
		if strings.Contains(string(body), aliceToken) {
			t.Errorf("%s: answer shows a token: %s", tc.name, body)
		}
	}
	if p := q.Pending(); len(p) != 1 {
		t.Fatalf("failed requests decided r1: %v", p)
	}
}

// TestQueueHandlerNilAuth: without an authenticator nothing gets through,
// not even a listing.
func TestQueueHandlerNilAuth(t *testing.T) {
	q := approval.NewQueue()
	defer q.Close()
	go func() { _, _ = q.Approve(context.Background(), request("r1", "")) }()
	next(t, q)
	srv := httptest.NewServer(q.Handler(nil))
	defer srv.Close()
	for _, tc := range []struct{ method, path, body string }{{"GET", "/", ""}, {"POST", "/r1", `{"decision":"grant"}`}} {
		if status, body := do(t, tc.method, srv.URL+tc.path, aliceToken, tc.body); status != http.StatusUnauthorized {
			t.Errorf("%s %s with a nil authenticator = %d %s, want 401", tc.method, tc.path, status, body)
		}
	}
	if len(q.Pending()) != 1 {
		t.Fatal("a decision got through a nil authenticator")
	}
}

func TestTokens(t *testing.T) {
	auth := approval.Tokens(map[string]string{aliceToken: "alice", "": "nobody", "orphan-token": ""})
	for _, tc := range []struct {
		header, want string
	}{
		{"Bearer " + aliceToken, "alice"},
		{"bearer " + aliceToken, "alice"},
		{"Bearer " + aliceToken + "x", ""},
		{"Bearer " + aliceToken[:len(aliceToken)-1], ""},
		{"Basic " + aliceToken, ""},
		{aliceToken, ""},
		{"Bearer ", ""},
		{"Bearer orphan-token", ""},
		{"", ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		name, err := auth(r)
		if name != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("%q: %q, %v; want %q", tc.header, name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "token-") {
			t.Errorf("%q: error shows the token: %v", tc.header, err)
		}
	}
}
