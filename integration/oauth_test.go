// Package integration_test proves AgentGuard's credentials against a real
// OAuth 2.0 authorization server (zitadel/oidc's op, see authserver),
// through the guard, as an agent uses them.
package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/oauth"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/integration/authserver"
	"github.com/agentguard/go-sdk/policy/policytest"
)

const (
	billingAPI    = "https://billing.example/api"
	clientID      = "billing-agent"
	clientSecret  = "s3cret-CANARY-client-1c9e"
	grantCC       = "client_credentials"
	grantExchange = oauth.GrantTypeExchange
)

// world is one authorization server, one agent with a development SPIFFE
// identity, and a guard whose broker talks to the server.
type world struct {
	as    *authserver.Server
	dev   *identity.DevIssuer
	agent *identity.DevAgent
	g     *agentguard.Guard
	rec   *audittest.Recorder
	spans *tracetest.SpanRecorder
	logs  *safeBuffer
	// expired makes the agent's JWT-SVIDs expired ones.
	expired atomic.Bool

	mu     sync.Mutex
	tokens []string // every token a tool received
}

func newWorld(t *testing.T, provider func(w *world, cfg oauth.Config) credentials.Provider, opts ...credentials.BrokerOption) *world {
	t.Helper()
	w := &world{rec: audittest.NewRecorder(), spans: tracetest.NewSpanRecorder(), logs: &safeBuffer{}}
	dev, err := identity.NewDevIssuer("example.org")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := dev.Agent("/agent/billing")
	if err != nil {
		t.Fatal(err)
	}
	w.dev, w.agent = dev, agent
	// A second issuer of the trust domain, whose clock is an hour behind,
	// mints the same agent's JWT-SVIDs, expired 55 minutes ago, when the
	// test asks for them; the server trusts both issuers' keys.
	past, err := identity.NewDevIssuer("example.org", identity.WithDevClock(func() time.Time { return time.Now().Add(-time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	pastAgent, err := past.Agent("/agent/billing")
	if err != nil {
		t.Fatal(err)
	}
	bundle := dev.JWTBundle()
	for id, key := range past.JWTBundle().JWTAuthorities() {
		if err := bundle.AddJWTAuthority(id, key); err != nil {
			t.Fatal(err)
		}
	}
	w.as = authserver.Start(t, authserver.Config{
		Bundles: bundle,
		Clients: []authserver.Client{
			{ID: clientID, Secret: clientSecret, Scopes: []string{"invoice:read", "invoice:write"}, Audiences: []string{billingAPI}},
			{ID: agent.ID().String(), SPIFFEID: agent.ID().String(), Scopes: []string{"invoice:read", "invoice:write"}, Audiences: []string{billingAPI}},
		},
	})
	cfg := oauth.Config{TokenURL: w.as.TokenURL(), RevocationURL: w.as.RevocationURL(), HTTPClient: w.as.Client(),
		Auth: oauth.ClientSecretBasic(clientID, credentials.NewSecret(clientSecret))}
	b := credentials.NewBroker(append([]credentials.BrokerOption{credentials.WithProvider("idp", provider(w, cfg))}, opts...)...)
	w.g, err = agentguard.New(
		agentguard.WithIdentity(&expiring{DevAgent: agent, past: pastAgent, expired: &w.expired}),
		agentguard.WithPolicy(policytest.AllowAll()),
		agentguard.WithBroker(b),
		agentguard.WithAudit(w.rec),
		agentguard.WithLogger(w.logs.logger()),
		agentguard.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(w.spans))),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.g.Close(context.Background()) })
	return w
}

func clientCredentials(t *testing.T) func(*world, oauth.Config) credentials.Provider {
	return func(_ *world, cfg oauth.Config) credentials.Provider {
		p, err := oauth.NewClientCredentials(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// tool returns a tool that needs one credential of the provider "idp" and
// records the token it gets.
func (w *world) tool(scopes ...string) *agentguard.Tool {
	return &agentguard.Tool{
		Name: "invoices",
		Credentials: []credentials.Requirement{{
			Name: "billing", Provider: "idp", Audience: billingAPI, Scopes: scopes,
		}},
		Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
			c, ok := credentials.FromContext(ctx, "billing")
			if !ok {
				return nil, errors.New("no credential")
			}
			w.mu.Lock()
			w.tokens = append(w.tokens, c.Secret.Reveal())
			w.mu.Unlock()
			return &agentguard.Result{Output: c.LeaseID}, nil
		},
	}
}

func (w *world) token(t *testing.T) string {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.tokens) == 0 {
		t.Fatal("no tool received a token")
	}
	return w.tokens[len(w.tokens)-1]
}

// noLeak checks that no token a tool received, and no secret, appears in
// an audit record, a log line, a span or the given errors.
func (w *world) noLeak(t *testing.T, errs ...error) {
	t.Helper()
	w.mu.Lock()
	secrets := append(slices.Clone(w.tokens), clientSecret)
	w.mu.Unlock()
	j, _ := json.Marshal(w.rec.Events())
	var spans strings.Builder
	for _, s := range w.spans.Ended() {
		fmt.Fprint(&spans, s.Name(), s.Attributes(), s.Events(), s.Status())
	}
	for _, sec := range secrets {
		for where, text := range map[string]string{"audit": string(j), "logs": w.logs.String(), "spans": spans.String()} {
			if strings.Contains(text, sec) {
				t.Errorf("a secret reached the %s", where)
			}
		}
		for _, err := range errs {
			if err != nil && strings.Contains(err.Error(), sec) {
				t.Errorf("a secret reached an error: %v", err)
			}
		}
	}
}

// TestClientCredentialsLease: a client-credentials lease is active at the
// server (RFC 7662 introspection) during the task, with the declared
// scopes only, and inactive once the task has ended (RFC 7009).
func TestClientCredentialsLease(t *testing.T) {
	w := newWorld(t, clientCredentials(t))
	ctx, task, err := w.g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.g.Invoke(ctx, w.tool("invoice:read"), agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	tok := w.token(t)
	active, claims := w.as.Introspect(t, tok)
	if !active {
		t.Fatalf("lease inactive during its task: %v", claims)
	}
	if claims["client_id"] != clientID || claims["scope"] != "invoice:read" {
		t.Errorf("introspection = %v, want client %s and scope invoice:read only", claims, clientID)
	}
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	if active, claims := w.as.Introspect(t, tok); active {
		t.Errorf("lease still active after End: %v", claims)
	}
	rv := w.rec.Kind(audit.KindCredentialRevoke)
	if len(rv) != 1 || rv[0].Outcome != audit.OutcomeOK {
		t.Errorf("revoke records = %+v", rv)
	}
	if n := w.as.TokenRequests(grantCC); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	w.noLeak(t)
}

// TestConcurrentCallsOneTokenRequest: 200 concurrent calls in one task
// needing the same credential cause exactly one token request.
func TestConcurrentCallsOneTokenRequest(t *testing.T) {
	w := newWorld(t, clientCredentials(t))
	ctx, task, err := w.g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	tool := w.tool("invoice:read", "invoice:write")
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Go(func() {
			if _, err := w.g.Invoke(ctx, tool, agentguard.Call{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := w.as.TokenRequests(grantCC); n != 1 {
		t.Errorf("%d token requests for 200 concurrent calls, want 1", n)
	}
	w.mu.Lock()
	distinct := slices.Compact(slices.Sorted(slices.Values(w.tokens)))
	w.mu.Unlock()
	if len(distinct) != 1 {
		t.Errorf("%d distinct tokens, want 1", len(distinct))
	}
	if n := len(w.rec.Kind(audit.KindCredentialIssue)); n != 1 {
		t.Errorf("%d issue records, want 1", n)
	}
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	if active, _ := w.as.Introspect(t, distinct[0]); active {
		t.Error("lease still active after End")
	}
}

// TestTokenExchangeAsAgent: the agent's JWT-SVID is both its client
// assertion and the subject token: no static secret at all. The token is
// the agent's, for the requested audience, and revoked at the end.
func TestTokenExchangeAsAgent(t *testing.T) {
	w := newWorld(t, func(w *world, cfg oauth.Config) credentials.Provider {
		cfg.Auth = oauth.SVIDAssertion("")
		p, err := oauth.NewTokenExchange(cfg, oauth.AsAgent)
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
	ctx, task, err := w.g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.g.Invoke(ctx, w.tool("invoice:write"), agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	tok := w.token(t)
	active, claims := w.as.Introspect(t, tok)
	if !active || claims["sub"] != w.agent.ID().String() || claims["scope"] != "invoice:write" || !audienceHas(claims, billingAPI) {
		t.Fatalf("introspection = %v; want active, sub %s, scope invoice:write, aud %s", claims, w.agent.ID(), billingAPI)
	}
	if n := w.as.TokenRequests(grantExchange); n != 1 {
		t.Errorf("%d exchanges, want 1", n)
	}
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	if active, _ := w.as.Introspect(t, tok); active {
		t.Error("exchanged token still active after End")
	}
	w.noLeak(t)
}

// TestTokenExchangeOnBehalfOf: the user's token is the subject and the
// agent's JWT-SVID the actor: the issued token is the user's, and names
// the agent in its act claim.
func TestTokenExchangeOnBehalfOf(t *testing.T) {
	w := newWorld(t, func(w *world, cfg oauth.Config) credentials.Provider {
		p, err := oauth.NewTokenExchange(cfg, oauth.OnBehalfOfUser)
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
	user := w.as.UserToken(t, "alice", "invoice:read")
	ctx, task, err := w.g.StartTask(context.Background(), agentguard.TaskSpec{OnBehalfOf: "alice", UserToken: credentials.NewSecret(user)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.g.Invoke(ctx, w.tool("invoice:read"), agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	tok := w.token(t)
	active, claims := w.as.Introspect(t, tok)
	act, _ := claims["act"].(map[string]any)
	if !active || claims["sub"] != "alice" || act["sub"] != w.agent.ID().String() {
		t.Fatalf("introspection = %v; want sub alice acted on by %s", claims, w.agent.ID())
	}
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	if active, _ := w.as.Introspect(t, tok); active {
		t.Error("token still active after End")
	}
	// A task with no user token is refused before any request.
	ctx2, task2, err := w.g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer task2.End(context.Background())
	before := w.as.TokenRequests(grantExchange)
	if _, err := w.g.Invoke(ctx2, w.tool("invoice:read"), agentguard.Call{}); !errors.Is(err, agentguard.ErrCredential) {
		t.Errorf("without a user token: err = %v, want ErrCredential", err)
	}
	if w.as.TokenRequests(grantExchange) != before {
		t.Error("an exchange was attempted without a user token")
	}
	w.mu.Lock()
	w.tokens = append(w.tokens, user)
	w.mu.Unlock()
	w.noLeak(t)
}

// TestRefusals: the server refuses an audience the client may not ask
// for, a scope it may not have, a JWT-SVID addressed to someone else, and
// an expired JWT-SVID; each denies the call with ErrCredential, at once
// (a refusal is not retried).
func TestRefusals(t *testing.T) {
	exchange := func(mutate func(*oauth.Config)) func(*world, oauth.Config) credentials.Provider {
		return func(w *world, cfg oauth.Config) credentials.Provider {
			cfg.Auth = oauth.SVIDAssertion("")
			mutate(&cfg)
			p, err := oauth.NewTokenExchange(cfg, oauth.AsAgent)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	for _, tc := range []struct {
		name     string
		provider func(*world, oauth.Config) credentials.Provider
		aud      string
		scope    string
		code     string
	}{
		{"audience not allowed", exchange(func(*oauth.Config) {}), "https://payroll.example/api", "invoice:read", "invalid_target"},
		{"scope not allowed", exchange(func(*oauth.Config) {}), billingAPI, "payroll:write", "invalid_scope"},
		{"SVID for another audience", exchange(func(c *oauth.Config) { c.SVIDAudience = "https://elsewhere.example" }), billingAPI, "invoice:read", "invalid_client"},
		{"client credentials, scope not allowed", clientCredentials(t), billingAPI, "payroll:write", "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.provider)
			tool := w.tool(tc.scope)
			tool.Credentials[0].Audience = tc.aud
			_, err := w.g.Invoke(context.Background(), tool, agentguard.Call{})
			var oe *oauth.Error
			if !errors.Is(err, agentguard.ErrCredential) || !errors.As(err, &oe) || oe.Code != tc.code {
				t.Fatalf("err = %v, want ErrCredential with OAuth error %s", err, tc.code)
			}
			if credentials.Temporary(err) {
				t.Error("a refusal counted as temporary")
			}
			if n := w.as.TokenRequests(grantCC) + w.as.TokenRequests(grantExchange); n != 1 {
				t.Errorf("%d token requests, want 1 (no retry of a refusal)", n)
			}
			if f := w.rec.Kind(audit.KindCredentialFail); len(f) != 1 || f[0].Credential.Attempts != 1 {
				t.Errorf("fail records = %+v", f)
			}
			w.noLeak(t, err)
		})
	}
}

// TestExpiredSVIDRefused: a JWT-SVID that has expired is refused as a
// client assertion and as a subject token.
func TestExpiredSVIDRefused(t *testing.T) {
	for _, auth := range []oauth.ClientAuth{oauth.SVIDAssertion(""), oauth.ClientSecretBasic(clientID, credentials.NewSecret(clientSecret))} {
		t.Run(auth.String(), func(t *testing.T) {
			w := newWorld(t, func(w *world, cfg oauth.Config) credentials.Provider {
				cfg.Auth = auth
				// Addressed to the issuer URL, the other audience the server
				// accepts, so that expiry is the only fault.
				cfg.SVIDAudience = w.as.Issuer()
				p, err := oauth.NewTokenExchange(cfg, oauth.AsAgent)
				if err != nil {
					t.Fatal(err)
				}
				return p
			})
			w.expired.Store(true)
			_, err := w.g.Invoke(context.Background(), w.tool("invoice:read"), agentguard.Call{})
			var oe *oauth.Error
			// op refuses a bad client assertion as invalid_client, and a
			// subject token it cannot verify as invalid_request.
			want := "invalid_request"
			if auth.String() == oauth.SVIDAssertion("").String() {
				want = "invalid_client"
			}
			if !errors.Is(err, agentguard.ErrCredential) || !errors.As(err, &oe) || oe.Code != want {
				t.Fatalf("err = %v, want the server's refusal %s", err, want)
			}
			// The server names the reason for a client assertion; for a
			// subject token it says only "invalid". The same call with a
			// fresh SVID, below, shows that expiry was the fault.
			if auth.String() == oauth.SVIDAssertion("").String() && !strings.Contains(oe.Description, "expired") {
				t.Errorf("the refusal is not for expiry: %v", err)
			}
			t.Logf("refused: %v", err)
			w.expired.Store(false)
			if _, err := w.g.Invoke(context.Background(), w.tool("invoice:read"), agentguard.Call{}); err != nil {
				t.Fatalf("with a fresh SVID: %v", err)
			}
		})
	}
}

// expiring is the agent's identity, whose JWT-SVIDs are expired ones when
// the test says so.
type expiring struct {
	*identity.DevAgent
	past    *identity.DevAgent
	expired *atomic.Bool
}

func (e *expiring) JWTSVID(ctx context.Context, aud string, extra ...string) (*identity.JWTSVID, error) {
	if e.expired.Load() {
		return e.past.JWTSVID(ctx, aud, extra...)
	}
	return e.DevAgent.JWTSVID(ctx, aud, extra...)
}
