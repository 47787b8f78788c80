package agentguard_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// agentBoundProvider issues a token bound to the requesting agent (as token
// exchange with an actor claim would), and remembers whom each lease is for.
type agentBoundProvider struct{ forAgent sync.Map }

func (p *agentBoundProvider) Issue(_ context.Context, r credentials.Request) (*credentials.Credential, error) {
	c := &credentials.Credential{Secret: credentials.NewSecret("token-for-" + r.Agent),
		LeaseID: credentials.NewLeaseID(), ExpiresAt: time.Now().Add(time.Hour)}
	p.forAgent.Store(c.LeaseID, r.Agent)
	return c, nil
}
func (p *agentBoundProvider) Revoke(context.Context, *credentials.Credential) error { return nil }

type actingAs struct{}

// TestSubAgentGetsItsOwnLease: in a task handed down to a
// sub-agent, the sub-agent's tool never receives the credential issued to
// its (more privileged) parent.
func TestSubAgentGetsItsOwnLease(t *testing.T) {
	root := identity.MustParse("spiffe://example.org/agent/planner")
	sub := identity.MustParse("spiffe://example.org/agent/web-researcher", root.ID.String())
	p := &agentBoundProvider{}
	g, err := agentguard.New(
		agentguard.WithIdentity(identity.SourceFunc(func(ctx context.Context) (identity.Identity, error) {
			if id, ok := ctx.Value(actingAs{}).(identity.Identity); ok {
				return id, nil
			}
			return root, nil
		})),
		agentguard.WithPolicy(policytest.AllowAll()),
		agentguard.WithAudit(audittest.NewRecorder()),
		agentguard.WithBroker(credentials.NewBroker(credentials.WithProvider("p", p))),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	var got []string
	tool := &agentguard.Tool{Name: "api",
		Credentials: []credentials.Requirement{{Name: "token", Provider: "p", Audience: "api"}},
		Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
			c, _ := credentials.FromContext(ctx, "token")
			a, _ := p.forAgent.Load(c.LeaseID)
			got = append(got, a.(string))
			return &agentguard.Result{}, nil
		}}
	ctx, task, err := g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	if _, err := g.Invoke(ctx, tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Invoke(context.WithValue(ctx, actingAs{}, sub), tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	if got[1] != sub.ID.String() {
		t.Fatalf("sub-agent %s received a credential issued to %s", sub.ID, got[1])
	}
}
