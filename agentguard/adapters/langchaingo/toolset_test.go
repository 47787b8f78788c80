package langchainguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tmc/langchaingo/agents"
	"github.com/tmc/langchaingo/chains"
	"github.com/tmc/langchaingo/schema"
	"github.com/tmc/langchaingo/tools"

	"github.com/agentguard/go-sdk/agentguard"
	langchainguard "github.com/agentguard/go-sdk/agentguard/adapters/langchaingo"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/policy/policytest"
)

func TestNewErrors(t *testing.T) {
	e := newEnv(t, policytest.AllowAll())
	a := &fakeTool{name: "a", desc: "A."}
	for _, tc := range []struct {
		name  string
		g     *agentguard.Guard
		ts    []tools.Tool
		opts  []langchainguard.Option
		want  error
		check string
	}{
		{name: "nil guard", ts: []tools.Tool{a}, want: langchainguard.ErrNilGuard},
		{name: "nil tool", g: e.Guard, ts: []tools.Tool{a, nil}, want: langchainguard.ErrNilTool},
		{name: "names equal but for case", g: e.Guard, ts: []tools.Tool{a, &fakeTool{name: "A"}}, want: langchainguard.ErrDuplicateTool},
		{name: "spec of no tool", g: e.Guard, ts: []tools.Tool{a}, opts: []langchainguard.Option{langchainguard.WithSpec("b", langchainguard.Spec{})}, want: langchainguard.ErrUnknownSpec},
		{name: "schema not an object", g: e.Guard, ts: []tools.Tool{a}, opts: []langchainguard.Option{langchainguard.WithSpec("a", langchainguard.Spec{InputSchema: json.RawMessage(`[1]`)})}, want: langchainguard.ErrInvalidSpec},
		{name: "name the guard refuses", g: e.Guard, ts: []tools.Tool{&fakeTool{name: "no spaces please"}}, check: "register toolset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := langchainguard.New(tc.g, "s", tc.ts, tc.opts...)
			if set != nil || err == nil {
				t.Fatalf("New = %v, %v; want an error", set, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "langchainguard: ") || !strings.Contains(err.Error(), tc.check) {
				t.Errorf("error %q", err)
			}
		})
	}
}

// TestWrap: the guarded tools keep the names and descriptions registered,
// and a direct call (outside any agent) is guarded too.
func TestWrap(t *testing.T) {
	e := newEnv(t, supportRules())
	lookup, refund := supportTools()
	ts, err := langchainguard.Wrap(e.Guard, "support", []tools.Tool{lookup, refund})
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	if got := names(ts); !slices.Equal(got, []string{"lookup", "refund"}) || ts[0].Description() != lookup.desc {
		t.Fatalf("tools %q", got)
	}
	ctx := e.task(t)
	if out, err := ts[1].Call(ctx, "O-1"); err != nil || !strings.HasPrefix(out, `The call to tool "refund" was denied`) {
		t.Errorf("refund: %q, %v", out, err)
	}
	if out, err := ts[0].Call(ctx, "O-2"); err != nil || out != "lookup done: O-2" {
		t.Errorf("lookup: %q, %v", out, err)
	}
	if len(refund.Inputs()) != 0 || len(e.toolCalls()) != 2 {
		t.Errorf("refund ran %d times; %d records", len(refund.Inputs()), len(e.toolCalls()))
	}
}

// TestLockedToolsetHidesUnpinned: with a lock that pins nothing, the
// toolset lists no tool and every call is denied before it runs.
func TestLockedToolsetHidesUnpinned(t *testing.T) {
	e := newEnv(t, policytest.AllowAll(), agentguard.WithLock(agentguard.NewLock()))
	lookup, refund := supportTools()
	set := newSupportSet(t, e, lookup, refund)
	ctx := e.task(t)
	allowed, err := set.Allowed(ctx)
	if err != nil || len(allowed) != 0 {
		t.Fatalf("Allowed %q, %v; want none", names(allowed), err)
	}
	if got := len(set.Registry().Pending()); got != 2 {
		t.Errorf("%d tools pending review, want 2", got)
	}
	out, err := set.Tools()[0].Call(ctx, "O-1")
	if err != nil || !strings.Contains(out, "(integrity)") {
		t.Errorf("call: %q, %v; want an integrity denial", out, err)
	}
	if len(lookup.Inputs()) != 0 {
		t.Error("an unpinned tool ran")
	}
	audittest.Expect(t, e.toolCalls(), audittest.Want{Tool: "lookup", Decision: audit.Deny, Step: agentguard.StepIntegrity})
}

// TestAllowedRefusedWithoutTask: a listing for a task that has ended
// returns no tools.
func TestAllowedRefusedWithoutTask(t *testing.T) {
	e := newEnv(t, policytest.AllowAll())
	lookup, refund := supportTools()
	set := newSupportSet(t, e, lookup, refund)
	ctx, task, err := e.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if err := task.End(ctx); err != nil {
		t.Fatal(err)
	}
	if ts, err := set.Allowed(context.WithoutCancel(ctx)); err == nil || ts != nil || !errors.Is(err, agentguard.ErrTaskEnded) {
		t.Errorf("Allowed = %q, %v; want ErrTaskEnded", names(ts), err)
	}
}

// TestConcurrentRuns runs agents of one toolset in parallel, each in its
// task, sharing the call-ID handler: each call is guarded and recorded
// once, with its own ID.
func TestConcurrentRuns(t *testing.T) {
	e := newEnv(t, policytest.AllowAll())
	lookup, refund := supportTools()
	set := newSupportSet(t, e, lookup, refund)
	const runs = 8
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	for i := range runs {
		wg.Go(func() {
			ctx, task, err := e.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = task.End(context.Background()) }()
			order := fmt.Sprintf("O-%d", i)
			model := newModel(toolCall("id-"+order, "lookup", `{"__arg1":"`+order+`"}`), text("done"))
			agent := agents.NewOpenAIFunctionsAgent(model, set.Tools())
			_, err = chains.Run(ctx, agents.NewExecutor(set.Agent(agent), agents.WithCallbacksHandler(set.Callbacks())), "look")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(lookup.Inputs()) != runs || lookup.CredOK() != runs {
		t.Errorf("lookup ran %d times, %d with its credential; want %d", len(lookup.Inputs()), lookup.CredOK(), runs)
	}
	calls := e.toolCalls()
	for i := range runs {
		audittest.ExpectCount(t, calls, audittest.Want{CallID: fmt.Sprintf("id-O-%d", i), Decision: audit.Allow}, 1)
	}
	if len(calls) != runs || e.executeSpans()["lookup"] != runs {
		t.Errorf("%d records, %v spans; want %d", len(calls), e.executeSpans(), runs)
	}
}

// TestCallIDs: an action's ID goes to the call of its tool with its input
// (matched as the executor matches names, without regard to case), once;
// the IDs of actions whose tools were never called are dropped when the
// agent finishes.
func TestCallIDs(t *testing.T) {
	e := newEnv(t, policytest.AllowAll())
	lookup, refund := supportTools()
	set := newSupportSet(t, e, lookup, refund)
	ctx := e.task(t)
	h := set.Callbacks()
	h.HandleAgentAction(ctx, schema.AgentAction{Tool: "LOOKUP", ToolInput: "O-1\nObservation:", ToolID: "m-1"})
	h.HandleAgentAction(ctx, schema.AgentAction{Tool: "lookup", ToolInput: "O-2", ToolID: "m-2"})
	h.HandleAgentAction(ctx, schema.AgentAction{Tool: "refund", ToolInput: "O-3", ToolID: "stale"})
	h.HandleAgentFinish(ctx, schema.AgentFinish{})
	h.HandleAgentAction(ctx, schema.AgentAction{Tool: "lookup", ToolInput: "O-1", ToolID: "m-3"})
	lk := set.Tools()[0]
	for _, in := range []string{"O-1", "O-1", "O-2"} {
		if _, err := lk.Call(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := set.Tools()[1].Call(ctx, "O-3"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range e.toolCalls() {
		ids = append(ids, ev.CallID)
	}
	if len(ids) != 4 || ids[0] != "m-3" || slices.Contains(ids[1:], "m-1") || slices.Contains(ids, "m-2") || slices.Contains(ids, "stale") {
		t.Errorf("call IDs %q: want m-3, then IDs the guard made up", ids)
	}
	for _, id := range ids[1:] {
		if id == "" {
			t.Error("a call has no ID")
		}
	}
}

// TestDefinitions: the definitions are what New registers, without
// handlers, so they can type the Cedar schema before the guard exists.
func TestDefinitions(t *testing.T) {
	lookup, refund := supportTools()
	schema := json.RawMessage(`{"type":"object","properties":{"order":{"type":"string"}}}`)
	defs, err := langchainguard.Definitions("support", []tools.Tool{lookup, refund},
		langchainguard.WithSpec("refund", langchainguard.Spec{InputSchema: schema, Risk: agentguard.RiskHigh}))
	if err != nil {
		t.Fatalf("Definitions: %v", err)
	}
	if len(defs) != 2 || defs[0].Name != "lookup" || string(defs[0].InputSchema) != langchainguard.TextInputSchema ||
		defs[0].Description != lookup.desc || defs[0].Toolset != "support" {
		t.Fatalf("lookup's definition %+v", defs[0])
	}
	if string(defs[1].InputSchema) != string(schema) || defs[1].Risk != agentguard.RiskHigh {
		t.Errorf("refund's definition %+v", defs[1])
	}
	for _, d := range defs {
		if d.Handler != nil {
			t.Errorf("definition of %s has a handler", d.Name)
		}
	}
	if _, err := agentguard.PolicySchema(defs...); err != nil {
		t.Errorf("PolicySchema: %v", err)
	}
	if _, err := langchainguard.Definitions("support", []tools.Tool{lookup, lookup}); !errors.Is(err, langchainguard.ErrDuplicateTool) {
		t.Errorf("repeated tool: %v", err)
	}
}

// TestCallIDsByTask: an action's ID is given only to a call in its task.
func TestCallIDsByTask(t *testing.T) {
	e := newEnv(t, policytest.AllowAll())
	lookup, refund := supportTools()
	set := newSupportSet(t, e, lookup, refund)
	a, b := e.task(t), e.task(t)
	set.Callbacks().HandleAgentAction(b, schema.AgentAction{Tool: "lookup", ToolInput: "O-5", ToolID: "b-1"})
	set.Callbacks().HandleAgentFinish(a, schema.AgentFinish{}) // another task's finish keeps b's IDs
	for _, ctx := range []context.Context{a, b} {
		if _, err := set.Tools()[0].Call(ctx, "O-5"); err != nil {
			t.Fatal(err)
		}
	}
	calls := e.toolCalls()
	if len(calls) != 2 || calls[0].CallID == "b-1" || calls[1].CallID != "b-1" {
		t.Errorf("call IDs %q, %q: want a made-up one, then b-1", calls[0].CallID, calls[1].CallID)
	}
}
