package mcpgoguard_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy"
)

// canary is the credential value the test broker issues: it must never
// reach a model, an audit record or a span.
const canary = "canary-7d1e-secret-value"

// testEnv is a guard for tests with its span recorder.
type testEnv struct {
	*agentguardtest.Env
	spans *tracetest.SpanRecorder
}

func newEnv(t *testing.T, engine policy.Engine, opts ...agentguard.Option) *testEnv {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	opts = append([]agentguard.Option{agentguard.WithTracerProvider(tp)}, opts...)
	return &testEnv{Env: agentguardtest.New(t, engine, canary, opts...), spans: sr}
}

// callSpans counts the ended execute_tool spans of tool.
func (e *testEnv) callSpans(tool string) int {
	n := 0
	for _, s := range e.spans.Ended() {
		if s.Name() == "execute_tool "+tool {
			n++
		}
	}
	return n
}

// callRecords returns the tool_call audit records of tool.
func (e *testEnv) callRecords(tool string) []audit.Event {
	var out []audit.Event
	for _, ev := range e.Audit.Kind(audit.KindToolCall) {
		if ev.Tool == tool {
			out = append(out, ev)
		}
	}
	return out
}

// noCanary fails the test if the canary appears in any audit record or
// span the guard produced.
func (e *testEnv) noCanary(t *testing.T) {
	t.Helper()
	for _, ev := range e.Audit.Events() {
		b, _ := json.Marshal(ev)
		if strings.Contains(string(b), canary) {
			t.Errorf("audit record holds the credential: %s", b)
		}
	}
	for _, s := range e.spans.Ended() {
		var all []string
		all = append(all, s.Name(), s.Status().Description)
		for _, a := range s.Attributes() {
			all = append(all, a.Value.Emit())
		}
		for _, ev := range s.Events() {
			all = append(all, ev.Name)
			for _, a := range ev.Attributes {
				all = append(all, a.Value.Emit())
			}
		}
		if strings.Contains(strings.Join(all, "\x00"), canary) {
			t.Errorf("span %q holds the credential", s.Name())
		}
	}
}

// text returns the text content of a tool result.
func text(r *mcp.CallToolResult) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// counter counts a tool's runs and remembers what its last run saw.
type counter struct {
	n      atomic.Int32
	mu     sync.Mutex
	secret string
	args   map[string]any
}

func (c *counter) ran(ctx context.Context, args map[string]any) {
	c.n.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.args = args
	if cred, ok := credentials.FromContext(ctx, "api"); ok {
		c.secret = cred.Secret.Reveal()
	}
}

func (c *counter) seen() (string, map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.secret, c.args
}

// apiCredential declares the test broker's credential on every tool.
func apiCredential(t *agentguard.Tool) {
	t.Credentials = []credentials.Requirement{{Name: "api", Provider: agentguardtest.StaticProvider}}
}

// within waits for ch, failing the test after a generous bound: the
// events waited for are delivered asynchronously by mcp-go.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not happen", what)
	}
}
