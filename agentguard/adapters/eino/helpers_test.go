package einoguard_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudwego/eino/components/model"
	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/components/tool/utils"
	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	einoguard "github.com/agentguard/go-sdk/agentguard/adapters/eino"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// canary is the secret the test credential provider issues: it must never
// reach the model, the audit records or the spans.
const canary = "CANARY-c0ffee-5ecret"

// credName is the name under which the tools declare their credential.
const credName = "shop-api"

func shopCredential() []credentials.Requirement {
	return []credentials.Requirement{{Name: credName, Provider: agentguardtest.StaticProvider, Audience: "shop", Scopes: []string{"orders"}}}
}

// scriptedModel is a tool-calling chat model that answers from a script and
// records what it was given.
type scriptedModel struct {
	mu      sync.Mutex
	replies []func(in []*schema.Message) *schema.Message
	inputs  [][]*schema.Message
	tools   []*schema.ToolInfo
}

var _ model.ToolCallingChatModel = (*scriptedModel)(nil)

func newModel(replies ...func(in []*schema.Message) *schema.Message) *scriptedModel {
	return &scriptedModel{replies: replies}
}

func (m *scriptedModel) Generate(_ context.Context, in []*schema.Message, _ ...model.Option) (*schema.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inputs = append(m.inputs, append([]*schema.Message(nil), in...))
	if len(m.replies) == 0 {
		return nil, errors.New("scripted model: script exhausted")
	}
	r := m.replies[0]
	m.replies = m.replies[1:]
	return r(in), nil
}

func (m *scriptedModel) Stream(ctx context.Context, in []*schema.Message, opts ...model.Option) (*schema.StreamReader[*schema.Message], error) {
	msg, err := m.Generate(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	return schema.StreamReaderFromArray([]*schema.Message{msg}), nil
}

func (m *scriptedModel) WithTools(tools []*schema.ToolInfo) (model.ToolCallingChatModel, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tools = tools
	return m, nil
}

// seen returns every message the model was given, over all its turns.
func (m *scriptedModel) seen() []*schema.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*schema.Message
	for _, in := range m.inputs {
		out = append(out, in...)
	}
	return out
}

// toolResult returns the text of the last tool message the model was given
// for callID.
func (m *scriptedModel) toolResult(t *testing.T, callID string) string {
	t.Helper()
	msgs := m.seen()
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == schema.Tool && msgs[i].ToolCallID == callID {
			return messageText(msgs[i])
		}
	}
	t.Fatalf("the model was given no result for call %s", callID)
	return ""
}

// messageText is a message's text, whether plain or in parts (an enhanced
// tool's result).
func messageText(m *schema.Message) string {
	var b strings.Builder
	b.WriteString(m.Content)
	for _, p := range m.UserInputMultiContent {
		b.WriteString(p.Text)
	}
	return b.String()
}

// callTools is a scripted reply calling tools.
func callTools(calls ...schema.ToolCall) func([]*schema.Message) *schema.Message {
	return func([]*schema.Message) *schema.Message {
		return &schema.Message{Role: schema.Assistant, ToolCalls: calls}
	}
}

// answer is a scripted final reply.
func answer(text string) func([]*schema.Message) *schema.Message {
	return func([]*schema.Message) *schema.Message { return schema.AssistantMessage(text, nil) }
}

func toolCall(id, name, args string) schema.ToolCall {
	return schema.ToolCall{ID: id, Type: "function", Function: schema.FunctionCall{Name: name, Arguments: args}}
}

// loopState is the agent graph's state: the conversation so far.
type loopState struct {
	Messages []*schema.Message
}

func init() {
	schema.RegisterName[*loopState]("_einoguard_test_loop_state")
}

// memStore is an in-memory eino checkpoint store.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) Get(_ context.Context, id string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[id]
	return b, ok, nil
}

func (s *memStore) Set(_ context.Context, id string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[id] = b
	return nil
}

// replace replaces old by new in the checkpoint id, as whoever can write
// to the application's checkpoint store could; old and new have the same
// length, so that the encoding stays whole.
func (s *memStore) replace(t *testing.T, id, old, new string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[id]
	if !ok || len(old) != len(new) || !bytes.Contains(b, []byte(old)) {
		t.Fatalf("checkpoint %s: cannot replace %q", id, old)
	}
	s.m[id] = bytes.ReplaceAll(b, []byte(old), []byte(new))
}

// newAgent compiles a ReAct-style graph: the chat model, and a ToolsNode
// built from conf, looping until the model answers without calling a tool.
// It checkpoints to an in-memory store, so that interrupts can be resumed.
func newAgent(t *testing.T, m model.ToolCallingChatModel, conf *compose.ToolsNodeConfig) compose.Runnable[[]*schema.Message, *schema.Message] {
	t.Helper()
	return newAgentWithStore(t, m, conf, &memStore{})
}

// newAgentWithStore is newAgent checkpointing to store.
func newAgentWithStore(t *testing.T, m model.ToolCallingChatModel, conf *compose.ToolsNodeConfig, store *memStore) compose.Runnable[[]*schema.Message, *schema.Message] {
	t.Helper()
	ctx := context.Background()
	node, err := compose.NewToolNode(ctx, conf)
	if err != nil {
		t.Fatalf("NewToolNode: %v", err)
	}
	g := compose.NewGraph[[]*schema.Message, *schema.Message](compose.WithGenLocalState(func(context.Context) *loopState {
		return &loopState{}
	}))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(g.AddChatModelNode("model", m, compose.WithStatePreHandler(func(_ context.Context, in []*schema.Message, st *loopState) ([]*schema.Message, error) {
		st.Messages = append(st.Messages, in...)
		return st.Messages, nil
	})))
	must(g.AddToolsNode("tools", node, compose.WithStatePreHandler(func(_ context.Context, in *schema.Message, st *loopState) (*schema.Message, error) {
		if in == nil { // a resumed run: the ToolsNode restores its input itself
			return st.Messages[len(st.Messages)-1], nil
		}
		st.Messages = append(st.Messages, in)
		return in, nil
	})))
	must(g.AddEdge(compose.START, "model"))
	must(g.AddBranch("model", compose.NewGraphBranch(func(_ context.Context, msg *schema.Message) (string, error) {
		if len(msg.ToolCalls) > 0 {
			return "tools", nil
		}
		return compose.END, nil
	}, map[string]bool{"tools": true, compose.END: true})))
	must(g.AddEdge("tools", "model"))
	r, err := g.Compile(ctx, compose.WithCheckPointStore(store), compose.WithMaxRunSteps(20), compose.WithGraphName("agent"))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return r
}

// counter counts a tool's runs and remembers the credential each saw.
type counter struct {
	runs    atomic.Int32
	mu      sync.Mutex
	secrets []string
}

// ran records one run in ctx and returns an error if the run has no
// credential.
func (c *counter) ran(ctx context.Context) error {
	c.runs.Add(1)
	cred, ok := credentials.FromContext(ctx, credName)
	if !ok {
		return errors.New("no credential in the tool's context")
	}
	c.mu.Lock()
	c.secrets = append(c.secrets, cred.Secret.Reveal())
	c.mu.Unlock()
	return nil
}

func (c *counter) sawCanary(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.secrets) == 0 {
		t.Fatal("the tool saw no credential")
	}
	for _, s := range c.secrets {
		if s != canary {
			t.Fatalf("the tool's credential is %q, want the task credential", s)
		}
	}
}

type orderArgs struct {
	Order  string `json:"order" jsonschema:"description=the order ID"`
	Amount int    `json:"amount,omitempty" jsonschema:"description=the amount to refund"`
}

// shop is the test's tools, each counting its runs.
type shop struct {
	lookup, refund, close counter
	tools                 []tool.BaseTool
}

func newShop(t *testing.T) *shop {
	t.Helper()
	s := &shop{}
	lookup, err := utils.InferTool("lookup_order", "Look an order up.", func(ctx context.Context, a orderArgs) (string, error) {
		if err := s.lookup.ran(ctx); err != nil {
			return "", err
		}
		return fmt.Sprintf("order %s: shipped", a.Order), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	refund, err := utils.InferTool("refund", "Refund an order.", func(ctx context.Context, a orderArgs) (string, error) {
		if err := s.refund.ran(ctx); err != nil {
			return "", err
		}
		return fmt.Sprintf("refunded %d on %s", a.Amount, a.Order), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	closeAcct, err := utils.InferTool("close_account", "Close a customer's account.", func(ctx context.Context, a orderArgs) (string, error) {
		if err := s.close.ran(ctx); err != nil {
			return "", err
		}
		return "closed", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.tools = []tool.BaseTool{lookup, refund, closeAcct}
	return s
}

// shopSpecs gives each shop tool the test credential.
func shopSpecs(names ...string) []einoguard.Option {
	var opts []einoguard.Option
	for _, n := range names {
		opts = append(opts, einoguard.WithSpec(n, einoguard.Spec{Credentials: shopCredential()}))
	}
	return opts
}

// shopRules is the test policy: lookups allowed, refunds up to 100 allowed
// with a manager's approval, closing accounts never.
func shopRules() *policytest.Rules {
	return policytest.NewRules(
		policytest.Rule{ID: "lookups", Effect: policytest.Allow, Agent: agentguardtest.AgentID, Tool: "lookup_order"},
		policytest.Rule{ID: "refunds", Effect: policytest.Allow, Agent: agentguardtest.AgentID, Tool: "refund", Approval: "manager"},
		policytest.Rule{ID: "refund-limit", Effect: policytest.Deny, Tool: "refund", Reason: "refunds over 100 need a person",
			When: func(r *policy.Request) bool { return strings.Contains(string(r.Args), `"amount":1000`) }},
		policytest.Rule{ID: "no-closing", Effect: policytest.Deny, Tool: "close_account", Reason: "accounts are closed by people"},
	)
}

// env is a guard for one test, with its audit records and spans.
type env struct {
	*agentguardtest.Env
	spans *tracetest.SpanRecorder
	sink  *notifySink
}

func newEnv(t *testing.T, engine policy.Engine, opts ...agentguard.Option) *env {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	sink := &notifySink{Recorder: audittest.NewRecorder(), calls: make(chan audit.Event, 64)}
	e := agentguardtest.New(t, engine, canary, append([]agentguard.Option{
		agentguard.WithTracerProvider(tp), agentguard.WithAudit(sink),
	}, opts...)...)
	e.Audit = sink.Recorder
	return &env{Env: e, spans: sr, sink: sink}
}

// task starts a task; the test ends it.
func (e *env) task(t *testing.T) context.Context {
	t.Helper()
	ctx, task, err := e.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "task-" + strings.ReplaceAll(t.Name(), "/", "-"), Purpose: "help a customer"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = task.End(context.Background()) })
	return ctx
}

// calls returns the tool-call audit records.
func (e *env) calls() []audit.Event { return e.Audit.Kind(audit.KindToolCall) }

// toolSpans returns the ended execute_tool spans.
func (e *env) toolSpans() []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range e.spans.Ended() {
		if strings.HasPrefix(s.Name(), "execute_tool") {
			out = append(out, s)
		}
	}
	return out
}

// noCanary fails if the credential value is in any audit record, span or
// message the model was given.
func (e *env) noCanary(t *testing.T, m *scriptedModel) {
	t.Helper()
	audittest.ExpectNoSecret(t, e.Audit.Events(), canary)
	for _, s := range e.spans.Ended() {
		text := fmt.Sprint(s.Name(), s.Attributes(), s.Events(), s.Status())
		if strings.Contains(text, canary) {
			t.Fatalf("span %s holds the credential value", s.Name())
		}
	}
	if m != nil {
		for _, msg := range m.seen() {
			if strings.Contains(fmt.Sprintf("%+v", msg), canary) {
				t.Fatalf("the model was given the credential value: %+v", msg)
			}
		}
	}
}

// notifySink records audit events and signals each tool-call record, so
// that a test can wait for a call that ends in another goroutine.
type notifySink struct {
	*audittest.Recorder
	calls chan audit.Event
}

func (s *notifySink) Write(ctx context.Context, ev audit.Event) error {
	err := s.Recorder.Write(ctx, ev)
	if ev.Kind == audit.KindToolCall {
		select {
		case s.calls <- ev:
		default:
		}
	}
	return err
}

// waitCall waits for the tool-call record of callID.
func (e *env) waitCall(t *testing.T, callID string) audit.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-e.sink.calls:
			if ev.CallID == callID {
				return ev
			}
		case <-timeout:
			t.Fatalf("no tool-call record was written for %s", callID)
			return audit.Event{}
		}
	}
}
