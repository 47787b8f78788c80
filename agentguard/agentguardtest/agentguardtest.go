// Package agentguardtest builds guards for unit tests: a fixed agent
// identity, a fake policy, a static credential provider and an in-memory
// audit recorder, with no server anywhere.
package agentguardtest

import (
	"context"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// AgentID is the SPIFFE ID of the test agent.
const AgentID = "spiffe://example.org/agent/test"

// StaticProvider is the provider name under which the test broker issues
// credentials; tools declare it in their credentials.Requirement.
const StaticProvider = "static"

// Env is what New built, for assertions.
type Env struct {
	Guard    *agentguard.Guard
	Audit    *audittest.Recorder
	Provider *credentials.StaticProvider
	Broker   *credentials.Broker
}

// New returns a guard for tests: the identity AgentID, the given policy
// engine (policytest.AllowAll if nil), a broker whose "static" provider
// issues secretValue, and an audit recorder. opts are applied last and may
// replace any of these. The guard is closed when the test ends.
func New(t testing.TB, engine policy.Engine, secretValue string, opts ...agentguard.Option) *Env {
	t.Helper()
	if engine == nil {
		engine = policytest.AllowAll()
	}
	env := &Env{
		Audit:    audittest.NewRecorder(),
		Provider: credentials.NewStaticProvider(secretValue),
	}
	env.Broker = credentials.NewBroker(credentials.WithProvider(StaticProvider, env.Provider))
	all := append([]agentguard.Option{
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(AgentID))),
		agentguard.WithPolicy(engine),
		agentguard.WithBroker(env.Broker),
		agentguard.WithAudit(env.Audit),
	}, opts...)
	g, err := agentguard.New(all...)
	if err != nil {
		t.Fatalf("agentguardtest: %v", err)
	}
	env.Guard = g
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Close(ctx); err != nil {
			t.Errorf("agentguardtest: closing guard: %v", err)
		}
	})
	return env
}
