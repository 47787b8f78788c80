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

// pairRevoker's revocations complete only once two are in flight at once.
type pairRevoker struct {
	mu       sync.Mutex
	inFlight int
	both     chan struct{}
	once     sync.Once
}

func (p *pairRevoker) Issue(context.Context, credentials.Request) (*credentials.Credential, error) {
	return &credentials.Credential{Secret: credentials.NewSecret("tok"), ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (p *pairRevoker) Revoke(ctx context.Context, _ *credentials.Credential) error {
	p.mu.Lock()
	p.inFlight++
	if p.inFlight == 2 {
		p.once.Do(func() { close(p.both) })
	}
	p.mu.Unlock()
	select {
	case <-p.both:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestCloseEndsTasksTogether: Close ends the open tasks concurrently: here
// each task's revocation completes only while the other's is under way.
func TestCloseEndsTasksTogether(t *testing.T) {
	p := &pairRevoker{both: make(chan struct{})}
	g, err := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/a"))),
		agentguard.WithPolicy(policytest.AllowAll()),
		agentguard.WithAudit(audittest.NewRecorder()),
		agentguard.WithBroker(credentials.NewBroker(credentials.WithProvider("p", p), credentials.WithRetry(1, 0))),
		agentguard.WithEndTimeout(5*time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	tool := &agentguard.Tool{Name: "t", Credentials: []credentials.Requirement{{Name: "c", Provider: "p"}},
		Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) { return &agentguard.Result{}, nil }}
	for range 2 {
		ctx, _, err := g.StartTask(context.Background(), agentguard.TaskSpec{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Invoke(ctx, tool, agentguard.Call{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v (tasks ended one after another?)", err)
	}
}
