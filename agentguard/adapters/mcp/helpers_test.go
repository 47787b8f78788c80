package mcpguard_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/adapters/mcp"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy"
)

// canary is the credential value the test broker issues: it must never
// show up anywhere but in the tool's context.
const canary = "canary-9f2c41d7e3b8"

// testTimeout bounds each test's MCP exchanges.
const testTimeout = 30 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// env is a guard for tests with its span recorder.
type env struct {
	*agentguardtest.Env
	spans *tracetest.SpanRecorder
}

func newEnv(t *testing.T, engine policy.Engine, opts ...agentguard.Option) *env {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e := agentguardtest.New(t, engine, canary, append([]agentguard.Option{agentguard.WithTracerProvider(tp)}, opts...)...)
	return &env{Env: e, spans: sr}
}

// executeSpans counts the ended spans "execute_tool <tool>".
func (e *env) executeSpans(tool string) int {
	n := 0
	for _, s := range e.spans.Ended() {
		if s.Name() == "execute_tool "+tool {
			n++
		}
	}
	return n
}

// toolCalls returns the tool_call audit records of tool.
func (e *env) toolCalls(tool string) []audit.Event {
	var out []audit.Event
	for _, ev := range e.Audit.Kind(audit.KindToolCall) {
		if ev.Tool == tool {
			out = append(out, ev)
		}
	}
	return out
}

// expectOneCall checks that tool's call left exactly one span and one
// tool_call record, which w describes.
func (e *env) expectOneCall(t *testing.T, tool string, w audittest.Want) audit.Event {
	t.Helper()
	if n := e.executeSpans(tool); n != 1 {
		t.Errorf("execute_tool %s spans = %d, want 1", tool, n)
	}
	w.Kind, w.Tool = audit.KindToolCall, tool
	evs := audittest.ExpectCount(t, e.toolCalls(tool), w, 1)
	if len(e.toolCalls(tool)) != 1 {
		t.Errorf("tool_call records of %s:\n%s", tool, audittest.List(e.toolCalls(tool)))
	}
	if len(evs) == 0 {
		return audit.Event{}
	}
	return evs[0]
}

// expectNoCanary checks that the credential value is in no audit record
// and no span attribute or event.
func (e *env) expectNoCanary(t *testing.T) {
	t.Helper()
	audittest.ExpectNoSecret(t, e.Audit.Events(), canary)
	for _, s := range e.spans.Ended() {
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.Emit(), canary) {
				t.Errorf("span %s attribute %s holds the credential", s.Name(), kv.Key)
			}
		}
		for _, ev := range s.Events() {
			for _, kv := range ev.Attributes {
				if strings.Contains(kv.Value.Emit(), canary) {
					t.Errorf("span %s event %s holds the credential", s.Name(), ev.Name)
				}
			}
		}
		if strings.Contains(s.Status().Description, canary) {
			t.Errorf("span %s status holds the credential", s.Name())
		}
	}
}

// apiCredential is the credential the tests' tools declare.
var apiCredential = credentials.Requirement{Name: "api", Provider: agentguardtest.StaticProvider, Audience: "files"}

// withCredential gives every tool the api credential.
func withCredential(t *agentguard.Tool) {
	t.Credentials = []credentials.Requirement{apiCredential}
}

// toolServer is a real MCP server whose tools count their calls.
type toolServer struct {
	*mcp.Server
	mu    sync.Mutex
	calls map[string]int
	// seen is the credential each call's context held, if any.
	seen []string
	// failList makes tools/list fail; dupList makes it list echo twice,
	// with two descriptions.
	failList atomic.Bool
	dupList  atomic.Bool
}

func (s *toolServer) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[name]
}

func (s *toolServer) credentials() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

var textSchema = json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}`)

func ptr[T any](v T) *T { return &v }

// newToolServer returns a server named "files" with three tools: echo
// (read-only, closed world), delete_file (no annotations: destructive and
// open-world by MCP's defaults) and fail (reports an error that holds the
// credential value, as a careless tool might).
func newToolServer() *toolServer {
	s := &toolServer{Server: mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1.0.0"}, nil), calls: map[string]int{}}
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" && s.failList.Load() {
				return nil, &jsonrpcError{"listing is down"}
			}
			res, err := next(ctx, method, req)
			if lr, ok := res.(*mcp.ListToolsResult); ok && s.dupList.Load() {
				for _, t := range lr.Tools {
					if t.Name == "echo" {
						twin := *t
						twin.Description = "Echoes, and more."
						lr.Tools = append(lr.Tools, &twin)
						break
					}
				}
			}
			return res, err
		}
	})
	s.AddTool(&mcp.Tool{
		Name: "echo", Title: "Echo", Description: "Echoes its text.", InputSchema: textSchema,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)},
	}, s.handler("echo", func(args map[string]any) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "echo: " + args["text"].(string)}}}
	}))
	s.AddTool(&mcp.Tool{
		Name: "delete_file", Description: "Deletes a file.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}}}`),
	}, s.handler("delete_file", func(map[string]any) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted"}}}
	}))
	s.AddTool(&mcp.Tool{
		Name: "fail", Description: "Always fails.", InputSchema: json.RawMessage(`{"type":"object"}`),
	}, s.handler("fail", func(map[string]any) *mcp.CallToolResult {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "backend refused token " + canary}}}
	}))
	return s
}

// handler counts the calls of name, records the credential its context
// holds, and answers with f.
func (s *toolServer) handler(name string, f func(args map[string]any) *mcp.CallToolResult) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		s.mu.Lock()
		s.calls[name]++
		if c, ok := credentials.FromContext(ctx, apiCredential.Name); ok {
			s.seen = append(s.seen, c.Secret.Reveal())
		}
		s.mu.Unlock()
		args := map[string]any{}
		if len(req.Params.Arguments) > 0 {
			if err := json.Unmarshal(req.Params.Arguments, &args); err != nil {
				return nil, err
			}
		}
		return f(args), nil
	}
}

// jsonrpcError is an error a middleware returns.
type jsonrpcError struct{ msg string }

func (e *jsonrpcError) Error() string { return e.msg }

// text is the text of a result's contents.
func text(res *mcp.CallToolResult) string {
	if res == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

// connect connects client to server over the SDK's in-memory transport.
func connect(t *testing.T, ctx context.Context, server *mcp.Server, client *mcp.Client, opts *mcp.ClientSessionOptions) *mcp.ClientSession {
	t.Helper()
	return connectAs(t, ctx, server, client, opts, spiffeid.ID{})
}

// connectAs connects client to server over the SDK's in-memory transport,
// as the agent caller (mcpguard.CallerTransport) unless it is zero.
func connectAs(t *testing.T, ctx context.Context, server *mcp.Server, client *mcp.Client, opts *mcp.ClientSessionOptions, caller spiffeid.ID) *mcp.ClientSession {
	t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	var serverSide mcp.Transport = st
	if !caller.IsZero() {
		serverSide = mcpguard.CallerTransport(st, caller)
	}
	ss, err := server.Connect(ctx, serverSide, nil)
	if err != nil {
		t.Fatalf("server connect: %v", err)
	}
	cs, err := client.Connect(ctx, ct, opts)
	if err != nil {
		t.Fatalf("client connect: %v", err)
	}
	t.Cleanup(func() {
		_ = cs.Close()
		_ = ss.Wait()
	})
	return cs
}

// timeFarAhead is an expiry no test reaches.
var timeFarAhead = time.Now().Add(24 * time.Hour)
