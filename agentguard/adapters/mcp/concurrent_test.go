package mcpguard_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentguard/go-sdk/audit"
)

// TestConcurrentCalls runs calls at once through a guarded session and a
// guarded server (for the race detector), each recorded once.
func TestConcurrentCalls(t *testing.T) {
	const n = 8
	ctx := testContext(t)
	t.Run("session", func(t *testing.T) {
		f := newClientFixture(t, ctx)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				res, err := f.session.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": fmt.Sprint(i)}})
				if err == nil && text(res) != fmt.Sprintf("echo: %d", i) {
					err = fmt.Errorf("call %d got %q", i, text(res))
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if got := len(f.env.toolCalls("echo")); got != n || f.env.executeSpans("echo") != n || f.server.count("echo") != n {
			t.Errorf("records %d, spans %d, runs %d; want %d each", got, f.env.executeSpans("echo"), f.server.count("echo"), n)
		}
	})
	t.Run("server", func(t *testing.T) {
		f := newServerFixture(t, ctx, serverSetup{caller: true})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				res, err := f.client.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": fmt.Sprint(i)}})
				if err != nil || res.IsError {
					t.Errorf("call %d: %v %q", i, err, text(res))
				}
			})
		}
		wg.Wait()
		ok := 0
		for _, ev := range f.env.toolCalls("echo") {
			if ev.Outcome == audit.OutcomeOK {
				ok++
			}
		}
		if ok != n || f.env.executeSpans("echo") != n || f.server.count("echo") != n {
			t.Errorf("ok records %d, spans %d, runs %d; want %d each", ok, f.env.executeSpans("echo"), f.server.count("echo"), n)
		}
	})
}
