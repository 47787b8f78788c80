package adkguard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/adk/agent"
	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/model"
	"google.golang.org/adk/plugin"
	"google.golang.org/adk/runner"
	"google.golang.org/adk/session"
	"google.golang.org/adk/tool"
	"google.golang.org/adk/tool/functiontool"
	"google.golang.org/genai"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/adapters/adk"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// canary is the secret the test credential provider issues: it must never
// reach the model, the events, the audit records or the spans.
const canary = "canary-7f3a9c1e5b2d4a68"

const (
	appName = "shop"
	userID  = "alice"
)

// scriptedModel is a model.LLM that answers each request with the next
// step of its script, and keeps what it was asked.
type scriptedModel struct {
	mu    sync.Mutex
	steps []step
	seen  []seenRequest
}

type step func(req *model.LLMRequest) *model.LLMResponse

// seenRequest is what a model request offered and said.
type seenRequest struct {
	declared []string // function declarations offered
	tools    []string // req.Tools keys
	contents string   // the conversation, as JSON
	// responses are the function responses the request carries, by call ID.
	responses map[string]map[string]any
}

func (m *scriptedModel) Name() string { return "scripted" }

func (m *scriptedModel) GenerateContent(_ context.Context, req *model.LLMRequest, _ bool) iter.Seq2[*model.LLMResponse, error] {
	return func(yield func(*model.LLMResponse, error) bool) {
		s := seenRequest{responses: map[string]map[string]any{}}
		if req.Config != nil {
			for _, t := range req.Config.Tools {
				for _, d := range t.FunctionDeclarations {
					s.declared = append(s.declared, d.Name)
				}
			}
		}
		for name := range req.Tools {
			s.tools = append(s.tools, name)
		}
		raw, err := json.Marshal(req.Contents)
		if err != nil {
			yield(nil, err)
			return
		}
		s.contents = string(raw)
		for _, c := range req.Contents {
			for _, p := range c.Parts {
				if p.FunctionResponse != nil {
					s.responses[p.FunctionResponse.ID] = p.FunctionResponse.Response
				}
			}
		}
		m.mu.Lock()
		i := len(m.seen)
		m.seen = append(m.seen, s)
		m.mu.Unlock()
		if i >= len(m.steps) {
			yield(nil, fmt.Errorf("scripted model: no step %d", i))
			return
		}
		yield(m.steps[i](req), nil)
	}
}

func (m *scriptedModel) requests() []seenRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]seenRequest(nil), m.seen...)
}

// calls is a step that makes function calls.
func calls(fcs ...genai.FunctionCall) step {
	return func(*model.LLMRequest) *model.LLMResponse {
		c := &genai.Content{Role: genai.RoleModel}
		for _, fc := range fcs {
			fc := fc
			c.Parts = append(c.Parts, &genai.Part{FunctionCall: &fc})
		}
		return &model.LLMResponse{Content: c}
	}
}

// text is a step that answers with text.
func text(s string) step {
	return func(*model.LLMRequest) *model.LLMResponse {
		return &model.LLMResponse{Content: genai.NewContentFromText(s, genai.RoleModel)}
	}
}

func call(id, name string, args map[string]any) genai.FunctionCall {
	return genai.FunctionCall{ID: id, Name: name, Args: args}
}

// toolLog records the runs of the test tools.
type toolLog struct {
	mu   sync.Mutex
	runs map[string]int
	// credOK counts runs that found the canary credential in their context.
	credOK map[string]int
	// fail makes a tool fail with an error that holds the credential.
	fail map[string]bool
}

func newToolLog() *toolLog {
	return &toolLog{runs: map[string]int{}, credOK: map[string]int{}, fail: map[string]bool{}}
}

func (l *toolLog) ran(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.runs[name]
}

func (l *toolLog) sawCredential(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.credOK[name]
}

// record notes a run of name, whether cred is the canary, and returns the
// failure to make, if any.
func (l *toolLog) record(name string, cred *credentials.Credential, ok bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs[name]++
	if ok && cred.Secret.Reveal() == canary {
		l.credOK[name]++
	}
	if l.fail[name] && ok {
		return fmt.Errorf("backend refused token %s", cred.Secret.Reveal())
	}
	return nil
}

type orderArgs struct {
	Order string `json:"order"`
}

type orderResult struct {
	Order  string `json:"order"`
	Status string `json:"status"`
}

type refundArgs struct {
	Order  string  `json:"order"`
	Amount float64 `json:"amount"`
}

type refundResult struct {
	Refunded float64 `json:"refunded"`
}

// credSpec is the Spec of a tool that needs the test credential.
func credSpec() adkguard.Spec {
	return adkguard.Spec{Credentials: []credentials.Requirement{{Name: "api", Provider: agentguardtest.StaticProvider}}}
}

func mustTool[A, R any](t *testing.T, name, desc string, f functiontool.Func[A, R]) tool.Tool {
	t.Helper()
	tl, err := functiontool.New(functiontool.Config{Name: name, Description: desc}, f)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// shopTools are the test's tools: lookup_order, refund and delete_account.
func shopTools(t *testing.T, log *toolLog) []tool.Tool {
	lookup := mustTool(t, "lookup_order", "Look up an order.", func(ctx tool.Context, a orderArgs) (orderResult, error) {
		cred, ok := credentials.FromContext(ctx, "api")
		if err := log.record("lookup_order", cred, ok); err != nil {
			return orderResult{}, err
		}
		return orderResult{Order: a.Order, Status: "shipped"}, nil
	})
	refund := mustTool(t, "refund", "Refund an order.", func(ctx tool.Context, a refundArgs) (refundResult, error) {
		cred, ok := credentials.FromContext(ctx, "api")
		if err := log.record("refund", cred, ok); err != nil {
			return refundResult{}, err
		}
		return refundResult{Refunded: a.Amount}, nil
	})
	del := mustTool(t, "delete_account", "Delete a customer's account.", func(ctx tool.Context, a orderArgs) (orderResult, error) {
		cred, ok := credentials.FromContext(ctx, "api")
		_ = log.record("delete_account", cred, ok)
		return orderResult{Status: "deleted"}, nil
	})
	return []tool.Tool{lookup, refund, del}
}

// amount is the refund's amount in a request, -1 without one.
func amount(req *policy.Request) float64 {
	var a struct{ Amount *float64 }
	if json.Unmarshal(req.Args, &a) != nil || a.Amount == nil {
		return -1
	}
	return *a.Amount
}

// shopRules is the test policy: lookups allowed; refunds up to 100
// allowed, above that with a supervisor's approval, above 1000 never;
// delete_account never.
func shopRules() *policytest.Rules {
	return policytest.NewRules(
		policytest.Rule{ID: "read-orders", Effect: policytest.Allow, Tool: "lookup_order"},
		policytest.Rule{ID: "small-refunds", Effect: policytest.Allow, Tool: "refund",
			When: func(r *policy.Request) bool { return amount(r) <= 100 }},
		policytest.Rule{ID: "refund-approval", Effect: policytest.Allow, Tool: "refund", Approval: "supervisor",
			When: func(r *policy.Request) bool { return amount(r) > 100 }},
		policytest.Rule{ID: "refund-limit", Effect: policytest.Deny, Tool: "refund", Reason: "refunds over 1000 are never made by an agent",
			When: func(r *policy.Request) bool { return amount(r) > 1000 }},
		policytest.Rule{ID: "no-delete", Effect: policytest.Deny, Tool: "delete_account", Reason: "accounts are deleted by people"},
	)
}

// harness is a guard, its ADK adapter and what they recorded.
type harness struct {
	*agentguardtest.Env
	spans    *tracetest.SpanRecorder
	ag       *adkguard.Guard
	sessions session.Service
}

func newHarness(t *testing.T, engine policy.Engine, gopts []agentguard.Option, aopts ...adkguard.Option) *harness {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	env := agentguardtest.New(t, engine, canary, append([]agentguard.Option{agentguard.WithTracerProvider(tp)}, gopts...)...)
	aopts = append([]adkguard.Option{
		adkguard.WithSpec("lookup_order", credSpec()),
		adkguard.WithSpec("refund", credSpec()),
	}, aopts...)
	ag, err := adkguard.New(env.Guard, aopts...)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{Env: env, spans: sr, ag: ag, sessions: session.InMemoryService()}
}

// agentConfig is the shop agent's configuration, guarded with Configure.
func (h *harness) agent(t *testing.T, m model.LLM, tools []tool.Tool, edit ...func(*llmagent.Config)) agent.Agent {
	t.Helper()
	cfg := llmagent.Config{Name: "shop_agent", Model: m, Instruction: "Help customers.", Tools: tools}
	for _, e := range edit {
		e(&cfg)
	}
	h.ag.Configure(&cfg)
	a, err := llmagent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (h *harness) runner(t *testing.T, a agent.Agent, plugins ...*plugin.Plugin) *runner.Runner {
	t.Helper()
	r, err := runner.New(runner.Config{AppName: appName, Agent: a, SessionService: h.sessions,
		PluginConfig: runner.PluginConfig{Plugins: plugins}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (h *harness) session(t *testing.T) string {
	t.Helper()
	resp, err := h.sessions.Create(context.Background(), &session.CreateRequest{AppName: appName, UserID: userID})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Session.ID()
}

// task starts a task and ends it when the test ends.
func (h *harness) task(t *testing.T) (context.Context, *agentguard.Task) {
	t.Helper()
	ctx, task, err := h.Guard.StartTask(context.Background(), agentguard.TaskSpec{Purpose: "help a customer", OnBehalfOf: "user:" + userID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = task.End(context.Background()) })
	return ctx, task
}

// run runs one turn and returns its events; an error fails the test.
func run(t *testing.T, ctx context.Context, r *runner.Runner, sessionID string, msg *genai.Content) []*session.Event {
	t.Helper()
	var evs []*session.Event
	for ev, err := range r.Run(ctx, userID, sessionID, msg, agent.RunConfig{}) {
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func userText(s string) *genai.Content { return genai.NewContentFromText(s, genai.RoleUser) }

// response returns the function response to call id among evs.
func response(t *testing.T, evs []*session.Event, id string) map[string]any {
	t.Helper()
	var found map[string]any
	n := 0
	for _, ev := range evs {
		if ev.Content == nil {
			continue
		}
		for _, p := range ev.Content.Parts {
			if p.FunctionResponse != nil && p.FunctionResponse.ID == id {
				found = p.FunctionResponse.Response
				n++
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d function responses to %s, want 1", n, id)
	}
	return found
}

// errorText returns the "error" of a function response, failing the test
// when it has none.
func errorText(t *testing.T, resp map[string]any) string {
	t.Helper()
	s, ok := resp["error"].(string)
	if !ok {
		t.Fatalf("response %v has no error", resp)
	}
	return s
}

// toolSpans returns the guard's execute_tool spans of call id.
func (h *harness) toolSpans(id string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range h.spans.Ended() {
		if !strings.HasPrefix(s.Name(), "execute_tool ") {
			continue
		}
		for _, a := range s.Attributes() {
			if a.Key == "gen_ai.tool.call.id" && a.Value.AsString() == id {
				out = append(out, s)
			}
		}
	}
	return out
}

// expectOnce checks that call id has exactly one execute_tool span and one
// tool-call record, paired (the record names the span), and returns the record.
func (h *harness) expectOnce(t *testing.T, id string, w audittest.Want) audit.Event {
	t.Helper()
	w.Kind, w.CallID = audit.KindToolCall, id
	ev := audittest.Expect(t, h.Audit.Kind(audit.KindToolCall), w)
	audittest.ExpectCount(t, h.Audit.Kind(audit.KindToolCall), audittest.Want{Kind: audit.KindToolCall, CallID: id}, 1)
	spans := h.toolSpans(id)
	if len(spans) != 1 {
		t.Fatalf("%d execute_tool spans for call %s, want 1", len(spans), id)
	}
	if got := spans[0].SpanContext().SpanID().String(); ev.SpanID != got {
		t.Errorf("record of %s names span %s, its span is %s", id, ev.SpanID, got)
	}
	return ev
}

// expectNoCanary checks that the canary reached none of what the model,
// the events, the audit and the spans hold.
func (h *harness) expectNoCanary(t *testing.T, m *scriptedModel, evs ...[]*session.Event) {
	t.Helper()
	audittest.ExpectNoSecret(t, h.Audit.Events(), canary)
	for i, r := range m.requests() {
		if strings.Contains(r.contents, canary) {
			t.Errorf("model request %d holds the credential", i)
		}
	}
	for _, list := range evs {
		raw, err := json.Marshal(list)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), canary) {
			t.Error("the events hold the credential")
		}
	}
	for _, s := range h.spans.Ended() {
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.Emit(), canary) {
				t.Errorf("span %s attribute %s holds the credential", s.Name(), a.Key)
			}
		}
		for _, e := range s.Events() {
			for _, a := range e.Attributes {
				if strings.Contains(a.Value.Emit(), canary) {
					t.Errorf("span %s event %s holds the credential", s.Name(), e.Name)
				}
			}
		}
		if strings.Contains(s.Status().Description, canary) {
			t.Errorf("span %s status holds the credential", s.Name())
		}
	}
}
