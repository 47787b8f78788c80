package approval_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// do sends a request and returns the status and body. A body is sent as
// application/json.
func do(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	return send(t, method, url, h, body)
}

// send sends a request with the given headers and returns the status and
// body.
func send(t *testing.T, method, url string, h http.Header, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
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
	ID          string          `json:"id"`
	Action      string          `json:"action"`
	Agent       string          `json:"agent"`
	Chain       []string        `json:"chain"`
	Task        string          `json:"task"`
	Tool        string          `json:"tool"`
	Toolset     string          `json:"toolset"`
	Fingerprint *string         `json:"fingerprint"`
	CallID      string          `json:"call_id"`
	Args        json.RawMessage `json:"args"`
	ArgsDigest  string          `json:"args_digest"`
	Digest      string          `json:"digest"`
	Kind        string          `json:"kind"`
	Reason      string          `json:"reason"`
	Policies    []string        `json:"policies"`
	ExpiresAt   time.Time       `json:"expires_at"`
	GrantedBy   []string        `json:"granted_by"`
	Needed      int             `json:"needed"`
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
		l.Chain == nil || len(l.Chain) != 0 || l.Task != "task-1" || l.Tool != "refund" || l.Toolset != req.Toolset ||
		l.Fingerprint == nil || *l.Fingerprint != req.Fingerprint || l.CallID != req.CallID ||
		string(l.Args) != `{"amount":40}` || l.ArgsDigest != req.ArgsDigest || l.Digest != req.Digest ||
		l.Kind != "manager" || !slices.Equal(l.Policies, []string{"refund-approval"}) ||
		!l.ExpiresAt.Equal(req.ExpiresAt) || l.Needed != 1 || l.GrantedBy == nil {
		t.Fatalf("listed %+v, want %+v", l, req)
	}

	// A body cannot name an approver: a field for one is refused as
	// unknown, and nothing is decided.
	for _, b := range []string{
		`{"decision": "grant", "reason": "checked", "approver": "mallory"}`,
		`{"decision": "grant", "reason": "checked", "approvers": ["mallory"]}`,
	} {
		if status, body := do(t, "POST", srv.URL+"/approvals/"+req.ID, aliceToken, b); status != http.StatusBadRequest {
			t.Fatalf("POST %s = %d %s, want 400", b, status, body)
		}
	}
	if len(q.Pending()) != 1 || runs.Load() != 0 {
		t.Fatal("a body with unknown fields decided the request")
	}
	// The approver is the one the token names.
	status, body = do(t, "POST", srv.URL+"/approvals/"+req.ID, aliceToken, `{"decision": "grant", "reason": "checked"}`)
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
	// alice cannot be the second person, nor name one in the body.
	if status, body := do(t, "POST", url, aliceToken, `{"decision":"grant"}`); status != http.StatusConflict {
		t.Fatalf("alice again = %d %s, want 409", status, body)
	}
	if status, body := do(t, "POST", url, aliceToken, `{"decision":"grant","approver":"bob"}`); status != http.StatusBadRequest {
		t.Fatalf("alice naming bob = %d %s, want 400", status, body)
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
		{"unknown field", "POST", "r1", aliceToken, `{"decision":"grant","extra":1}`, http.StatusBadRequest},
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

// TestQueueHandlerQuorumNameVariants: tokens naming "bob" and "Bob" are
// one approver: together they do not meet a two-person quorum.
func TestQueueHandlerQuorumNameVariants(t *testing.T) {
	q := approval.NewQueue(approval.WithQuorum("two-person", 2))
	defer q.Close()
	const bobLaptop, bobPhone = "bob-laptop-token-0123456789", "bob-phone-token-0123456789"
	srv := httptest.NewServer(q.Handler(approval.Tokens(map[string]string{bobLaptop: "bob", bobPhone: "Bob", aliceToken: "alice"})))
	defer srv.Close()
	done := make(chan agentguard.Approval, 1)
	go func() {
		a, _ := q.Approve(context.Background(), request("r1", "two-person"))
		done <- a
	}()
	next(t, q)
	if status, body := do(t, "POST", srv.URL+"/r1", bobLaptop, `{"decision":"grant"}`); status != http.StatusOK || !strings.Contains(string(body), `"pending"`) {
		t.Fatalf("bob's grant = %d %s, want pending", status, body)
	}
	if status, body := do(t, "POST", srv.URL+"/r1", bobPhone, `{"decision":"grant"}`); status != http.StatusConflict {
		t.Fatalf("Bob's grant after bob's = %d %s, want 409", status, body)
	}
	if len(q.Pending()) != 1 {
		t.Fatal("bob and Bob met a two-person quorum")
	}
	if status, body := do(t, "POST", srv.URL+"/r1", aliceToken, `{"decision":"grant"}`); status != http.StatusOK || !strings.Contains(string(body), `"granted"`) {
		t.Fatalf("alice's grant = %d %s", status, body)
	}
	if a := <-done; !a.Granted || !slices.Equal(a.Approvers, []string{"bob", "alice"}) {
		t.Fatalf("approval %+v", a)
	}
}

// cookieAuth authenticates by a session cookie, as a browser sends it
// along with any request, cross-site ones included.
func cookieAuth(r *http.Request) (string, error) {
	c, err := r.Cookie("session")
	if err != nil || c.Value != "alice-session" {
		return "", errors.New("no session")
	}
	return "alice", nil
}

// TestQueueHandlerContentType: with a cookie authenticator, what a
// cross-site form or fetch without preflight can send (a form encoding,
// text/plain, or no type) decides nothing; only application/json does.
func TestQueueHandlerContentType(t *testing.T) {
	q := approval.NewQueue()
	defer q.Close()
	srv := httptest.NewServer(q.Handler(cookieAuth))
	defer srv.Close()
	done := make(chan agentguard.Approval, 1)
	go func() {
		a, _ := q.Approve(context.Background(), request("r1", ""))
		done <- a
	}()
	next(t, q)
	post := func(contentType, body string) (int, []byte) {
		h := http.Header{"Cookie": {"session=alice-session"}}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		return send(t, "POST", srv.URL+"/r1", h, body)
	}
	for _, ct := range []string{
		"", "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
		"multipart/form-data; boundary=x", "application/json; charset=latin1", "application/json; x=1",
		"application/jsonp", "application/json-patch+json", "text/json", "application/json, text/plain",
	} {
		if status, body := post(ct, `{"decision":"grant"}`); status != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %q: %d %s, want 415", ct, status, body)
		}
	}
	if len(q.Pending()) != 1 {
		t.Fatal("a request without Content-Type application/json decided")
	}
	if status, body := post("Application/JSON; Charset=UTF-8", `{"decision":"grant"}`); status != http.StatusOK {
		t.Fatalf("application/json with charset utf-8: %d %s", status, body)
	}
	if a := <-done; !a.Granted || !slices.Equal(a.Approvers, []string{"alice"}) {
		t.Fatalf("approval %+v", a)
	}
}

// TestTokensUnusableNames: a token whose name is blank or has white space
// around it authenticates nobody.
func TestTokensUnusableNames(t *testing.T) {
	auth := approval.Tokens(map[string]string{
		"token-a": "alice ", "token-b": " bob", "token-c": "\tcarol\n", "token-d": "  ", "token-e": "",
		aliceToken: "alice", "token-f": "Fay Wray",
	})
	for tok, want := range map[string]string{
		"token-a": "", "token-b": "", "token-c": "", "token-d": "", "token-e": "", aliceToken: "alice", "token-f": "Fay Wray",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		name, err := auth(r)
		if name != want || (err == nil) != (want != "") {
			t.Errorf("token %q: %q, %v; want %q", tok, name, err, want)
		}
		if err != nil && strings.Contains(err.Error(), tok) {
			t.Errorf("token %q: error shows the token: %v", tok, err)
		}
	}
}

// TestQueueHandlerListingWire: the listing carries toolset and
// fingerprint, and the arguments as their canonical bytes, <, > and &
// unescaped, so that their SHA-256 is args_digest.
func TestQueueHandlerListingWire(t *testing.T) {
	q := approval.NewQueue()
	defer q.Close()
	srv := serveQueue(t, q)
	r := request("r1", "")
	r.Toolset, r.Fingerprint = "billing-mcp", "sha256:f00d"
	r.Args = json.RawMessage(`{"note":"<b>&"}`)
	sum := sha256.Sum256(r.Args)
	r.ArgsDigest = "sha256:" + hex.EncodeToString(sum[:])
	go func() { _, _ = q.Approve(context.Background(), r) }()
	next(t, q)
	status, body := do(t, "GET", srv.URL+"/approvals/", aliceToken, "")
	var list []listed
	if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil || len(list) != 1 {
		t.Fatalf("listing = %d %s (%v)", status, body, err)
	}
	l := list[0]
	got := sha256.Sum256(l.Args)
	if "sha256:"+hex.EncodeToString(got[:]) != l.ArgsDigest || l.ArgsDigest != r.ArgsDigest || string(l.Args) != `{"note":"<b>&"}` {
		t.Fatalf("listed args %s, digest %s; want %s, %s", l.Args, l.ArgsDigest, r.Args, r.ArgsDigest)
	}
	if l.Toolset != "billing-mcp" || l.Fingerprint == nil || *l.Fingerprint != "sha256:f00d" {
		t.Fatalf("listed toolset %q, fingerprint %v", l.Toolset, l.Fingerprint)
	}
}
