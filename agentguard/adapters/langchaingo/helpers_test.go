package langchainguard_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tmc/langchaingo/llms"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy"
)

// canary is the credential value the test broker issues: it must never
// reach the model, the run's output, audit records or spans.
const canary = "canary-7f3a9c0e5b1d"

// orders is the credential the lookup tool declares.
var orders = credentials.Requirement{Name: "orders", Provider: agentguardtest.StaticProvider, Audience: "orders-api"}

// scriptedModel is an llms.Model that answers with a script and records
// what it was asked: the real agents parse its answers, and the real
// executor dispatches the tool calls they hold.
type scriptedModel struct {
	mu      sync.Mutex
	replies []*llms.ContentResponse
	// prompts is the text of each request: messages, tool calls and tool
	// results.
	prompts []string
	// functions are the function names declared with each request.
	functions [][]string
}

// text is a reply in the text format of the one-shot (MRKL) agent.
func text(s string) *llms.ContentResponse {
	return &llms.ContentResponse{Choices: []*llms.ContentChoice{{Content: s}}}
}

// action is a one-shot agent's reply that calls tool with input.
func action(tool, input string) *llms.ContentResponse {
	return text(fmt.Sprintf("Thought: I should use %s.\nAction: %s\nAction Input: %s", tool, tool, input))
}

// toolCall is a function-calling model's reply that calls tool.
func toolCall(id, tool, args string) *llms.ContentResponse {
	return &llms.ContentResponse{Choices: []*llms.ContentChoice{{ToolCalls: []llms.ToolCall{{
		ID: id, Type: "function", FunctionCall: &llms.FunctionCall{Name: tool, Arguments: args},
	}}}}}
}

func newModel(replies ...*llms.ContentResponse) *scriptedModel {
	return &scriptedModel{replies: replies}
}

func (m *scriptedModel) GenerateContent(_ context.Context, msgs []llms.MessageContent, opts ...llms.CallOption) (*llms.ContentResponse, error) {
	var o llms.CallOptions
	for _, opt := range opts {
		opt(&o)
	}
	var b strings.Builder
	for _, msg := range msgs {
		for _, p := range msg.Parts {
			switch p := p.(type) {
			case llms.TextContent:
				b.WriteString(p.Text)
			case llms.ToolCall:
				fmt.Fprintf(&b, "[tool call %s %s %s]", p.ID, p.FunctionCall.Name, p.FunctionCall.Arguments)
			case llms.ToolCallResponse:
				fmt.Fprintf(&b, "[tool result %s %s]", p.ToolCallID, p.Content)
			}
			b.WriteString("\n")
		}
	}
	var fns []string
	for _, f := range o.Functions {
		fns = append(fns, f.Name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prompts = append(m.prompts, b.String())
	m.functions = append(m.functions, fns)
	if len(m.replies) == 0 {
		return nil, errors.New("scripted model: script exhausted")
	}
	r := m.replies[0]
	m.replies = m.replies[1:]
	return r, nil
}

func (m *scriptedModel) Call(ctx context.Context, prompt string, opts ...llms.CallOption) (string, error) {
	return llms.GenerateFromSinglePrompt(ctx, m, prompt, opts...)
}

// Prompts returns the text of each request so far.
func (m *scriptedModel) Prompts() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.prompts...)
}

// Functions returns the function names declared with each request.
func (m *scriptedModel) Functions() [][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]string(nil), m.functions...)
}

// fakeTool is a langchaingo tool that counts its calls and checks that it
// runs with the task's credential when it declares one.
type fakeTool struct {
	name, desc string
	cred       string // the credential it expects, if any
	run        func(ctx context.Context, input string) (string, error)

	mu     sync.Mutex
	inputs []string
	// credOK counts the calls that found the canary credential.
	credOK int
}

func (f *fakeTool) Name() string        { return f.name }
func (f *fakeTool) Description() string { return f.desc }

func (f *fakeTool) Call(ctx context.Context, input string) (string, error) {
	f.mu.Lock()
	f.inputs = append(f.inputs, input)
	if f.cred != "" {
		if c, ok := credentials.FromContext(ctx, f.cred); ok && c.Secret.Reveal() == canary {
			f.credOK++
		}
	}
	f.mu.Unlock()
	if f.run != nil {
		return f.run(ctx, input)
	}
	return f.name + " done: " + input, nil
}

// Inputs returns the inputs of the tool's calls.
func (f *fakeTool) Inputs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.inputs...)
}

// CredOK returns how many calls found the canary credential.
func (f *fakeTool) CredOK() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.credOK
}

// env is a test guard with a span recorder.
type env struct {
	*agentguardtest.Env
	spans *tracetest.SpanRecorder
}

func newEnv(t *testing.T, engine policy.Engine, opts ...agentguard.Option) *env {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	opts = append([]agentguard.Option{agentguard.WithTracerProvider(tp)}, opts...)
	return &env{Env: agentguardtest.New(t, engine, canary, opts...), spans: sr}
}

// task starts a task that ends with the test.
func (e *env) task(t *testing.T) context.Context {
	t.Helper()
	ctx, task, err := e.Guard.StartTask(context.Background(), agentguard.TaskSpec{Purpose: "langchaingo test"})
	if err != nil {
		t.Fatalf("StartTask: %v", err)
	}
	t.Cleanup(func() { _ = task.End(context.Background()) })
	return ctx
}

// toolCalls returns the audit records of tool calls.
func (e *env) toolCalls() []audit.Event { return e.Audit.Kind(audit.KindToolCall) }

// executeSpans counts the ended spans "execute_tool <tool>", by tool.
func (e *env) executeSpans() map[string]int {
	n := map[string]int{}
	for _, s := range e.spans.Ended() {
		if tool, ok := strings.CutPrefix(s.Name(), "execute_tool "); ok {
			n[tool]++
		}
	}
	return n
}

// expectNoCanaryInSpans fails if a span's name, attributes, events or
// status hold the canary.
func (e *env) expectNoCanaryInSpans(t *testing.T) {
	t.Helper()
	for _, s := range e.spans.Ended() {
		text := fmt.Sprint(s.Name(), s.Attributes(), s.Events(), s.Status())
		if strings.Contains(text, canary) {
			t.Errorf("span %q holds the credential value", s.Name())
		}
	}
}

// expectNoCanary fails if any of texts holds the canary.
func expectNoCanary(t *testing.T, what string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, canary) {
			t.Errorf("%s holds the credential value: %q", what, s)
		}
	}
}
