package anthropicguard_test

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

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	anthropicguard "github.com/agentguard/go-sdk/agentguard/adapters/anthropic"
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

// scriptedModel is the Messages API on loopback: it answers each request
// with the next scripted message and keeps the request bodies.
type scriptedModel struct {
	t *testing.T

	mu     sync.Mutex
	turns  []string
	bodies [][]byte
}

func newScriptedModel(t *testing.T, turns ...string) (*scriptedModel, anthropic.Client) {
	t.Helper()
	m := &scriptedModel{t: t, turns: turns}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	client := anthropic.NewClient(option.WithBaseURL(srv.URL), option.WithAPIKey("test-key"), option.WithMaxRetries(0))
	return m, client
}

func (m *scriptedModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil || r.Method != http.MethodPost || r.URL.Path != "/v1/messages" || len(m.turns) == 0 {
		m.t.Errorf("scripted model: unexpected %s %s (err %v, %d turns left)", r.Method, r.URL.Path, err, len(m.turns))
		http.Error(w, `{"type":"error","error":{"type":"invalid_request_error","message":"unexpected"}}`, http.StatusBadRequest)
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

// wireRequest is what the tests read of a Messages API request body.
type wireRequest struct {
	Tools []struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"input_schema"`
	} `json:"tools"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

// wireResult is a tool_result block as sent.
type wireResult struct {
	Type      string `json:"type"`
	ToolUseID string `json:"tool_use_id"`
	IsError   bool   `json:"is_error"`
	Content   []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
}

func (r wireResult) text() string {
	var b strings.Builder
	for _, c := range r.Content {
		b.WriteString(c.Text)
	}
	return b.String()
}

func decodeRequest(t *testing.T, body []byte) wireRequest {
	t.Helper()
	var req wireRequest
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("request body: %v\n%s", err, body)
	}
	return req
}

// lastResults decodes the tool_result blocks of the request's last message.
func lastResults(t *testing.T, body []byte) []wireResult {
	t.Helper()
	req := decodeRequest(t, body)
	if len(req.Messages) == 0 {
		t.Fatal("request has no messages")
	}
	last := req.Messages[len(req.Messages)-1]
	if last.Role != "user" {
		t.Fatalf("last message is %q, want user", last.Role)
	}
	var out []wireResult
	if err := json.Unmarshal(last.Content, &out); err != nil {
		t.Fatalf("last message content: %v\n%s", err, last.Content)
	}
	return out
}

// message builds a Message as the API returns it, from JSON.
func message(t *testing.T, content string) *anthropic.Message {
	t.Helper()
	var m anthropic.Message
	if err := json.Unmarshal([]byte(messageJSON("tool_use", content)), &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// messageJSON is a Messages API response body.
func messageJSON(stop, content string) string {
	return `{"id":"msg_1","type":"message","role":"assistant","model":"claude-test",` +
		`"content":[` + content + `],"stop_reason":"` + stop + `","stop_sequence":null,` +
		`"usage":{"input_tokens":12,"output_tokens":7}}`
}

func toolUse(id, name, input string) string {
	return `{"type":"tool_use","id":"` + id + `","name":"` + name + `","input":` + input + `}`
}

// loop is the application's tool loop: ask the model, answer its tool
// calls through the guard, until it stops calling tools.
func loop(ctx context.Context, client anthropic.Client, reg *agentguard.Registry, opts ...anthropicguard.Option) ([]string, error) {
	defs, err := anthropicguard.Tools(ctx, reg)
	if err != nil {
		return nil, err
	}
	params := anthropic.MessageNewParams{
		Model: "claude-test", MaxTokens: 1024, Tools: defs,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Please close ticket T-1."))},
	}
	var said []string
	for range 10 {
		msg, err := client.Messages.New(ctx, params)
		if err != nil {
			return said, err
		}
		for _, b := range msg.Content {
			if b.Type == "text" {
				said = append(said, b.Text)
			}
		}
		params.Messages = append(params.Messages, msg.ToParam())
		turn, err := anthropicguard.Run(ctx, reg, msg, opts...)
		if err != nil {
			return said, err
		}
		if len(turn.Calls) == 0 {
			return said, nil
		}
		params.Messages = append(params.Messages, turn.Message())
	}
	return said, errors.New("model did not stop")
}
