package mcpguard

import (
	"context"
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// clientSession connects a client to a server with one tool over the
// in-memory transport.
func clientSession(t *testing.T, ctx context.Context) *mcp.ClientSession {
	t.Helper()
	server := mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)
	server.AddTool(&mcp.Tool{Name: "echo", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	ct, st := mcp.NewInMemoryTransports()
	ss, err := server.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.Close()
		_ = ss.Wait()
	})
	return cs
}

// TestWatchTable: each Session of a client session is watched until it is
// closed, dropped (freed by the garbage collector) or fails to start.
func TestWatchTable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := agentguardtest.New(t, policytest.AllowAll(), "canary")
	cs := clientSession(t, ctx)

	a, err := NewSession(ctx, env.Guard, cs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSession(ctx, env.Guard, cs, WithToolset("other"))
	if err != nil {
		t.Fatal(err)
	}
	if got := watchers(cs); len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("watchers = %v, want both sessions", got)
	}
	if !inTable(cs) {
		t.Error("the client session is not in the table")
	}
	unwatch(cs, b) // as b.Close does, without closing cs
	if got := watchers(cs); len(got) != 1 || got[0] != a {
		t.Fatalf("watchers after b left = %v, want a", got)
	}

	// A Session dropped without Close leaves the table once freed.
	a = nil
	b = nil
	dropSession(t, ctx, env, cs)
	for i := 0; i < 20 && len(watchers(cs)) > 0; i++ {
		runtime.GC()
	}
	if got := watchers(cs); len(got) != 0 {
		t.Fatalf("watchers after the sessions were dropped = %d", len(got))
	}
	if inTable(cs) {
		t.Error("the client session of dropped sessions is still in the table")
	}

	// A NewSession that fails watches nothing.
	failing := clientSession(t, ctx)
	_ = failing.Close()
	if s, err := NewSession(ctx, env.Guard, failing, WithToolset("files")); err == nil || s != nil {
		t.Fatalf("NewSession on a closed client session = %v, %v", s, err)
	}
	if inTable(failing) {
		t.Error("a failed NewSession left its client session in the table")
	}
}

// dropSession makes a Session of cs and drops it without closing it.
//
//go:noinline
func dropSession(t *testing.T, ctx context.Context, env *agentguardtest.Env, cs *mcp.ClientSession) {
	if _, err := NewSession(ctx, env.Guard, cs, WithToolset("dropped")); err != nil {
		t.Fatal(err)
	}
}
