package mcpguard_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/adapters/mcp"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// tokenHeader is the header the tests' agents send their task credential in.
const tokenHeader = "X-Files-Token"

// received is one request an HTTP tool server received: its method, the
// tool it called (for tools/call), its tokenHeader and its Authorization.
type received struct{ method, tool, token, auth string }

// httpToolServer is the tool server of newToolServer over the streamable
// HTTP transport (unguarded: the tests are of the client), recording each
// request's tokenHeader as the server's handlers see it.
type httpToolServer struct {
	*toolServer
	mu   sync.Mutex
	reqs []received
}

func newHTTPToolServer() *httpToolServer {
	s := &httpToolServer{toolServer: newToolServer()}
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			r := received{method: method}
			if c, ok := req.(*mcp.CallToolRequest); ok {
				r.tool = c.Params.Name
			}
			if extra := req.GetExtra(); extra != nil {
				r.token, r.auth = extra.Header.Get(tokenHeader), extra.Header.Get("Authorization")
			}
			s.mu.Lock()
			s.reqs = append(s.reqs, r)
			s.mu.Unlock()
			return next(ctx, method, req)
		}
	})
	return s
}

func (s *httpToolServer) handler() http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.Server }, nil)
}

func (s *httpToolServer) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.reqs...)
}

// withAuthorization sets the Authorization header (as an agent presenting
// its own JWT-SVID would) before next sends the request.
type withAuthorization struct {
	value string
	next  http.RoundTripper
}

func (a withAuthorization) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", a.value)
	return a.next.RoundTrip(r)
}

// lockedBuffer is a log destination safe for the SDK's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// httpSession connects an MCP client to endpoint over the streamable HTTP
// transport whose HTTP client uses rt, and guards it with a fresh guard
// (policy allows every call; the operator pinned the tools). Only echo
// needs a credential, cred. Everything the client and the session log
// goes to logs.
func httpSession(t *testing.T, ctx context.Context, endpoint string, rt http.RoundTripper, cred credentials.Requirement, logs *lockedBuffer) (*mcpguard.Session, *env) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1.0.0"}, &mcp.ClientOptions{Logger: logger})
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: rt}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	lock := agentguard.NewLock()
	if _, err := mcpguard.PinTools(ctx, lock, cs, "files"); err != nil {
		_ = cs.Close()
		t.Fatal(err)
	}
	e := newEnv(t, policytest.AllowAll(), agentguard.WithLock(lock))
	s, err := mcpguard.NewSession(ctx, e.Guard, cs, mcpguard.WithLogger(logger), mcpguard.WithToolConfig(func(tl *agentguard.Tool) {
		if tl.Name == "echo" {
			tl.Credentials = []credentials.Requirement{cred}
		}
	}))
	if err != nil {
		_ = cs.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, e
}

// TestCredentialTransport: over a real streamable HTTP server, the guarded
// tools/call of a tool that declares a credential carries the call's task
// credential in the header, and no other request does: not initialize or
// tools/list, not a call of a tool without the credential, not a call
// made on the client session outside the guard. The Authorization the
// agent sets for itself is left as it was.
func TestCredentialTransport(t *testing.T) {
	ctx := testContext(t)
	srv := newHTTPToolServer()
	hs := httptest.NewServer(srv.handler())
	t.Cleanup(hs.Close)
	logs := &lockedBuffer{}
	cred := credentials.Requirement{Name: "api", Provider: agentguardtest.StaticProvider, Audience: "files", Resources: []string{hs.URL + "/"}}
	rt := withAuthorization{"Bearer agent-token", mcpguard.CredentialTransport(nil, "api", tokenHeader)}
	s, e := httpSession(t, ctx, hs.URL, rt, cred, logs)

	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "over http"}})
	if err != nil || text(res) != "echo: over http" {
		t.Fatalf("echo = %q, %v", text(res), err)
	}
	if res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "delete_file", Arguments: map[string]any{"path": "a"}}); err != nil || text(res) != "deleted" {
		t.Fatalf("delete_file = %q, %v", text(res), err)
	}
	// Outside the guard: no call, no credential.
	if _, err := s.ClientSession().CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "unguarded"}}); err != nil {
		t.Fatal(err)
	}

	var echoes, others int
	for _, r := range srv.received() {
		if r.auth != "Bearer agent-token" {
			t.Errorf("%s %s: Authorization = %q, want the agent's own", r.method, r.tool, r.auth)
		}
		switch {
		case r.method == "tools/call" && r.tool == "echo" && echoes == 0:
			echoes++
			if r.token != "Bearer "+canary {
				t.Errorf("the guarded echo call's %s = %q, want the task credential", tokenHeader, r.token)
			}
		default:
			others++
			if r.token != "" {
				t.Errorf("%s %s carried %s", r.method, r.tool, tokenHeader)
			}
		}
	}
	if echoes != 1 || others < 4 { // initialize, initialized, tools/list (twice), delete_file, the unguarded echo
		t.Errorf("server saw %d guarded echo calls and %d other requests: %+v", echoes, others, srv.received())
	}
	e.expectOneCall(t, "echo", audittest.Want{Agent: agentguardtest.AgentID, Decision: audit.Allow, Outcome: audit.OutcomeOK})
	e.expectNoCanary(t)
	if strings.Contains(logs.String(), canary) {
		t.Error("the logs hold the credential")
	}
}

// TestCredentialTransportDestination: the credential goes only where it is
// for. A server it is not for, or a redirect to one, gets no request: the
// call fails with credentials.ErrDestination, the tool does not run, and
// nothing the agent or the model sees holds the value.
func TestCredentialTransportDestination(t *testing.T) {
	t.Run("not for this server", func(t *testing.T) {
		ctx := testContext(t)
		srv := newHTTPToolServer()
		hs := httptest.NewServer(srv.handler())
		t.Cleanup(hs.Close)
		logs := &lockedBuffer{}
		cred := credentials.Requirement{Name: "api", Provider: agentguardtest.StaticProvider, Audience: "files", Resources: []string{"https://files.example.com/"}}
		s, e := httpSession(t, ctx, hs.URL, mcpguard.CredentialTransport(nil, "api", tokenHeader), cred, logs)
		expectNotSent(t, ctx, s, e, srv, logs)
	})
	t.Run("redirected elsewhere", func(t *testing.T) {
		ctx := testContext(t)
		srv := newHTTPToolServer()
		other := httptest.NewServer(srv.handler())
		t.Cleanup(other.Close)
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
		}))
		t.Cleanup(front.Close)
		logs := &lockedBuffer{}
		// The credential is for the front server only, and allowed there.
		cred := credentials.Requirement{Name: "api", Provider: agentguardtest.StaticProvider, Audience: "files"}
		s, e := httpSession(t, ctx, front.URL, mcpguard.CredentialTransport(nil, "api", tokenHeader, front.URL), cred, logs)
		expectNotSent(t, ctx, s, e, srv, logs)
	})
}

// expectNotSent calls echo and checks that it failed for its credential's
// destination, with no tools/call reaching srv.
func expectNotSent(t *testing.T, ctx context.Context, s *mcpguard.Session, e *env, srv *httpToolServer, logs *lockedBuffer) {
	t.Helper()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}})
	var te *agentguard.ToolError
	if !errors.Is(err, credentials.ErrDestination) || !errors.As(err, &te) {
		t.Fatalf("CallTool = %v, want a tool error for the credential's destination", err)
	}
	if res == nil || !res.IsError {
		t.Errorf("CallTool result = %+v, want isError", res)
	}
	if srv.count("echo") != 0 {
		t.Error("echo ran")
	}
	for _, r := range srv.received() {
		if r.method == "tools/call" || r.token != "" {
			t.Errorf("the server received %+v", r)
		}
	}
	e.expectOneCall(t, "echo", audittest.Want{Decision: audit.Allow, Outcome: audit.OutcomeError})
	e.expectNoCanary(t)
	for what, s := range map[string]string{"error": err.Error(), "result": text(res), "logs": logs.String()} {
		if strings.Contains(s, canary) {
			t.Errorf("the %s holds the credential", what)
		}
	}
}
