package mcpgoguard_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"

	mcpgoguard "github.com/agentguard/go-sdk/agentguard/adapters/mcpgo"
)

// audience is what the server's JWT-SVIDs must be addressed to.
const audience = "spiffe://example.org/mcp/billing"

// TestStreamableHTTPWithJWTSVID runs both sides over mcp-go's streamable
// HTTP transport on a loopback server: the agent's guarded Client presents
// its JWT-SVID, the guarded server verifies it and acts on each call as
// that agent.
func TestStreamableHTTPWithJWTSVID(t *testing.T) {
	issuer, err := identity.NewDevIssuer("example.org")
	if err != nil {
		t.Fatal(err)
	}
	buyer, err := issuer.Agent("/agent/buyer")
	if err != nil {
		t.Fatal(err)
	}
	other, err := issuer.Agent("/agent/other")
	if err != nil {
		t.Fatal(err)
	}

	// The server: only the buyer may call balance.
	serverEngine := policytest.NewRules(
		policytest.Rule{ID: "buyer-balance", Effect: policytest.Allow, Agent: buyer.ID().String(), Tool: "balance"},
		policytest.Rule{ID: "buyer-crash", Effect: policytest.Allow, Agent: buyer.ID().String(), Tool: "crash"},
	)
	senv := newEnv(t, serverEngine, agentguard.WithIdentity(mcpgoguard.Callers()))
	b := newBilling(t, senv)
	ts := httptest.NewServer(server.NewStreamableHTTPServer(b.srv,
		server.WithHTTPContextFunc(mcpgoguard.JWTSVIDContext(issuer, audience))))
	t.Cleanup(ts.Close)

	// The agent: its own guard, identity and credential.
	aenv := newEnv(t, policytest.AllowAll(), agentguard.WithIdentity(buyer), agentguard.WithApprover(reviewer))
	connectAs := func(t *testing.T, h transport.HTTPHeaderFunc) *mcpgoguard.Client {
		t.Helper()
		mc, err := client.NewStreamableHttpClient(ts.URL+"/mcp", transport.WithHTTPHeaderFunc(h))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = mc.Close() })
		c, err := mcpgoguard.NewClient(t.Context(), aenv.Guard, mc, mcpgoguard.WithToolConfig(apiCredential))
		if err != nil {
			t.Fatalf("NewClient: %v", err)
		}
		if _, err := c.Review(t.Context()); err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := t.Context()

	t.Run("verified caller", func(t *testing.T) {
		// The buyer's JWT-SVID, and its task's credential for the call.
		jwt, cred := mcpgoguard.JWTSVIDHeader(buyer, audience), mcpgoguard.CredentialHeader("X-Task-Token", "api")
		c := connectAs(t, func(ctx context.Context) map[string]string {
			h := map[string]string{}
			for k, v := range jwt(ctx) {
				h[k] = v
			}
			for k, v := range cred(ctx) {
				h[k] = v
			}
			return h
		})
		tools, err := c.Tools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tl := range tools {
			names = append(names, tl.Name)
		}
		// The server shows the buyer what it may call; the agent's guard
		// lets it call all of those.
		if got := strings.Join(names, ","); got != "balance,crash" {
			t.Errorf("Tools = %s, want balance,crash", got)
		}
		res, err := c.CallTool(ctx, call("balance", map[string]any{"account": "A-7"}))
		if err != nil || text(res) != "balance of A-7: 12" {
			t.Fatalf("balance: %q, %v", text(res), err)
		}
		if secret, _ := b.balance.seen(); secret != canary {
			t.Error("the server's handler ran without its task credential")
		}
		if got, _ := b.taskToken.Load().(string); got != "Bearer "+canary {
			t.Error("the agent's task credential did not reach the server")
		}
		// Each side audits the call once, as the buyer.
		for _, env := range []*testEnv{senv, aenv} {
			rec := audittest.ExpectCount(t, env.callRecords("balance"), audittest.Want{Decision: audit.Allow, Outcome: audit.OutcomeOK}, 1)
			if rec[0].Agent != buyer.ID().String() {
				t.Errorf("audited agent %q, want the buyer", rec[0].Agent)
			}
			if n := env.callSpans("balance"); n != 1 {
				t.Errorf("%d spans for one call", n)
			}
		}
		// The server does not show the buyer refund (no rule allows it):
		// the agent's registry does not have it.
		res, err = c.CallTool(ctx, call("refund", nil))
		if !errors.Is(err, agentguard.ErrUnknownTool) {
			t.Fatalf("refund: %v", err)
		}
		if !res.IsError || b.refund.n.Load() != 0 {
			t.Errorf("refund ran, or was not refused: %q", text(res))
		}
	})

	t.Run("no token", func(t *testing.T) {
		c := connectAs(t, func(context.Context) map[string]string { return nil })
		tools, err := c.Tools(ctx)
		if err != nil || len(tools) != 0 {
			t.Fatalf("Tools without a token = %v, %v; want none", tools, err)
		}
	})

	// rawAs connects an unguarded client presenting h, so that only the
	// server's guard decides.
	rawAs := func(t *testing.T, h transport.HTTPHeaderFunc) *client.Client {
		t.Helper()
		mc, err := client.NewStreamableHttpClient(ts.URL+"/mcp", transport.WithHTTPHeaderFunc(h))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = mc.Close() })
		if err := mc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := mc.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
			t.Fatal(err)
		}
		return mc
	}

	t.Run("token for another audience", func(t *testing.T) {
		before := b.balance.n.Load()
		mc := rawAs(t, mcpgoguard.JWTSVIDHeader(buyer, "spiffe://example.org/mcp/other"))
		res, err := mc.CallTool(ctx, call("balance", map[string]any{"account": "A-7"}))
		if err != nil || !res.IsError || b.balance.n.Load() != before {
			t.Fatalf("a call with a token for another server ran: %q, %v", text(res), err)
		}
		audittest.ExpectCount(t, senv.callRecords("balance"), audittest.Want{Decision: audit.Deny, Step: agentguard.StepIdentify}, 1)
	})

	t.Run("token signed by another key of the trust domain", func(t *testing.T) {
		forger, err := identity.NewDevIssuer("example.org")
		if err != nil {
			t.Fatal(err)
		}
		fake, err := forger.Agent("/agent/buyer")
		if err != nil {
			t.Fatal(err)
		}
		before := b.balance.n.Load()
		mc := rawAs(t, mcpgoguard.JWTSVIDHeader(fake, audience))
		res, err := mc.CallTool(ctx, call("balance", map[string]any{"account": "A-7"}))
		if err != nil || !res.IsError || b.balance.n.Load() != before {
			t.Fatalf("a call with a forged token ran: %q, %v", text(res), err)
		}
		audittest.ExpectCount(t, senv.callRecords("balance"), audittest.Want{Decision: audit.Deny, Step: agentguard.StepIdentify}, 2)
	})

	t.Run("another agent", func(t *testing.T) {
		before := b.balance.n.Load()
		mc := rawAs(t, mcpgoguard.JWTSVIDHeader(other, audience))
		res, err := mc.CallTool(ctx, call("balance", map[string]any{"account": "A-7"}))
		if err != nil || !res.IsError || !strings.Contains(text(res), "was denied") {
			t.Fatalf("balance as another agent: %q, %v", text(res), err)
		}
		if b.balance.n.Load() != before {
			t.Error("another agent's call ran")
		}
		rec := audittest.ExpectCount(t, senv.callRecords("balance"), audittest.Want{Decision: audit.Deny, Step: agentguard.StepAuthorize}, 1)
		if rec[0].Agent != other.ID().String() {
			t.Errorf("audited agent %q, want the other agent", rec[0].Agent)
		}
	})

	senv.noCanary(t)
	aenv.noCanary(t)
}

// TestInProcessCallerNotOverHTTP: a server given WithInProcessCaller and
// served over HTTP (by mistake) acts for nobody on an anonymous request,
// and for the verified agent on a request with a JWT-SVID: the in-process
// caller applies to in-process clients only.
func TestInProcessCallerNotOverHTTP(t *testing.T) {
	issuer, err := identity.NewDevIssuer("example.org")
	if err != nil {
		t.Fatal(err)
	}
	other, err := issuer.Agent("/agent/other")
	if err != nil {
		t.Fatal(err)
	}
	env := newEnv(t, serverRules(), agentguard.WithIdentity(mcpgoguard.Callers()))
	b := newBilling(t, env, mcpgoguard.WithInProcessCaller(identity.MustParse(agentguardtest.AgentID)))
	ts := httptest.NewServer(server.NewStreamableHTTPServer(b.srv,
		server.WithHTTPContextFunc(mcpgoguard.JWTSVIDContext(issuer, audience))))
	t.Cleanup(ts.Close)
	ctx := t.Context()
	dial := func(t *testing.T, h transport.HTTPHeaderFunc) *client.Client {
		t.Helper()
		var opts []transport.StreamableHTTPCOption
		if h != nil {
			opts = append(opts, transport.WithHTTPHeaderFunc(h))
		}
		mc, err := client.NewStreamableHttpClient(ts.URL+"/mcp", opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = mc.Close() })
		if err := mc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := mc.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
			t.Fatal(err)
		}
		return mc
	}

	anon := dial(t, nil)
	if got := listNames(t, anon); got != "" {
		t.Errorf("tools/list of an anonymous HTTP request = %s, want nothing", got)
	}
	res, err := anon.CallTool(ctx, call("balance", map[string]any{"account": "A-7"}))
	if err != nil || !res.IsError || b.balance.n.Load() != 0 {
		t.Fatalf("an anonymous HTTP call ran as the in-process caller: %q, %v", text(res), err)
	}
	audittest.ExpectCount(t, env.callRecords("balance"), audittest.Want{Decision: audit.Deny, Step: agentguard.StepIdentify}, 1)

	verified := dial(t, mcpgoguard.JWTSVIDHeader(other, audience))
	res, err = verified.CallTool(ctx, call("balance", map[string]any{"account": "A-7"}))
	if err != nil || res.IsError {
		t.Fatalf("the verified agent's call: %q, %v", text(res), err)
	}
	rec := audittest.ExpectCount(t, env.callRecords("balance"), audittest.Want{Decision: audit.Allow, Outcome: audit.OutcomeOK}, 1)
	if rec[0].Agent != other.ID().String() {
		t.Errorf("audited agent %q, want the verified %s", rec[0].Agent, other.ID())
	}
}
