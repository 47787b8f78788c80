package mcpguard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/adapters/mcp"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// audience is the guarded server's name in the JWT-SVIDs its callers send.
const audience = "spiffe://example.org/server/files"

// bearer sends a fixed bearer token.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestServerStreamableJWTSVID: over the streamable HTTP transport, the
// SDK's bearer-token middleware verifies the caller's JWT-SVID, and the
// identity policy sees is the token's SPIFFE ID; a request with no token,
// a forged one or one for another audience never reaches the tool.
func TestServerStreamableJWTSVID(t *testing.T) {
	ctx := testContext(t)
	issuer, err := identity.NewDevIssuer("example.org")
	if err != nil {
		t.Fatal(err)
	}
	forger, err := identity.NewDevIssuer("example.org") // same trust domain, other keys
	if err != nil {
		t.Fatal(err)
	}
	caller, err := issuer.Agent("/agent/caller")
	if err != nil {
		t.Fatal(err)
	}

	rec := policytest.AllowAll()
	e := newEnv(t, rec, agentguard.WithIdentity(mcpguard.CallerSource(nil)))
	g, err := mcpguard.NewServer(e.Guard, "files", mcpguard.WithToolConfig(withCredential))
	if err != nil {
		t.Fatal(err)
	}
	srv := newToolServer()
	srv.AddReceivingMiddleware(g.Middleware())
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv.Server }, nil)
	hs := httptest.NewServer(auth.RequireBearerToken(mcpguard.VerifyJWTSVID(issuer, audience), nil)(handler))
	t.Cleanup(hs.Close)

	dial := func(token string) (*mcp.ClientSession, error) {
		client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1.0.0"}, nil)
		return client.Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint: hs.URL, HTTPClient: &http.Client{Transport: bearer{token}}, MaxRetries: -1,
		}, nil)
	}
	mint := func(iss *identity.DevIssuer, aud string) string {
		svid, err := iss.MintJWTSVID(caller.ID(), aud)
		if err != nil {
			t.Fatal(err)
		}
		return svid.Marshal()
	}

	t.Run("verified caller", func(t *testing.T) {
		cs, err := dial(mint(issuer, audience))
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "over http"}})
		if err != nil || res.IsError || text(res) != "echo: over http" {
			t.Fatalf("echo = %v, %q", err, text(res))
		}
		calls := rec.Calls()
		if len(calls) != 1 || calls[0].Agent.ID != caller.ID() {
			t.Fatalf("policy calls = %+v, want one by %s", calls, caller.ID())
		}
		if got := srv.credentials(); len(got) != 1 || got[0] != canary {
			t.Errorf("credentials the tool saw = %q", got)
		}
		e.expectOneCall(t, "echo", audittest.Want{Agent: caller.ID().String(), Decision: audit.Allow, Outcome: audit.OutcomeOK})
	})
	for name, token := range map[string]string{
		"no token":       "",
		"forged token":   mint(forger, audience),
		"other audience": mint(issuer, "spiffe://example.org/server/other"),
		"not a JWT":      "not-a-jwt",
	} {
		t.Run(name, func(t *testing.T) {
			cs, err := dial(token)
			if err == nil {
				_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}})
				cs.Close()
			}
			if err == nil {
				t.Fatal("the request went through")
			}
		})
	}
	if n := srv.count("echo"); n != 1 {
		t.Errorf("echo ran %d times, want only the verified caller's call", n)
	}
	e.expectNoCanary(t)
}

// TestCallerFromTokenInfo: another verifier's TokenInfo names no caller,
// unless WithTokenUserIDs trusts its UserIDs of one trust domain; and a
// streamable handler without any bearer-token middleware serves nobody.
func TestCallerFromTokenInfo(t *testing.T) {
	users := map[string]string{
		"good":         callerID.String(),
		"bad":          "alice@example.org",
		"other-domain": "spiffe://evil.example/agent/caller",
	}
	verify := func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		u, ok := users[token]
		if !ok {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{UserID: u, Expiration: timeFarAhead}, nil
	}
	tests := []struct {
		name    string
		opts    []mcpguard.Option
		noAuth  bool
		allowed map[string]bool // token -> allowed
	}{
		{"default: JWT-SVIDs only", nil, false, map[string]bool{"good": false, "bad": false, "other-domain": false}},
		{"WithTokenUserIDs", []mcpguard.Option{mcpguard.WithTokenUserIDs(callerID.TrustDomain())}, false, map[string]bool{"good": true, "bad": false, "other-domain": false}},
		{"no bearer-token middleware", []mcpguard.Option{mcpguard.WithTokenUserIDs(callerID.TrustDomain())}, true, map[string]bool{"good": false, "": false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			rec := policytest.AllowAll()
			e := newEnv(t, rec, agentguard.WithIdentity(mcpguard.CallerSource(nil)))
			g, err := mcpguard.NewServer(e.Guard, "files", tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			srv := newToolServer()
			srv.AddReceivingMiddleware(g.Middleware())
			var handler http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv.Server }, nil)
			if !tc.noAuth {
				handler = auth.RequireBearerToken(verify, nil)(handler)
			}
			hs := httptest.NewServer(handler)
			t.Cleanup(hs.Close)
			want := 0
			for token, allowed := range tc.allowed {
				client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1.0.0"}, nil)
				cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: hs.URL, HTTPClient: &http.Client{Transport: bearer{token}}}, nil)
				if err != nil {
					t.Fatal(err)
				}
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}})
				cs.Close()
				if err != nil {
					t.Fatal(err)
				}
				if res.IsError == allowed {
					t.Errorf("token %q: isError=%v %q, want allowed=%v", token, res.IsError, text(res), allowed)
				}
				if allowed {
					want++
				}
			}
			if srv.count("echo") != want {
				t.Errorf("echo ran %d times, want %d", srv.count("echo"), want)
			}
			for _, c := range rec.Calls() {
				if c.Agent.ID != callerID {
					t.Errorf("policy saw agent %s", c.Agent.ID)
				}
			}
			e.expectNoCanary(t)
		})
	}
}
