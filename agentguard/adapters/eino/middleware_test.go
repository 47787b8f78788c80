package einoguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/components/tool/utils"
	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/flow/agent/react"
	"github.com/cloudwego/eino/schema"
	"go.opentelemetry.io/otel/codes"

	"github.com/agentguard/go-sdk/agentguard"
	einoguard "github.com/agentguard/go-sdk/agentguard/adapters/eino"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy/policytest"
)

func newShopToolset(t *testing.T, e *env, s *shop, opts ...einoguard.Option) *einoguard.Toolset {
	t.Helper()
	ts, err := einoguard.New(context.Background(), e.Guard, "shop", s.tools,
		append(shopSpecs("lookup_order", "refund", "close_account"), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestAllowedCallRunsWithIdentityAndCredential(t *testing.T) {
	rules := shopRules()
	e := newEnv(t, rules)
	s := newShop(t)
	ts := newShopToolset(t, e, s)
	m := newModel(callTools(toolCall("call-1", "lookup_order", `{"order":"O-1"}`)), answer("your order has shipped"))
	ctx := e.task(t)

	out, err := newAgent(t, m, ts.NodeConfig()).Invoke(ctx, []*schema.Message{schema.UserMessage("where is O-1?")})
	if err != nil {
		t.Fatal(err)
	}
	if out.Content != "your order has shipped" {
		t.Fatalf("answer %q", out.Content)
	}
	if n := s.lookup.runs.Load(); n != 1 {
		t.Fatalf("lookup_order ran %d times, want 1", n)
	}
	s.lookup.sawCanary(t)
	if got := m.toolResult(t, "call-1"); got != "order O-1: shipped" {
		t.Fatalf("the model got %q", got)
	}

	// Policy was asked about this call, for the agent's verified identity.
	var asked bool
	for _, r := range rules.Requests() {
		if r.Tool.Name == "lookup_order" && !r.Listing {
			asked = true
			if r.Agent.ID.String() != agentguardtest.AgentID || r.CallID != "call-1" || r.Tool.Toolset != "shop" {
				t.Fatalf("policy request: agent %s, call %s, toolset %s", r.Agent.ID, r.CallID, r.Tool.Toolset)
			}
		}
	}
	if !asked {
		t.Fatal("policy was not asked about the call")
	}
	audittest.ExpectCount(t, e.calls(), audittest.Want{
		Kind: audit.KindToolCall, Agent: agentguardtest.AgentID, Tool: "lookup_order", Toolset: "shop",
		CallID: "call-1", Decision: audit.Allow, Outcome: audit.OutcomeOK,
	}, 1)
	if n := len(e.calls()); n != 1 {
		t.Fatalf("%d tool-call records, want 1:\n%s", n, audittest.List(e.calls()))
	}
	spans := e.toolSpans()
	if len(spans) != 1 || spans[0].Name() != "execute_tool lookup_order" {
		t.Fatalf("spans %v, want one execute_tool lookup_order", spans)
	}
	e.noCanary(t, m)
}

func TestDeniedCallNeverReachesTheTool(t *testing.T) {
	e := newEnv(t, shopRules())
	s := newShop(t)
	ts := newShopToolset(t, e, s)
	m := newModel(callTools(toolCall("call-1", "close_account", `{"order":"O-1"}`)), answer("I cannot close it"))
	ctx := e.task(t)

	out, err := newAgent(t, m, ts.NodeConfig()).Invoke(ctx, []*schema.Message{schema.UserMessage("close my account")})
	if err != nil {
		t.Fatalf("a denial ended the run: %v", err)
	}
	if out.Content != "I cannot close it" {
		t.Fatalf("answer %q", out.Content)
	}
	if n := s.close.runs.Load(); n != 0 {
		t.Fatalf("close_account ran %d times", n)
	}
	got := m.toolResult(t, "call-1")
	for _, want := range []string{`"close_account"`, "denied", "accounts are closed by people"} {
		if !strings.Contains(got, want) {
			t.Fatalf("the model got %q, want it to say %q", got, want)
		}
	}
	audittest.ExpectCount(t, e.calls(), audittest.Want{
		Tool: "close_account", CallID: "call-1", Decision: audit.Deny, Outcome: audit.OutcomeDenied,
		Step: agentguard.StepAuthorize, Policies: []string{"no-closing"},
	}, 1)
	if n := len(e.calls()); n != 1 {
		t.Fatalf("%d tool-call records, want 1", n)
	}
	spans := e.toolSpans()
	if len(spans) != 1 || spans[0].Status().Code != codes.Error {
		t.Fatalf("want one span with an error status, got %d", len(spans))
	}
	e.noCanary(t, m)
}

func TestListingIsFilteredByPolicy(t *testing.T) {
	e := newEnv(t, shopRules())
	s := newShop(t)
	ts := newShopToolset(t, e, s)
	ctx := e.task(t)

	infos, err := ts.ToolInfos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tools, err := ts.Tools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names, toolNames []string
	for _, i := range infos {
		names = append(names, i.Name)
	}
	for _, bt := range tools {
		info, _ := bt.Info(ctx)
		toolNames = append(toolNames, info.Name)
	}
	want := []string{"lookup_order", "refund"}
	if !slices.Equal(names, want) || !slices.Equal(toolNames, want) {
		t.Fatalf("listed %v and %v, want %v (close_account is never allowed)", names, toolNames, want)
	}

	// The list is the listing's copy: changing it changes nothing.
	infos[0].Desc = "changed"
	again, _ := ts.ToolInfos(ctx)
	if again[0].Desc != "Look an order up." {
		t.Fatal("ToolInfos shares its definitions")
	}
	if n := len(e.calls()); n != 0 {
		t.Fatalf("listing wrote %d tool-call records", n)
	}
}

func TestUnknownToolIsDenied(t *testing.T) {
	e := newEnv(t, shopRules())
	s := newShop(t)
	ts := newShopToolset(t, e, s)
	m := newModel(callTools(toolCall("call-1", "format_disk", `{}`)), answer("sorry"))
	ctx := e.task(t)

	if _, err := newAgent(t, m, ts.NodeConfig()).Invoke(ctx, []*schema.Message{schema.UserMessage("x")}); err != nil {
		t.Fatalf("an unknown tool ended the run: %v", err)
	}
	if got := m.toolResult(t, "call-1"); !strings.Contains(got, `"format_disk"`) || !strings.Contains(got, "denied") {
		t.Fatalf("the model got %q", got)
	}
	audittest.ExpectCount(t, e.calls(), audittest.Want{Tool: "format_disk", CallID: "call-1", Decision: audit.Deny, Step: agentguard.StepLookup}, 1)
}

// A tool the ToolsNode holds but the toolset was not told about, given in
// the node's configuration or as a tool list for one run, is denied.
func TestToolTheToolsetDoesNotKnowIsDenied(t *testing.T) {
	e := newEnv(t, shopRules())
	s := newShop(t)
	ts := newShopToolset(t, e, s)
	var wiped counter
	wipe, err := utils.InferTool("wipe", "Wipe everything.", func(ctx context.Context, _ orderArgs) (string, error) {
		_ = wiped.ran(ctx)
		return "wiped", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := e.task(t)

	t.Run("in the node's configuration", func(t *testing.T) {
		conf := ts.NodeConfig()
		conf.Tools = append(conf.Tools, wipe)
		m := newModel(callTools(toolCall("call-cfg", "wipe", `{"order":"O-1"}`)), answer("no"))
		if _, err := newAgent(t, m, conf).Invoke(ctx, []*schema.Message{schema.UserMessage("x")}); err != nil {
			t.Fatal(err)
		}
		if got := m.toolResult(t, "call-cfg"); !strings.Contains(got, "denied") {
			t.Fatalf("the model got %q", got)
		}
	})
	t.Run("as a tool list for one run", func(t *testing.T) {
		m := newModel(callTools(toolCall("call-list", "wipe", `{"order":"O-1"}`)), answer("no"))
		_, err := newAgent(t, m, ts.NodeConfig()).Invoke(ctx, []*schema.Message{schema.UserMessage("x")},
			compose.WithToolsNodeOption(compose.WithToolList(append(slices.Clone(s.tools), wipe)...)))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.toolResult(t, "call-list"); !strings.Contains(got, "denied") {
			t.Fatalf("the model got %q", got)
		}
	})
	if n := wiped.runs.Load(); n != 0 {
		t.Fatalf("wipe ran %d times", n)
	}
	audittest.ExpectCount(t, e.calls(), audittest.Want{Tool: "wipe", Decision: audit.Deny, Step: agentguard.StepLookup}, 2)
}

func TestBadArgumentsAreDenied(t *testing.T) {
	e := newEnv(t, shopRules())
	s := newShop(t)
	ts := newShopToolset(t, e, s)
	ctx := e.task(t)
	for _, args := range []string{`{"order":`, `["O-1"]`, `{"order":"O-1","order":"O-2"}`} {
		t.Run(args, func(t *testing.T) {
			m := newModel(callTools(toolCall("call-bad", "lookup_order", args)), answer("oops"))
			if _, err := newAgent(t, m, ts.NodeConfig()).Invoke(ctx, []*schema.Message{schema.UserMessage("x")}); err != nil {
				t.Fatal(err)
			}
			if got := m.toolResult(t, "call-bad"); !strings.Contains(got, "denied") || !strings.Contains(got, "Fix the arguments") {
				t.Fatalf("the model got %q", got)
			}
		})
	}
	if n := s.lookup.runs.Load(); n != 0 {
		t.Fatalf("lookup_order ran %d times", n)
	}
	audittest.ExpectCount(t, e.calls(), audittest.Want{Tool: "lookup_order", Decision: audit.Deny, Step: agentguard.StepArguments}, 3)
}

// A tool that fails ends the run, as it does in eino without the guard,
// with the guard's error: scrubbed of the credential the tool echoed.
func TestToolFailureEndsTheRunScrubbed(t *testing.T) {
	e := newEnv(t, shopRules())
	var runs counter
	broken, err := utils.InferTool("lookup_order", "Look an order up.", func(ctx context.Context, _ orderArgs) (string, error) {
		_ = runs.ran(ctx)
		cred, ok := credentials.FromContext(ctx, credName)
		if !ok {
			return "", errors.New("no credential")
		}
		return "", errors.New("backend refused token " + cred.Secret.Reveal())
	})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := einoguard.New(context.Background(), e.Guard, "shop", []tool.BaseTool{broken}, shopSpecs("lookup_order")...)
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(callTools(toolCall("call-1", "lookup_order", `{"order":"O-1"}`)), answer("unreachable"))
	ctx := e.task(t)

	_, err = newAgent(t, m, ts.NodeConfig()).Invoke(ctx, []*schema.Message{schema.UserMessage("x")})
	var te *agentguard.ToolError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want an *agentguard.ToolError", err)
	}
	if strings.Contains(err.Error(), canary) {
		t.Fatalf("the error holds the credential: %v", err)
	}
	if n := runs.runs.Load(); n != 1 {
		t.Fatalf("the tool ran %d times", n)
	}
	audittest.ExpectCount(t, e.calls(), audittest.Want{Tool: "lookup_order", Decision: audit.Allow, Outcome: audit.OutcomeError}, 1)
	if len(e.toolSpans()) != 1 {
		t.Fatalf("%d spans", len(e.toolSpans()))
	}
	e.noCanary(t, m)
}

func TestNewRefusesWhatItCannotGuard(t *testing.T) {
	e := newEnv(t, shopRules())
	s := newShop(t)
	ctx := context.Background()
	cases := map[string]struct {
		tools []tool.BaseTool
		opts  []einoguard.Option
	}{
		"nil tool":        {tools: []tool.BaseTool{nil}},
		"repeated name":   {tools: []tool.BaseTool{s.tools[0], s.tools[0]}},
		"spec of nothing": {tools: s.tools[:1], opts: []einoguard.Option{einoguard.WithSpec("nothing", einoguard.Spec{})}},
		"not runnable":    {tools: []tool.BaseTool{infoOnly{name: "ghost"}}},
		"failing info":    {tools: []tool.BaseTool{infoOnly{err: errors.New("no info")}}},
		"reserved name":   {tools: []tool.BaseTool{runnableInfo{name: ""}}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := einoguard.New(ctx, e.Guard, "shop", c.tools, c.opts...); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
	if _, err := einoguard.New(ctx, nil, "shop", s.tools); !errors.Is(err, einoguard.ErrInvalidToolset) {
		t.Fatalf("nil guard: %v", err)
	}
}

// infoOnly is a tool eino cannot run: it only describes itself.
type infoOnly struct {
	name string
	err  error
}

func (i infoOnly) Info(context.Context) (*schema.ToolInfo, error) {
	if i.err != nil {
		return nil, i.err
	}
	return &schema.ToolInfo{Name: i.name, Desc: "x"}, nil
}

// runnableInfo is an invokable tool of any name.
type runnableInfo struct{ name string }

func (r runnableInfo) Info(context.Context) (*schema.ToolInfo, error) {
	return &schema.ToolInfo{Name: r.name, Desc: "x"}, nil
}

func (r runnableInfo) InvokableRun(context.Context, string, ...tool.Option) (string, error) {
	return "ran", nil
}

// eino's ReAct agent binds the tools of its ToolsConfig to the model: given
// the policy-filtered tools and the toolset's middleware, the model sees
// only those, and a call of a hidden tool is denied all the same.
func TestReActAgent(t *testing.T) {
	e := newEnv(t, shopRules())
	s := newShop(t)
	ts := newShopToolset(t, e, s)
	ctx := e.task(t)
	conf := ts.NodeConfig()
	var err error
	if conf.Tools, err = ts.Tools(ctx); err != nil {
		t.Fatal(err)
	}
	m := newModel(callTools(
		toolCall("call-1", "lookup_order", `{"order":"O-1"}`),
		toolCall("call-2", "close_account", `{"order":"O-1"}`),
	), answer("done"))
	agent, err := react.NewAgent(ctx, &react.AgentConfig{ToolCallingModel: m, ToolsConfig: *conf})
	if err != nil {
		t.Fatal(err)
	}
	out, err := agent.Generate(ctx, []*schema.Message{schema.UserMessage("x")})
	if err != nil {
		t.Fatal(err)
	}
	var bound []string
	for _, i := range m.tools {
		bound = append(bound, i.Name)
	}
	if out.Content != "done" || !slices.Equal(bound, []string{"lookup_order", "refund"}) {
		t.Fatalf("answer %q, model bound to %v", out.Content, bound)
	}
	if got := m.toolResult(t, "call-1"); got != "order O-1: shipped" {
		t.Fatalf("the model got %q", got)
	}
	// close_account is not in the agent's ToolsNode: eino hands the call
	// to the UnknownToolsHandler, which denies it as a call of a tool the
	// node does not offer.
	if got := m.toolResult(t, "call-2"); !strings.Contains(got, `"close_account"`) || !strings.Contains(got, "denied") {
		t.Fatalf("the model got %q", got)
	}
	if s.lookup.runs.Load() != 1 || s.close.runs.Load() != 0 {
		t.Fatalf("runs: lookup %d, close %d", s.lookup.runs.Load(), s.close.runs.Load())
	}
	audittest.ExpectCount(t, e.calls(), audittest.Want{CallID: "call-2", Decision: audit.Deny, Step: agentguard.StepLookup}, 1)
	if n := len(e.calls()); n != 2 {
		t.Fatalf("%d tool-call records, want 2", n)
	}
	e.noCanary(t, m)
}

// Describe gives the descriptions New registers, for a policy schema made
// before the guard exists.
func TestDescribe(t *testing.T) {
	s := newShop(t)
	tools, err := einoguard.Describe(context.Background(), "shop", s.tools,
		einoguard.WithSpec("refund", einoguard.Spec{Risk: agentguard.RiskHigh, Credentials: shopCredential()}))
	if err != nil {
		t.Fatal(err)
	}
	if len(tools) != 3 || tools[1].Name != "refund" || tools[1].Toolset != "shop" || tools[1].Risk != agentguard.RiskHigh ||
		len(tools[1].Credentials) != 1 || tools[1].Handler != nil || !strings.Contains(string(tools[1].InputSchema), `"amount"`) {
		t.Fatalf("described %+v", tools[1])
	}
	if _, err := agentguard.PolicySchema(tools...); err != nil {
		t.Fatal(err)
	}
	if _, err := einoguard.Describe(context.Background(), "shop", s.tools, einoguard.WithSpec("nothing", einoguard.Spec{})); !errors.Is(err, einoguard.ErrInvalidToolset) {
		t.Fatalf("a spec of nothing: %v", err)
	}
}

// A tool of the toolset that runs a sub-agent: its own ToolsNode, built
// from the toolset but holding only some of its tools, in the context of
// the outer call. A call of a tool that node does not hold is denied as
// such; and a call of another tool through the toolset's registry, in that
// context, never runs the outer tool under the other tool's authorization
// and credentials.
func TestSubAgentCannotRunTheOuterToolAsAnother(t *testing.T) {
	e := newEnv(t, policytest.AllowAll())
	var outerRuns, secretRuns atomic.Int32
	var ts *einoguard.Toolset
	var outer tool.BaseTool
	var inner string
	var direct error
	outer, err := utils.InferTool("research", "Runs a sub-agent.", func(ctx context.Context, a orderArgs) (string, error) {
		if outerRuns.Add(1) > 1 {
			return "research ran again, with " + a.Order, nil
		}
		conf := ts.NodeConfig()
		conf.Tools = conf.Tools[:1] // research alone: no "secret"
		node, err := compose.NewToolNode(ctx, conf)
		if err != nil {
			return "", err
		}
		out, err := node.Invoke(ctx, &schema.Message{Role: schema.Assistant, ToolCalls: []schema.ToolCall{toolCall("inner-1", "secret", `{"order":"X"}`)}})
		if err != nil {
			return "", err
		}
		inner = out[0].Content
		_, direct = ts.Registry().Call(ctx, agentguard.Call{ID: "inner-2", Name: "secret", Args: json.RawMessage(`{"order":"Y"}`)})
		return "done", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := utils.InferTool("secret", "Reads a secret.", func(context.Context, orderArgs) (string, error) {
		secretRuns.Add(1)
		return "the secret", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ts, err = einoguard.New(context.Background(), e.Guard, "shop", []tool.BaseTool{outer, secret})
	if err != nil {
		t.Fatal(err)
	}
	ctx := e.task(t)
	node, err := compose.NewToolNode(ctx, ts.NodeConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Invoke(ctx, &schema.Message{Role: schema.Assistant, ToolCalls: []schema.ToolCall{toolCall("outer-1", "research", `{"order":"O-1"}`)}}); err != nil {
		t.Fatal(err)
	}
	if outerRuns.Load() != 1 || secretRuns.Load() != 0 {
		t.Fatalf("research ran %d times, secret %d times; want 1 and 0", outerRuns.Load(), secretRuns.Load())
	}
	if !strings.Contains(inner, `"secret"`) || !strings.Contains(inner, "denied") {
		t.Fatalf("the sub-agent's model got %q", inner)
	}
	audittest.ExpectCount(t, e.calls(), audittest.Want{CallID: "inner-1", Tool: "secret", Decision: audit.Deny, Step: agentguard.StepLookup}, 1)
	if direct == nil {
		t.Fatal("the direct call of secret succeeded")
	}
	audittest.ExpectNone(t, e.calls(), audittest.Want{CallID: "inner-2", Outcome: audit.OutcomeOK})
}
