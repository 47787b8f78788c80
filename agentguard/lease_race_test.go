package agentguard_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// TestLeaseRevokedWhenTaskEndsWhileLeasing: the task ends (forced here at the
// racy instant: after the call marked the task leased and before its first
// Lease) and a later requirement of the same call fails. The lease issued
// after End's revocation is revoked all the same.
func TestLeaseRevokedWhenTaskEndsWhileLeasing(t *testing.T) {
	// A provider that mints tokens locally (say, signs a JWT) and so does no
	// I/O and never looks at ctx.
	p := &localSigner{}
	inner := credentials.NewBroker(credentials.WithProvider("p", p))
	var once sync.Once
	var leased []string
	var mu sync.Mutex
	b := brokerFunc{
		lease: func(ctx context.Context, r credentials.Request) (*credentials.Credential, error) {
			once.Do(func() {
				task, _ := agentguard.TaskFromContext(ctx)
				_ = task.End(context.Background()) // End wins the race
			})
			// The broker refuses a cancelled context; this stands for an
			// End that came just after that check.
			c, err := inner.Lease(context.WithoutCancel(ctx), r)
			if err == nil {
				mu.Lock()
				leased = append(leased, c.LeaseID)
				mu.Unlock()
			}
			return c, err
		},
		revoke: inner.Revoke,
	}
	g, err := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/a"))),
		agentguard.WithPolicy(policytest.AllowAll()),
		agentguard.WithAudit(audittest.NewRecorder()),
		agentguard.WithBroker(b),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	var runs atomicCounter
	tool := counted("api", &runs.n)
	tool.Credentials = []credentials.Requirement{
		{Name: "a", Provider: "p", Audience: "a"},
		{Name: "b", Provider: "missing"},
	}
	ctx, _, err := g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Invoke(ctx, tool, agentguard.Call{}); !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("err = %v", err)
	}
	_ = g.Close(context.Background())
	for _, id := range leased {
		if !p.revoked(id) {
			t.Errorf("lease %s still valid after its task ended and the guard closed", id)
		}
	}
	if len(leased) == 0 {
		t.Fatal("no lease issued: test proves nothing")
	}
}

type atomicCounter struct{ n atomic.Int64 }

type localSigner struct{ done sync.Map }

func (s *localSigner) Issue(_ context.Context, r credentials.Request) (*credentials.Credential, error) {
	return &credentials.Credential{Secret: credentials.NewSecret("jwt"), ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (s *localSigner) Revoke(_ context.Context, c *credentials.Credential) error {
	s.done.Store(c.LeaseID, true)
	return nil
}

func (s *localSigner) revoked(id string) bool { _, ok := s.done.Load(id); return ok }
