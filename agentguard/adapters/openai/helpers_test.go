package openaiguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	openaiguard "github.com/agentguard/go-sdk/agentguard/adapters/openai"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// canary is the credential value the test broker issues: it must never
// reach the model, the audit records or the spans.
const canary = "canary-7f3a9c-secret"

// fixture is a guarded registry of the helpdesk tools, with everything a
// test asserts on.
type fixture struct {
	env      *agentguardtest.Env
	engine   *policytest.Rules
	spans    *tracetest.SpanRecorder
	deferred *approval.Deferred
	reg      *agentguard.Registry
	ctx      context.Context

	mu    sync.Mutex
	ran   map[string]int
	order []string
	// sawCredential counts calls whose tool found the task's credential.
	sawCredential atomic.Int32
}

// policyRules: read_ticket and fail_tool are allowed; issue_refund needs a
// supervisor's approval; delete_account is listed but refused for the
// admin account; export_data has no permit, so it is hidden and refused.
func policyRules() *policytest.Rules {
	return policytest.NewRules(
		policytest.Rule{ID: "read-tickets", Effect: policytest.Allow, Tool: "read_ticket"},
		policytest.Rule{ID: "fail", Effect: policytest.Allow, Tool: "fail_tool"},
		policytest.Rule{ID: "refunds", Effect: policytest.Allow, Tool: "issue_refund", Approval: "supervisor"},
		policytest.Rule{ID: "delete", Effect: policytest.Allow, Tool: "delete_account"},
		policytest.Rule{ID: "no-admin-delete", Effect: policytest.Deny, Tool: "delete_account",
			Reason: "the admin account is never deleted by an agent",
			When:   func(r *policy.Request) bool { return strings.Contains(string(r.Args), "admin") }},
	)
}

func newFixture(t *testing.T, opts ...agentguard.Option) *fixture {
	t.Helper()
	f := &fixture{engine: policyRules(), spans: tracetest.NewSpanRecorder(), deferred: approval.NewDeferred(), ran: map[string]int{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	all := append([]agentguard.Option{agentguard.WithTracerProvider(tp), agentguard.WithApprover(f.deferred)}, opts...)
	f.env = agentguardtest.New(t, f.engine, canary, all...)
	f.reg = f.env.Guard.NewRegistry("helpdesk")
	if err := f.reg.Register(f.tools()...); err != nil {
		t.Fatal(err)
	}
	ctx, task, err := f.env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "task-1", Purpose: "resolve ticket T-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = task.End(context.Background()) })
	f.ctx = ctx
	return f
}

// handler counts the tool's runs and checks that it holds the task's
// credential.
func (f *fixture) handler(name string, out func(args json.RawMessage) (*agentguard.Result, error)) agentguard.Handler {
	return func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
		f.mu.Lock()
		f.ran[name]++
		f.order = append(f.order, name)
		f.mu.Unlock()
		if c, ok := credentials.FromContext(ctx, "helpdesk"); ok && c.Secret.Reveal() == canary {
			f.sawCredential.Add(1)
		}
		return out(args)
	}
}

func (f *fixture) runs(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ran[name]
}

func (f *fixture) tools() []*agentguard.Tool {
	cred := []credentials.Requirement{{Name: "helpdesk", Provider: agentguardtest.StaticProvider, Scopes: []string{"tickets"}}}
	echo := func(args json.RawMessage) (*agentguard.Result, error) {
		return &agentguard.Result{Output: map[string]any{"ok": true, "args": json.RawMessage(args)}}, nil
	}
	return []*agentguard.Tool{
		{
			Name: "read_ticket", Description: "Read a support ticket.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}`),
			Annotations: agentguard.Annotations{ReadOnly: true}, Credentials: cred,
			Handler: f.handler("read_ticket", func(args json.RawMessage) (*agentguard.Result, error) {
				return &agentguard.Result{Output: map[string]any{"ticket": "T-1", "status": "open"}}, nil
			}),
		},
		{
			Name: "issue_refund", Description: "Refund an order.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"order":{"type":"string"},"amount":{"type":"number"}}}`),
			Credentials: cred, Handler: f.handler("issue_refund", echo),
		},
		{
			Name: "delete_account", Description: "Delete a customer account.",
			InputSchema: json.RawMessage(`{"properties":{"user":{"type":"string"}}}`),
			Annotations: agentguard.Annotations{Destructive: true}, Credentials: cred,
			Handler: f.handler("delete_account", echo),
		},
		{
			Name: "export_data", Description: "Export every customer.",
			Handler: f.handler("export_data", echo),
		},
		{
			Name: "fail_tool", Description: "Always fails.", Credentials: cred,
			Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
				f.mu.Lock()
				f.ran["fail_tool"]++
				f.mu.Unlock()
				c, _ := credentials.FromContext(ctx, "helpdesk")
				// Tools are apt to echo their credentials in errors.
				return nil, fmt.Errorf("backend refused token %s", c.Secret.Reveal())
			},
		},
	}
}

// toolCalls returns the audit records of tool calls, by call ID.
func (f *fixture) toolCalls(t *testing.T) map[string][]audit.Event {
	t.Helper()
	out := map[string][]audit.Event{}
	for _, e := range f.env.Audit.Kind(audit.KindToolCall) {
		out[e.CallID] = append(out[e.CallID], e)
	}
	return out
}

// toolSpans counts the execute_tool spans by name.
func (f *fixture) toolSpans() map[string]int {
	out := map[string]int{}
	for _, s := range f.spans.Ended() {
		if strings.HasPrefix(s.Name(), "execute_tool") {
			out[s.Name()]++
		}
	}
	return out
}

// expectNoCanary fails if the credential value is in an audit record or a
// span.
func (f *fixture) expectNoCanary(t *testing.T) {
	t.Helper()
	audittest.ExpectNoSecret(t, f.env.Audit.Events(), canary)
	for _, s := range f.spans.Ended() {
		text := fmt.Sprint(s.Name(), s.Attributes(), s.Events(), s.Status())
		if strings.Contains(text, canary) {
			t.Errorf("span %s holds the credential value", s.Name())
		}
	}
}

// scriptedModel is the OpenAI API on loopback: it answers each request
// with the next scripted body and keeps the request bodies.
type scriptedModel struct {
	t    *testing.T
	path string

	mu     sync.Mutex
	turns  []string
	bodies [][]byte
}

// newScriptedModel serves path ("/chat/completions" or "/responses").
func newScriptedModel(t *testing.T, path string, turns ...string) (*scriptedModel, openai.Client) {
	t.Helper()
	m := &scriptedModel{t: t, path: path, turns: turns}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	client := openai.NewClient(option.WithBaseURL(srv.URL), option.WithAPIKey("test-key"), option.WithMaxRetries(0))
	return m, client
}

func (m *scriptedModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil || r.Method != http.MethodPost || r.URL.Path != m.path || len(m.turns) == 0 {
		m.t.Errorf("scripted model: unexpected %s %s (err %v, %d turns left)", r.Method, r.URL.Path, err, len(m.turns))
		http.Error(w, `{"error":{"message":"unexpected","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	m.bodies = append(m.bodies, body)
	next := m.turns[0]
	m.turns = m.turns[1:]
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, next)
}

func (m *scriptedModel) requests() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bodies
}

// expectNoCanaryIn fails if a request to the model holds the credential
// value.
func expectNoCanaryIn(t *testing.T, bodies [][]byte) {
	t.Helper()
	for i, b := range bodies {
		if strings.Contains(string(b), canary) {
			t.Errorf("request %d to the model holds the credential value", i)
		}
	}
}

// completionJSON is a Chat Completions response body whose message holds
// content and the tool calls.
func completionJSON(finish, content string, calls ...string) string {
	c := "null"
	if content != "" {
		c = strconvQuote(content)
	}
	tc := ""
	if len(calls) > 0 {
		tc = `,"tool_calls":[` + strings.Join(calls, ",") + `]`
	}
	return `{"id":"chatcmpl-1","object":"chat.completion","created":1767225600,"model":"gpt-test",` +
		`"choices":[{"index":0,"finish_reason":"` + finish + `","logprobs":null,` +
		`"message":{"role":"assistant","content":` + c + `,"refusal":null` + tc + `}}],` +
		`"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}`
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// functionCall is a chat tool call of a function.
func functionCall(id, name, args string) string {
	return `{"id":"` + id + `","type":"function","function":{"name":"` + name + `","arguments":` + strconvQuote(args) + `}}`
}

// responseJSON is a Responses API response body with the output items.
func responseJSON(id string, items ...string) string {
	return `{"id":"` + id + `","object":"response","created_at":1767225600,"status":"completed","model":"gpt-test",` +
		`"output":[` + strings.Join(items, ",") + `],"parallel_tool_calls":true,"tool_choice":"auto","tools":[],` +
		`"usage":{"input_tokens":12,"output_tokens":7,"total_tokens":19}}`
}

// functionCallItem is a Responses function_call output item.
func functionCallItem(callID, name, args string) string {
	return `{"type":"function_call","id":"fc_` + callID + `","call_id":"` + callID + `","name":"` + name + `","arguments":` + strconvQuote(args) + `,"status":"completed"}`
}

// textItem is a Responses message output item.
func textItem(text string) string {
	return `{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":` + strconvQuote(text) + `,"annotations":[]}]}`
}

// chatRequest is what the tests read of a Chat Completions request body.
type chatRequest struct {
	Tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	Messages []struct {
		Role       string          `json:"role"`
		ToolCallID string          `json:"tool_call_id"`
		Content    json.RawMessage `json:"content"`
	} `json:"messages"`
}

func decodeChat(t *testing.T, body []byte) chatRequest {
	t.Helper()
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("request body: %v\n%s", err, body)
	}
	return req
}

// toolMessage is a tool message as sent.
type toolMessage struct{ ID, Content string }

// toolMessages returns the tool messages after the last assistant message.
func toolMessages(t *testing.T, body []byte) []toolMessage {
	t.Helper()
	req := decodeChat(t, body)
	var out []toolMessage
	for _, m := range req.Messages {
		switch m.Role {
		case "assistant":
			out = nil
		case "tool":
			var s string
			if err := json.Unmarshal(m.Content, &s); err != nil {
				t.Fatalf("tool message content %s: %v", m.Content, err)
			}
			out = append(out, toolMessage{m.ToolCallID, s})
		}
	}
	return out
}

// chatLoop is the application's tool loop over Chat Completions.
func chatLoop(ctx context.Context, client openai.Client, reg *agentguard.Registry, opts ...openaiguard.Option) ([]string, error) {
	defs, err := openaiguard.Tools(ctx, reg)
	if err != nil {
		return nil, err
	}
	params := openai.ChatCompletionNewParams{
		Model: "gpt-test", Tools: defs,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Please close ticket T-1.")},
	}
	var said []string
	for range 10 {
		completion, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			return said, err
		}
		msg := completion.Choices[0].Message
		if msg.Content != "" {
			said = append(said, msg.Content)
		}
		params.Messages = append(params.Messages, msg.ToParam())
		turn, err := openaiguard.Run(ctx, reg, &msg, opts...)
		if err != nil {
			return said, err
		}
		if len(turn.Calls) == 0 {
			return said, nil
		}
		params.Messages = append(params.Messages, turn.Messages()...)
	}
	return said, errors.New("model did not stop")
}

// responsesLoop is the application's tool loop over the Responses API.
func responsesLoop(ctx context.Context, client openai.Client, reg *agentguard.Registry) ([]string, error) {
	defs, err := openaiguard.ResponseTools(ctx, reg)
	if err != nil {
		return nil, err
	}
	params := responses.ResponseNewParams{
		Model: "gpt-test", Tools: defs,
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Please close ticket T-1.")},
	}
	var said []string
	for range 10 {
		resp, err := client.Responses.New(ctx, params)
		if err != nil {
			return said, err
		}
		if text := resp.OutputText(); text != "" {
			said = append(said, text)
		}
		turn, err := openaiguard.RunResponse(ctx, reg, resp)
		if err != nil {
			return said, err
		}
		if len(turn.Calls) == 0 {
			return said, nil
		}
		params.PreviousResponseID = openai.String(resp.ID)
		params.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: turn.InputItems()}
	}
	return said, errors.New("model did not stop")
}
