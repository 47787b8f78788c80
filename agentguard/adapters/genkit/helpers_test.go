package genkitguard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/firebase/genkit/go/ai"
	"github.com/firebase/genkit/go/genkit"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy"
)

// canary is the credential value the test broker issues: it must never
// reach the model, an error, an audit record or a span.
const canary = "canary-5d1e0a7c-token"

// newGenkit returns a genkit instance with no plugins (no network). The
// goroutine genkit.Init starts stops when the test ends.
func newGenkit(t *testing.T) *genkit.Genkit {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return genkit.Init(ctx)
}

// turn is one scripted answer of the model to the request it got.
type turn func(req *ai.ModelRequest) *ai.ModelResponse

// model is a scripted model: it answers its n-th request with its n-th
// turn, and keeps every request, which is all the model ever sees.
type model struct {
	mu       sync.Mutex
	turns    []turn
	requests []*ai.ModelRequest
}

// define registers m in g as "test/scripted".
func (m *model) define(g *genkit.Genkit) ai.Model {
	return genkit.DefineModelAction(g, "test/scripted",
		&ai.ModelOptions{Supports: &ai.ModelSupports{Multiturn: true, Tools: true, SystemRole: true}},
		func(_ context.Context, req *ai.ModelRequest, _ any, _ ai.ModelStreamCallback) (*ai.ModelResponse, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.requests = append(m.requests, req)
			n := len(m.requests) - 1
			if n >= len(m.turns) {
				return nil, fmt.Errorf("scripted model: no turn %d", n)
			}
			resp := m.turns[n](req)
			// As genkit's model plugins do: it makes resp.History() the
			// whole conversation.
			resp.Request = req
			return resp, nil
		})
}

// seen returns the requests the model got.
func (m *model) seen() []*ai.ModelRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*ai.ModelRequest(nil), m.requests...)
}

// transcript is everything the model saw, as JSON.
func (m *model) transcript(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(m.seen())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// callTools is a turn that asks for the given tool calls.
func callTools(reqs ...*ai.ToolRequest) turn {
	return func(*ai.ModelRequest) *ai.ModelResponse {
		parts := make([]*ai.Part, len(reqs))
		for i, r := range reqs {
			c := *r
			parts[i] = ai.NewToolRequestPart(&c)
		}
		return &ai.ModelResponse{Message: &ai.Message{Role: ai.RoleModel, Content: parts}, FinishReason: ai.FinishReasonStop}
	}
}

// answer is a turn that ends the generation with a text.
func answer(text string) turn {
	return func(*ai.ModelRequest) *ai.ModelResponse {
		return &ai.ModelResponse{Message: ai.NewModelTextMessage(text), FinishReason: ai.FinishReasonStop}
	}
}

// toolResponses returns the tool responses of the last message of req, by ref.
func toolResponses(req *ai.ModelRequest) map[string]*ai.Part {
	out := map[string]*ai.Part{}
	if len(req.Messages) == 0 {
		return out
	}
	for _, p := range req.Messages[len(req.Messages)-1].Content {
		if p.IsToolResponse() {
			out[p.ToolResponse.Ref] = p
		}
	}
	return out
}

// denialText returns the error text a denied call's tool response holds.
func denialText(t *testing.T, p *ai.Part) string {
	t.Helper()
	if p == nil {
		t.Fatal("no tool response")
	}
	out, ok := p.ToolResponse.Output.(map[string]any)
	if !ok {
		t.Fatalf("tool response output %#v, want {\"error\": ...}", p.ToolResponse.Output)
	}
	s, _ := out["error"].(string)
	if s == "" {
		t.Fatalf("tool response output %#v, want {\"error\": ...}", out)
	}
	return s
}

// orderIn is the input of the order tools.
type orderIn struct {
	Order  string `json:"order"`
	Amount int    `json:"amount,omitempty"`
}

// probe counts a tool's runs and what it saw.
type probe struct {
	runs   atomic.Int64
	mu     sync.Mutex
	secret string
	inputs []orderIn
}

func (p *probe) saw(ctx context.Context, in orderIn, cred string) {
	p.runs.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inputs = append(p.inputs, in)
	if c, ok := credentials.FromContext(ctx, cred); ok {
		p.secret = c.Secret.Reveal()
	}
}

func (p *probe) seenSecret() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.secret
}

// defineOrderTool defines a tool that records its runs in p and answers
// with result.
func defineOrderTool(g *genkit.Genkit, name, description string, p *probe, result map[string]any) ai.Tool {
	return genkit.DefineTool(g, name, description, func(tc *ai.ToolContext, in orderIn) (map[string]any, error) {
		p.saw(tc, in, "orders")
		return result, nil
	})
}

// ordersCredential is the credential the order tools declare.
var ordersCredential = credentials.Requirement{Name: "orders", Provider: agentguardtest.StaticProvider, Audience: "orders-api"}

// env is a guard for one test, with its recorders.
type env struct {
	*agentguardtest.Env
	spans *tracetest.SpanRecorder
}

func newEnv(t *testing.T, engine policy.Engine, opts ...agentguard.Option) *env {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	opts = append([]agentguard.Option{agentguard.WithTracerProvider(tp)}, opts...)
	return &env{Env: agentguardtest.New(t, engine, canary, opts...), spans: spans}
}

// toolSpans returns the ended execute_tool spans.
func (e *env) toolSpans() []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range e.spans.Ended() {
		if strings.HasPrefix(s.Name(), "execute_tool ") {
			out = append(out, s)
		}
	}
	return out
}

// calls returns the audit records of tool calls.
func (e *env) calls() []audit.Event { return e.Audit.Kind(audit.KindToolCall) }

// expectOnePerCall checks that each call ID has exactly one execute_tool
// span and one tool-call record, and that there are n calls.
func (e *env) expectOnePerCall(t *testing.T, n int) {
	t.Helper()
	recs := e.calls()
	spans := e.toolSpans()
	if len(recs) != n || len(spans) != n {
		t.Fatalf("%d records and %d spans, want %d of each:\n%s", len(recs), len(spans), n, audittest.List(recs))
	}
	ids := map[string]int{}
	for _, r := range recs {
		ids[r.CallID]++
	}
	for _, s := range spans {
		for _, a := range s.Attributes() {
			if a.Key == "gen_ai.tool.call.id" {
				ids[a.Value.AsString()] += 10
			}
		}
	}
	for id, v := range ids {
		if v != 11 {
			t.Errorf("call %q: %d records and %d spans, want one of each", id, v%10, v/10)
		}
	}
}

// expectNoCanary checks that the credential's value is in none of the
// spans (names, attributes, events, status) nor the audit records.
func (e *env) expectNoCanary(t *testing.T) {
	t.Helper()
	audittest.ExpectNoSecret(t, e.Audit.Events(), canary)
	for _, s := range e.spans.Ended() {
		var b strings.Builder
		fmt.Fprint(&b, s.Name(), s.Status().Description)
		for _, a := range s.Attributes() {
			fmt.Fprint(&b, a.Key, a.Value.Emit())
		}
		for _, ev := range s.Events() {
			fmt.Fprint(&b, ev.Name)
			for _, a := range ev.Attributes {
				fmt.Fprint(&b, a.Key, a.Value.Emit())
			}
		}
		if strings.Contains(b.String(), canary) {
			t.Errorf("span %q holds the credential", s.Name())
		}
	}
}
