package agentguard

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// TestPromptShortcutCannotRollBack: Prompt.Change to a text pinned already
// (approved through another Prompt) puts it in force only if it is still
// pinned when it does: a newer approved pin that lands in between is not
// overwritten with the older text.
func TestPromptShortcutCannotRollBack(t *testing.T) {
	g, err := New(
		WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/a"))),
		WithPolicy(policytest.AllowAll()),
		WithAudit(audittest.NewRecorder()),
		WithApprover(ApproverFunc(func(_ context.Context, r *ApprovalRequest) (Approval, error) {
			if r.Fingerprint == promptDigest("v2") {
				return r.Refuse("v2 is withdrawn", "bob"), nil
			}
			return r.Grant("alice"), nil
		})),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	ctx := context.Background()
	p1, err := g.Prompt(ctx, "system", "v1")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := g.Prompt(ctx, "system", "v1")
	if err != nil {
		t.Fatal(err)
	}
	g.Lock().PinPrompt("system", "v2") // approved elsewhere

	// p2 finds v2 pinned and goes to put it in force; hold it there while
	// v3 is approved.
	p2.mu.Lock()
	done := make(chan error, 1)
	go func() { done <- p2.Change(ctx, "v2") }()
	time.Sleep(50 * time.Millisecond)
	if err := p1.Change(ctx, "v3"); err != nil {
		p2.mu.Unlock()
		t.Fatal(err)
	}
	p2.mu.Unlock()
	err = <-done
	if d, _ := g.Lock().Prompt("system"); d != promptDigest("v3") {
		t.Fatalf("pin = %s, want v3's %s: the newer pin was rolled back (Change: %v)", d, promptDigest("v3"), err)
	}
	var ce *ChangeError
	if !errors.As(err, &ce) || p2.Text() != "v1" {
		t.Errorf("Change to a text no longer pinned: %v, text %q; want a refused review and v1 in force", err, p2.Text())
	}
}
