package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// counted returns a tool whose handler counts its runs.
func counted(name string, runs *atomic.Int64) *agentguard.Tool {
	return &agentguard.Tool{
		Name: name,
		Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
			runs.Add(1)
			return &agentguard.Result{Output: "ok"}, nil
		},
	}
}

func TestNewRequiresIdentityAndPolicy(t *testing.T) {
	src := identity.NewStaticSource(identity.MustParse(agentguardtest.AgentID))
	if _, err := agentguard.New(agentguard.WithPolicy(policytest.AllowAll())); err == nil || !strings.Contains(err.Error(), "identity") {
		t.Errorf("New without identity: err = %v, want an error naming identity", err)
	}
	if _, err := agentguard.New(agentguard.WithIdentity(src)); err == nil || !strings.Contains(err.Error(), "policy") {
		t.Errorf("New without policy: err = %v, want an error naming policy", err)
	}
	g, err := agentguard.New(agentguard.WithIdentity(src), agentguard.WithPolicy(policytest.AllowAll()))
	if err != nil {
		t.Fatalf("New with both: %v", err)
	}
	_ = g.Close(context.Background())
}

// TestPipelineOrder checks that the steps run in DESIGN.md's order, each once.
func TestPipelineOrder(t *testing.T) {
	var mu sync.Mutex
	var steps []string
	step := func(s string) {
		mu.Lock()
		steps = append(steps, s)
		mu.Unlock()
	}
	broker := credentials.NewBroker(credentials.WithProvider("p", credentials.NewStaticProvider("v")))
	g, err := agentguard.New(
		agentguard.WithIdentity(identity.SourceFunc(func(context.Context) (identity.Identity, error) {
			step("identify")
			return identity.MustParse(agentguardtest.AgentID), nil
		})),
		agentguard.WithIntegrity(agentguard.IntegrityFunc(func(context.Context, *agentguard.Tool) error {
			step("integrity")
			return nil
		})),
		agentguard.WithPolicy(policytest.Func(func(*policy.Request) policy.Decision {
			step("authorize")
			return policy.Decision{Allowed: true, Policies: []string{"p1"},
				Obligations: []policy.Obligation{{Name: policy.ObligationApproval, Value: "one", PolicyID: "p1"}}}
		})),
		agentguard.WithApprover(agentguard.ApproverFunc(func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			step("approve")
			return req.Grant("alice"), nil
		})),
		agentguard.WithBroker(brokerFunc{
			lease: func(ctx context.Context, r credentials.Request) (*credentials.Credential, error) {
				step("credential")
				return broker.Lease(ctx, r)
			},
			revoke: broker.Revoke,
		}),
		agentguard.WithAudit(audit.SinkFunc(func(_ context.Context, e audit.Event) error {
			if e.Kind == audit.KindToolCall {
				step("record")
			}
			return nil
		})),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	tool := &agentguard.Tool{
		Name:        "t",
		Credentials: []credentials.Requirement{{Name: "c", Provider: "p"}},
		Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
			if _, ok := credentials.FromContext(ctx, "c"); !ok {
				t.Error("handler: credential not in context")
			}
			step("execute")
			return &agentguard.Result{}, nil
		},
	}
	if _, err := g.Invoke(context.Background(), tool, agentguard.Call{Args: json.RawMessage(`{}`)}); err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	// After a granted approval, policy decides again on the task's current
	// state and with context.approval set.
	want := []string{"identify", "integrity", "authorize", "approve", "authorize", "credential", "execute", "record"}
	if !slices.Equal(steps, want) {
		t.Errorf("steps = %v, want %v", steps, want)
	}
}

type brokerFunc struct {
	lease  func(context.Context, credentials.Request) (*credentials.Credential, error)
	revoke func(context.Context, string) ([]credentials.Revocation, error)
}

func (b brokerFunc) Lease(ctx context.Context, r credentials.Request) (*credentials.Credential, error) {
	return b.lease(ctx, r)
}
func (b brokerFunc) Revoke(ctx context.Context, id string) ([]credentials.Revocation, error) {
	return b.revoke(ctx, id)
}

// TestFailClosed checks that every step that cannot complete denies the call
// with its own error, never runs the tool, and is audited.
func TestFailClosed(t *testing.T) {
	boom := errors.New("boom")
	failingBroker := brokerFunc{
		lease: func(context.Context, credentials.Request) (*credentials.Credential, error) {
			return nil, errors.New("token endpoint returned 500")
		},
		revoke: func(context.Context, string) ([]credentials.Revocation, error) { return nil, nil },
	}
	needsCred := []credentials.Requirement{{Name: "api", Provider: agentguardtest.StaticProvider}}
	tests := []struct {
		name     string
		engine   policy.Engine
		opts     []agentguard.Option
		creds    []credentials.Requirement
		args     string
		wantErr  error
		wantStep string
	}{
		{name: "no identity", opts: []agentguard.Option{agentguard.WithIdentity(identity.SourceFunc(
			func(context.Context) (identity.Identity, error) { return identity.Identity{}, boom }))},
			wantErr: agentguard.ErrNoIdentity, wantStep: agentguard.StepIdentify},
		{name: "zero identity", opts: []agentguard.Option{agentguard.WithIdentity(identity.NewStaticSource(identity.Identity{}))},
			wantErr: agentguard.ErrNoIdentity, wantStep: agentguard.StepIdentify},
		{name: "integrity", opts: []agentguard.Option{agentguard.WithIntegrity(agentguard.IntegrityFunc(
			func(context.Context, *agentguard.Tool) error { return boom }))},
			wantErr: agentguard.ErrIntegrity, wantStep: agentguard.StepIntegrity},
		{name: "policy engine error", engine: policy.EngineFunc(func(context.Context, *policy.Request) (policy.Decision, error) {
			return policy.Decision{}, boom
		}), wantErr: agentguard.ErrPolicy, wantStep: agentguard.StepAuthorize},
		{name: "policy denies", engine: policytest.DenyAll("not today"), wantErr: agentguard.ErrDenied, wantStep: agentguard.StepAuthorize},
		{name: "unknown obligation", engine: policytest.Func(func(*policy.Request) policy.Decision {
			return policy.Decision{Allowed: true, Obligations: []policy.Obligation{{Name: "notify", Value: "x", PolicyID: "p"}}}
		}), wantErr: agentguard.ErrObligation, wantStep: agentguard.StepObligation},
		{name: "approval without approver", engine: policytest.NewRules(policytest.Rule{ID: "r", Approval: "one"}),
			wantErr: agentguard.ErrApprovalRequired, wantStep: agentguard.StepApprove},
		{name: "approval refused", engine: policytest.NewRules(policytest.Rule{ID: "r", Approval: "one"}),
			opts: []agentguard.Option{agentguard.WithApprover(agentguard.ApproverFunc(func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
				return req.Refuse("no", "bob"), nil
			}))}, wantErr: agentguard.ErrApprovalRequired, wantStep: agentguard.StepApprove},
		{name: "approver error", engine: policytest.NewRules(policytest.Rule{ID: "r", Approval: "one"}),
			opts: []agentguard.Option{agentguard.WithApprover(agentguard.ApproverFunc(func(context.Context, *agentguard.ApprovalRequest) (agentguard.Approval, error) {
				return agentguard.Approval{}, boom
			}))}, wantErr: agentguard.ErrApprovalRequired, wantStep: agentguard.StepApprove},
		{name: "credential provider fails", creds: needsCred, opts: []agentguard.Option{agentguard.WithBroker(failingBroker)},
			wantErr: agentguard.ErrCredential, wantStep: agentguard.StepCredential},
		{name: "unknown credential provider", creds: []credentials.Requirement{{Name: "api", Provider: "nope"}},
			wantErr: agentguard.ErrCredential, wantStep: agentguard.StepCredential},
		{name: "invalid JSON", args: `{"a":`, wantErr: agentguard.ErrInvalidArguments, wantStep: agentguard.StepArguments},
		{name: "arguments not an object", args: `[1,2]`, wantErr: agentguard.ErrInvalidArguments, wantStep: agentguard.StepArguments},
		{name: "repeated key", args: `{"amount":1,"amount":1000}`, wantErr: agentguard.ErrInvalidArguments, wantStep: agentguard.StepArguments},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr := tracetest.NewSpanRecorder()
			opts := append([]agentguard.Option{agentguard.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr)))}, tt.opts...)
			env := agentguardtest.New(t, tt.engine, "secret-value", opts...)
			var runs atomic.Int64
			tool := counted("tool", &runs)
			tool.Credentials = tt.creds
			args := tt.args
			if args == "" {
				args = `{}`
			}
			_, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{ID: "c1", Args: json.RawMessage(args)})
			if !errors.Is(err, agentguard.ErrDenied) || !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want ErrDenied and %v", err, tt.wantErr)
			}
			var de *agentguard.DenyError
			if !errors.As(err, &de) || de.Step != tt.wantStep || de.CallID != "c1" {
				t.Fatalf("DenyError = %+v, want step %q, call c1", de, tt.wantStep)
			}
			if runs.Load() != 0 {
				t.Errorf("tool ran %d times after a denial", runs.Load())
			}
			evs := env.Audit.Kind(audit.KindToolCall)
			if len(evs) != 1 {
				t.Fatalf("audit: %d tool_call events, want 1", len(evs))
			}
			if e := evs[0]; e.Decision != audit.Deny || e.Outcome != audit.OutcomeDenied || e.Step != tt.wantStep || e.CallID != "c1" || e.Error == "" {
				t.Errorf("audit event = %+v, want a denial at %s", e, tt.wantStep)
			}
			spans := sr.Ended()
			if len(spans) != 1 || spans[0].Status().Code != codes.Error {
				t.Fatalf("want one span with error status, got %d", len(spans))
			}
		})
	}
}

// TestCedarEvaluationErrorDenies: a policy that fails to evaluate denies the
// call even though another policy permits it.
func TestCedarEvaluationErrorDenies(t *testing.T) {
	set := policy.MustParseSet("p.cedar", `
@id("allow-refund") permit(principal, action == Action::"refund", resource);
@id("broken-forbid") forbid(principal, action == Action::"refund", resource) when { context.args.customer.vip == false };
`)
	engine, err := policy.NewCedarEngine(set)
	if err != nil {
		t.Fatal(err)
	}
	env := agentguardtest.New(t, engine, "v")
	var runs atomic.Int64
	// customer is missing, so broken-forbid errors: it might have forbidden.
	_, err = env.Guard.Invoke(context.Background(), counted("refund", &runs), agentguard.Call{Args: json.RawMessage(`{"amount":5}`)})
	var de *agentguard.DenyError
	if !errors.As(err, &de) || !errors.Is(err, agentguard.ErrPolicy) || !slices.Equal(de.Policies, []string{"broken-forbid"}) {
		t.Fatalf("err = %v, want a denial by broken-forbid wrapping ErrPolicy", err)
	}
	if runs.Load() != 0 {
		t.Error("tool ran")
	}
	// With the attribute present, the same policies allow.
	if _, err := env.Guard.Invoke(context.Background(), counted("refund", &runs), agentguard.Call{Args: json.RawMessage(`{"amount":5,"customer":{"vip":true}}`)}); err != nil {
		t.Fatalf("with customer: %v", err)
	}
	if runs.Load() != 1 {
		t.Errorf("tool ran %d times, want 1", runs.Load())
	}
}

// TestStrictAudit: a failing sink fails the call in strict mode (the result
// is withheld) and is only logged in best-effort mode.
func TestStrictAudit(t *testing.T) {
	t.Run("strict allowed call", func(t *testing.T) {
		env := agentguardtest.New(t, nil, "v")
		var runs atomic.Int64
		// Pinned first: a pin on first use is not made without its record.
		if _, err := env.Guard.Invoke(context.Background(), counted("t", &runs), agentguard.Call{}); err != nil {
			t.Fatal(err)
		}
		env.Audit.Fail(nil)
		res, err := env.Guard.Invoke(context.Background(), counted("t", &runs), agentguard.Call{})
		var de *agentguard.DenyError
		if res != nil || !errors.Is(err, agentguard.ErrAudit) || !errors.As(err, &de) || de.Step != agentguard.StepAudit {
			t.Fatalf("res, err = %v, %v; want nil and a denial at the audit step", res, err)
		}
	})
	t.Run("strict denied call", func(t *testing.T) {
		env := agentguardtest.New(t, policytest.DenyAll("no"), "v")
		env.Audit.Fail(nil)
		var runs atomic.Int64
		_, err := env.Guard.Invoke(context.Background(), counted("t", &runs), agentguard.Call{})
		if !errors.Is(err, agentguard.ErrDenied) || !errors.Is(err, agentguard.ErrAudit) {
			t.Fatalf("err = %v, want ErrDenied and ErrAudit", err)
		}
		if runs.Load() != 0 {
			t.Error("tool ran")
		}
	})
	t.Run("strict task start", func(t *testing.T) {
		env := agentguardtest.New(t, nil, "v")
		env.Audit.Fail(nil)
		if _, _, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{}); !errors.Is(err, agentguard.ErrAudit) {
			t.Fatalf("StartTask err = %v, want ErrAudit", err)
		}
	})
	t.Run("best effort", func(t *testing.T) {
		var logs syncBuffer
		env := agentguardtest.New(t, nil, "v", agentguard.WithBestEffortAudit(), agentguard.WithLogger(logs.logger()))
		env.Audit.Fail(nil)
		var runs atomic.Int64
		res, err := env.Guard.Invoke(context.Background(), counted("t", &runs), agentguard.Call{ID: "c9"})
		if err != nil || res == nil {
			t.Fatalf("best effort: res, err = %v, %v; want a result", res, err)
		}
		if out := logs.String(); !strings.Contains(out, "audit record not written") || !strings.Contains(out, "c9") {
			t.Errorf("log = %q, want a warning naming the call", out)
		}
	})
}

// TestTaskStateReachesPolicy: calls, tools used and taint are what Cedar
// sees as context.task, and policies act on them.
func TestTaskStateReachesPolicy(t *testing.T) {
	set := policy.MustParseSet("task.cedar", `
@id("allow-all-tools") permit(principal, action in Action::"call_tool", resource);
@id("no-email-after-pii") forbid(principal, action == Action::"send_email", resource)
  when { context.task.taint.contains("pii") };
@id("budget") forbid(principal, action, resource) when { context.task.calls >= 3 };
@id("lookup-first") forbid(principal, action == Action::"refund", resource)
  unless { context.task.tools_used.contains("lookup_customer") };
`)
	cedarEngine, err := policy.NewCedarEngine(set)
	if err != nil {
		t.Fatal(err)
	}
	rec := policytest.Record(cedarEngine)
	env := agentguardtest.New(t, rec, "v")
	ok := func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
		return &agentguard.Result{Output: "done"}, nil
	}
	reg := env.Guard.NewRegistry("crm")
	err = reg.Register(
		&agentguard.Tool{Name: "send_email", Handler: ok},
		&agentguard.Tool{Name: "lookup_customer", OutputLabels: []string{"pii"}, Handler: ok},
		&agentguard.Tool{Name: "refund", Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
			return &agentguard.Result{Labels: []string{"financial"}}, nil
		}},
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t1", Purpose: "support"})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())

	steps := []struct {
		tool    string
		allowed bool
		policy  string
	}{
		{"refund", false, "lookup-first"},       // nothing used yet
		{"send_email", true, "allow-all-tools"}, // no taint yet
		{"lookup_customer", true, "allow-all-tools"},
		{"send_email", false, "no-email-after-pii"}, // taint pii now
		{"refund", true, "allow-all-tools"},         // third executed call
		{"send_email", false, "budget"},             // calls = 3
	}
	for i, s := range steps {
		_, err := reg.Call(ctx, agentguard.Call{Name: s.tool})
		var de *agentguard.DenyError
		switch {
		case s.allowed && err != nil:
			t.Fatalf("step %d %s: %v, want allowed", i, s.tool, err)
		case !s.allowed && (!errors.As(err, &de) || !slices.Contains(de.Policies, s.policy)):
			t.Fatalf("step %d %s: err = %v, want denial by %s", i, s.tool, err, s.policy)
		}
	}
	calls := rec.Calls()
	if len(calls) != len(steps) {
		t.Fatalf("policy saw %d calls, want %d", len(calls), len(steps))
	}
	last := calls[len(calls)-1].Task
	if last.ID != "t1" || last.Purpose != "support" || last.Calls != 3 ||
		!slices.Equal(last.ToolsUsed, []string{"lookup_customer", "refund", "send_email"}) ||
		!slices.Equal(last.Taint, []string{"financial", "pii"}) {
		t.Errorf("task state seen by policy = %+v", last)
	}
	if got := task.Taint(); !slices.Equal(got, []string{"financial", "pii"}) {
		t.Errorf("task.Taint() = %v", got)
	}
}

// TestListHidesForbiddenTools: a listing shows only the tools policy could
// allow for this agent and task.
func TestListHidesForbiddenTools(t *testing.T) {
	set := policy.MustParseSet("list.cedar", `
@id("read") permit(principal, action == Action::"read_ticket", resource);
@id("refund") permit(principal in AgentGroup::"support", action == Action::"refund", resource)
  when { context.args.amount <= 100 };
@id("email") permit(principal, action == Action::"send_email", resource);
@id("email-not-after-pii") forbid(principal, action == Action::"send_email", resource)
  when { context.task.taint.contains("pii") };
@id("email-domain") forbid(principal, action == Action::"send_email", resource)
  when { context.args.to like "*@competitor.example" };
`)
	noop := func(context.Context, json.RawMessage) (*agentguard.Result, error) { return &agentguard.Result{}, nil }
	tools := []*agentguard.Tool{
		{Name: "read_ticket", Handler: noop, OutputLabels: []string{"pii"}},
		{Name: "refund", Handler: noop},
		{Name: "send_email", Handler: noop},
		{Name: "delete_account", Handler: noop},
	}
	names := func(ts []*agentguard.Tool) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Name)
		}
		return out
	}
	tests := []struct {
		agent  string
		groups map[string][]string
		taint  bool
		want   []string
	}{
		{agent: "spiffe://example.org/agent/helper", want: []string{"read_ticket", "send_email"}},
		{agent: "spiffe://example.org/agent/support", groups: map[string][]string{"spiffe://example.org/agent/support": {"support"}},
			want: []string{"read_ticket", "refund", "send_email"}},
		{agent: "spiffe://example.org/agent/helper", taint: true, want: []string{"read_ticket"}},
	}
	for _, tt := range tests {
		engine, err := policy.NewCedarEngine(set, policy.WithAgentGroups(tt.groups))
		if err != nil {
			t.Fatal(err)
		}
		env := agentguardtest.New(t, engine, "v", agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(tt.agent))))
		reg := env.Guard.NewRegistry("helpdesk")
		if err := reg.Register(tools...); err != nil {
			t.Fatal(err)
		}
		ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
		if err != nil {
			t.Fatal(err)
		}
		if tt.taint {
			if _, err := reg.Call(ctx, agentguard.Call{Name: "read_ticket"}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := reg.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names(got), tt.want) {
			t.Errorf("%s (taint %v): List = %v, want %v", tt.agent, tt.taint, names(got), tt.want)
		}
		_ = task.End(context.Background())
	}
}

func TestListFailsWithoutIdentity(t *testing.T) {
	env := agentguardtest.New(t, nil, "v", agentguard.WithIdentity(identity.NewStaticSource(identity.Identity{})))
	reg := env.Guard.NewRegistry("x")
	var runs atomic.Int64
	if err := reg.Register(counted("a", &runs)); err != nil {
		t.Fatal(err)
	}
	if tools, err := reg.List(context.Background()); !errors.Is(err, agentguard.ErrNoIdentity) || tools != nil {
		t.Fatalf("List = %v, %v; want ErrNoIdentity", tools, err)
	}
}

func TestRegistry(t *testing.T) {
	env := agentguardtest.New(t, nil, "v")
	reg := env.Guard.NewRegistry("ops")
	var runs atomic.Int64
	if err := reg.Register(counted("a", &runs)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*agentguard.Tool{
		counted("a", &runs),         // duplicate
		counted("delegate", &runs),  // reserved
		counted("has space", &runs), // bad name
		{Name: "nohandler"},         // no handler
		{Name: "badschema", InputSchema: json.RawMessage(`{`), Handler: counted("x", &runs).Handler},
	} {
		if err := reg.Register(bad); err == nil {
			t.Errorf("Register(%q) succeeded", bad.Name)
		}
	}
	if got, _ := reg.Lookup("a"); got == nil || got.Toolset != "ops" {
		t.Errorf("Lookup(a) = %+v, want toolset ops", got)
	}
	_, err := reg.Call(context.Background(), agentguard.Call{ID: "u1", Name: "rm_rf"})
	if !errors.Is(err, agentguard.ErrUnknownTool) || !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("unknown tool: err = %v", err)
	}
	if e, _ := env.Audit.Last(); e.Tool != "rm_rf" || e.Step != agentguard.StepLookup || e.Decision != audit.Deny || e.CallID != "u1" || e.Agent != agentguardtest.AgentID {
		t.Errorf("unknown tool audit = %+v", e)
	}
	if _, err := reg.Call(context.Background(), agentguard.Call{Name: "a", Args: json.RawMessage(`{"x":1}`)}); err != nil || runs.Load() != 1 {
		t.Fatalf("Call(a) = %v, runs %d", err, runs.Load())
	}
}

func TestToolErrorAndPanicAreAudited(t *testing.T) {
	env := agentguardtest.New(t, nil, "v")
	fail := &agentguard.Tool{Name: "fail", Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
		return nil, errors.New("disk full")
	}}
	_, err := env.Guard.Invoke(context.Background(), fail, agentguard.Call{})
	var te *agentguard.ToolError
	if !errors.As(err, &te) || errors.Is(err, agentguard.ErrDenied) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v, want a ToolError that is not a denial", err)
	}
	if e, _ := env.Audit.Last(); e.Decision != audit.Allow || e.Outcome != audit.OutcomeError || !strings.Contains(e.Error, "disk full") {
		t.Errorf("audit = %+v", e)
	}
	boom := &agentguard.Tool{Name: "boom", Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
		panic("kaboom")
	}}
	if _, err := env.Guard.Invoke(context.Background(), boom, agentguard.Call{}); !errors.As(err, &te) || !strings.Contains(err.Error(), "kaboom") {
		t.Fatalf("panic: err = %v", err)
	}
	if e, _ := env.Audit.Last(); e.Tool != "boom" || e.Outcome != audit.OutcomeError {
		t.Errorf("panic audit = %+v", e)
	}
}

func TestHandlerGetsCanonicalArgs(t *testing.T) {
	env := agentguardtest.New(t, nil, "v")
	var got string
	tool := &agentguard.Tool{Name: "t", Handler: func(_ context.Context, args json.RawMessage) (*agentguard.Result, error) {
		got = string(args)
		return &agentguard.Result{}, nil
	}}
	h, err := env.Guard.Wrap(tool)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h(context.Background(), json.RawMessage(` { "b": 1, "a": "<x>" } `)); err != nil {
		t.Fatal(err)
	}
	if got != `{"a":"<x>","b":1}` {
		t.Errorf("handler got %s", got)
	}
	e, _ := env.Audit.Last()
	if e.ArgsDigest == "" || strings.Contains(fmt.Sprint(e), "<x>") {
		t.Errorf("audit holds %+v; want a digest and not the arguments", e)
	}
}

func TestSpan(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	env := agentguardtest.New(t, policytest.NewRules(policytest.Rule{ID: "ok", Tool: "lookup"}), "v",
		agentguard.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))))
	tool := &agentguard.Tool{Name: "lookup", Description: "Look a thing up", Toolset: "kb",
		Credentials: []credentials.Requirement{{Name: "kb", Provider: agentguardtest.StaticProvider, Audience: "kb.example", Scopes: []string{"read"}}},
		Handler:     func(context.Context, json.RawMessage) (*agentguard.Result, error) { return &agentguard.Result{}, nil }}
	if _, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{ID: "call-7"}); err != nil {
		t.Fatal(err)
	}
	denied := *tool
	denied.Name = "other"
	_, _ = env.Guard.Invoke(context.Background(), &denied, agentguard.Call{ID: "call-8"})

	spans := sr.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	s := spans[0]
	if s.Name() != "execute_tool lookup" || s.SpanKind() != trace.SpanKindInternal || s.Status().Code == codes.Error {
		t.Errorf("span %q kind %v status %v", s.Name(), s.SpanKind(), s.Status())
	}
	attrs := map[string]string{}
	for _, a := range s.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	for k, v := range map[string]string{
		"gen_ai.operation.name":   "execute_tool",
		"gen_ai.tool.name":        "lookup",
		"gen_ai.tool.call.id":     "call-7",
		"gen_ai.tool.description": "Look a thing up",
		"gen_ai.agent.id":         agentguardtest.AgentID,
		"agentguard.decision":     "allow",
		"agentguard.policies":     `["ok"]`,
	} {
		if attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], v)
		}
	}
	var evNames []string
	for _, e := range s.Events() {
		evNames = append(evNames, e.Name)
	}
	if !slices.Equal(evNames, []string{agentguard.EventAuthorize, agentguard.EventCredential}) {
		t.Errorf("span events = %v", evNames)
	}
	if d := spans[1]; d.Status().Code != codes.Error || !strings.Contains(d.Status().Description, "denied") {
		t.Errorf("denied span status = %v", d.Status())
	}
	evs := env.Audit.Kind(audit.KindToolCall)
	if evs[0].TraceID != s.SpanContext().TraceID().String() || evs[0].SpanID != s.SpanContext().SpanID().String() {
		t.Errorf("audit trace/span = %s/%s, span %s/%s", evs[0].TraceID, evs[0].SpanID, s.SpanContext().TraceID(), s.SpanContext().SpanID())
	}
}

// TestDelegationAttenuation: a sub-agent's call is allowed only if every
// agent up its chain may make it too.
func TestDelegationAttenuation(t *testing.T) {
	const root, mid, sub = "spiffe://example.org/agent/root", "spiffe://example.org/agent/mid", "spiffe://example.org/agent/sub"
	engine := policytest.NewRules(
		policytest.Rule{ID: "sub-all", Agent: sub},
		policytest.Rule{ID: "root-search", Agent: root, Tool: "search"},
		policytest.Rule{ID: "root-pay", Agent: root, Tool: "pay"},
		policytest.Rule{ID: "mid-search", Agent: mid, Tool: "search"},
	)
	env := agentguardtest.New(t, engine, "v",
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(sub, root, mid))))
	var runs atomic.Int64
	reg := env.Guard.NewRegistry("x")
	if err := reg.Register(counted("search", &runs), counted("pay", &runs), counted("delete", &runs)); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Call(context.Background(), agentguard.Call{Name: "search"}); err != nil {
		t.Fatalf("search, allowed for the whole chain: %v", err)
	}
	_, err := reg.Call(context.Background(), agentguard.Call{Name: "pay"})
	var de *agentguard.DenyError
	if !errors.As(err, &de) || !strings.Contains(de.Reason, mid) {
		t.Fatalf("pay, which mid may not make: err = %v, want a denial naming %s", err, mid)
	}
	if runs.Load() != 1 {
		t.Errorf("tools ran %d times, want 1", runs.Load())
	}
	// The chain reached policy as the sub-agent's delegation context.
	q := engine.Calls()[0]
	if q.Agent.ID.String() != sub || q.Agent.Depth() != 2 {
		t.Errorf("first request agent = %v", q.Agent)
	}
	visible, err := reg.List(context.Background())
	if err != nil || len(visible) != 1 || visible[0].Name != "search" {
		t.Errorf("List = %v, %v; want only search", visible, err)
	}
	if e, _ := env.Audit.Last(); len(e.Chain) != 2 || e.Chain[0] != root {
		t.Errorf("audit chain = %v", e.Chain)
	}
}
