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

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// These tests check obligations other than approval: a deciding permit's
// annotation that the engine reports as an obligation
// (policy.WithObligations) and the guard fulfils with an ObligationFunc
// (agentguard.WithObligation), with real Cedar engines.

const auditCopyPolicies = `
@id("refund-with-copy") @audit_copy("security")
permit(principal, action == Action::"refund", resource);
`

// obligationCall is one call of an ObligationFunc, as it saw it.
type obligationCall struct {
	o      policy.Obligation
	call   agentguard.Call
	taskID string
	hasTsk bool
}

// obligationLog records the calls of ObligationFuncs and the order of
// events around them, safely for concurrent use.
type obligationLog struct {
	mu     sync.Mutex
	calls  []obligationCall
	events []string
}

func (l *obligationLog) note(ev string) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

func (l *obligationLog) Events() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func (l *obligationLog) Calls() []obligationCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// handler returns an ObligationFunc that records its calls and returns err.
func (l *obligationLog) handler(err error) agentguard.ObligationFunc {
	return func(ctx context.Context, o policy.Obligation, c agentguard.Call) error {
		task, ok := agentguard.TaskFromContext(ctx)
		oc := obligationCall{o: o, call: c, hasTsk: ok}
		if ok {
			oc.taskID = task.ID()
		}
		l.mu.Lock()
		l.calls = append(l.calls, oc)
		l.events = append(l.events, "obligation "+o.Name)
		l.mu.Unlock()
		return err
	}
}

// loggedTool is a tool that notes its runs in l and keeps its arguments.
func loggedTool(name string, l *obligationLog, runs *atomic.Int64, args *string) *agentguard.Tool {
	return &agentguard.Tool{Name: name, Handler: func(_ context.Context, a json.RawMessage) (*agentguard.Result, error) {
		runs.Add(1)
		l.note("execute")
		if args != nil {
			*args = string(a)
		}
		return &agentguard.Result{Output: "ok"}, nil
	}}
}

// TestObligationFulfilled: the handler of an obligation is called once
// with the obligation and the call as policy saw it, then the tool runs.
func TestObligationFulfilled(t *testing.T) {
	set := policy.MustParseSet("p.cedar", auditCopyPolicies)
	var log obligationLog
	env := newRolloutEnv(t, mustCedar(t, set, policy.WithObligations("audit_copy")),
		agentguard.WithObligation("audit_copy", log.handler(nil)))
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "task-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())

	var runs atomic.Int64
	var toolArgs string
	_, err = env.Guard.Invoke(ctx, loggedTool("refund", &log, &runs, &toolArgs),
		agentguard.Call{ID: "call-42", Args: json.RawMessage(` { "b": 1, "a": "<x>" } `)})
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if runs.Load() != 1 {
		t.Fatalf("tool ran %d times, want 1", runs.Load())
	}
	calls := log.Calls()
	if len(calls) != 1 {
		t.Fatalf("obligation handler called %d times, want 1", len(calls))
	}
	c := calls[0]
	if want := (policy.Obligation{Name: "audit_copy", Value: "security", PolicyID: "refund-with-copy"}); c.o != want {
		t.Errorf("obligation = %+v, want %+v", c.o, want)
	}
	if toolArgs != `{"a":"<x>","b":1}` {
		t.Errorf("tool got args %s, want the canonical JSON", toolArgs)
	}
	if string(c.call.Args) != toolArgs || c.call.ID != "call-42" || c.call.Name != "refund" {
		t.Errorf("handler's call = {ID %q Name %q Args %s}; want call-42, refund, %s", c.call.ID, c.call.Name, c.call.Args, toolArgs)
	}
	if !c.hasTsk || c.taskID != "task-1" {
		t.Errorf("handler's context task = %q (present %v), want task-1", c.taskID, c.hasTsk)
	}
	if got := log.Events(); !slices.Equal(got, []string{"obligation audit_copy", "execute"}) {
		t.Errorf("order = %v, want the obligation before the tool", got)
	}
	rec, ok := env.Audit.Last()
	if !ok || rec.Kind != audit.KindToolCall || rec.Decision != audit.Allow || rec.Outcome != audit.OutcomeOK ||
		!slices.Equal(rec.Policies, []string{"refund-with-copy"}) || rec.Revision != set.Digest() {
		t.Errorf("record = %+v; want allowed and run, by refund-with-copy", rec)
	}

	// A call with a generated ID: the handler sees that ID, the one recorded.
	if _, err := env.Guard.Invoke(ctx, loggedTool("refund", &log, &runs, nil), agentguard.Call{Args: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	calls = log.Calls()
	rec, _ = env.Audit.Last()
	if len(calls) != 2 || calls[1].call.ID == "" || calls[1].call.ID != rec.CallID {
		t.Errorf("generated call ID: handler saw %q, record has %q", calls[len(calls)-1].call.ID, rec.CallID)
	}
}

// TestObligationRefused: a handler's error denies the call at the
// obligation step, before the tool runs.
func TestObligationRefused(t *testing.T) {
	set := policy.MustParseSet("p.cedar", auditCopyPolicies)
	errCopy := errors.New("copy service unreachable")
	var log obligationLog
	env := newRolloutEnv(t, mustCedar(t, set, policy.WithObligations("audit_copy")),
		agentguard.WithObligation("audit_copy", log.handler(errCopy)))
	var runs atomic.Int64
	_, err := env.Guard.Invoke(context.Background(), loggedTool("refund", &log, &runs, nil), agentguard.Call{ID: "c1", Args: json.RawMessage(`{}`)})
	if !errors.Is(err, agentguard.ErrDenied) || !errors.Is(err, agentguard.ErrObligation) || !errors.Is(err, errCopy) {
		t.Fatalf("err = %v; want ErrDenied, ErrObligation and the handler's error", err)
	}
	var de *agentguard.DenyError
	if !errors.As(err, &de) || de.Step != agentguard.StepObligation || de.CallID != "c1" ||
		!slices.Equal(de.Policies, []string{"refund-with-copy"}) {
		t.Fatalf("DenyError = %+v; want step obligation, call c1, policy refund-with-copy", de)
	}
	if !strings.Contains(de.Reason, "@audit_copy") || !strings.Contains(de.Reason, "refund-with-copy") ||
		!strings.Contains(err.Error(), "copy service unreachable") {
		t.Errorf("error %q: want the obligation, its policy and the handler's error named", err)
	}
	if runs.Load() != 0 {
		t.Errorf("tool ran %d times after the obligation failed", runs.Load())
	}
	if len(log.Calls()) != 1 {
		t.Errorf("handler called %d times, want 1", len(log.Calls()))
	}
	evs := env.Audit.Kind(audit.KindToolCall)
	if len(evs) != 1 {
		t.Fatalf("%d tool_call records, want 1", len(evs))
	}
	rec := evs[0]
	if rec.Decision != audit.Deny || rec.Outcome != audit.OutcomeDenied || rec.Step != agentguard.StepObligation ||
		rec.CallID != "c1" || !slices.Equal(rec.Policies, []string{"refund-with-copy"}) || rec.Revision != set.Digest() ||
		!strings.Contains(rec.Error, "copy service unreachable") {
		t.Errorf("record = %+v; want a denial at the obligation step", rec)
	}
	spans := env.spans.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	if spans[0].Status().Code != codes.Error {
		t.Errorf("span status %v, want an error", spans[0].Status())
	}
	if v, _ := spanAttr(spans[0], string(agentguard.AttrStep)); v.AsString() != agentguard.StepObligation {
		t.Errorf("span %s = %q, want obligation", agentguard.AttrStep, v.Emit())
	}
	if v, _ := spanAttr(spans[0], string(agentguard.AttrDecision)); v.AsString() != audit.Deny {
		t.Errorf("span %s = %q, want deny", agentguard.AttrDecision, v.Emit())
	}
}

// TestObligationWithoutHandler: an obligation the guard cannot fulfil
// denies the call (fail closed).
func TestObligationWithoutHandler(t *testing.T) {
	set := policy.MustParseSet("p.cedar", auditCopyPolicies)
	var log obligationLog
	// A handler for another obligation does not count.
	env := newRolloutEnv(t, mustCedar(t, set, policy.WithObligations("audit_copy")),
		agentguard.WithObligation("notify", log.handler(nil)))
	var runs atomic.Int64
	_, err := env.Guard.Invoke(context.Background(), loggedTool("refund", &log, &runs, nil), agentguard.Call{Args: json.RawMessage(`{}`)})
	var de *agentguard.DenyError
	if !errors.Is(err, agentguard.ErrDenied) || !errors.Is(err, agentguard.ErrObligation) || !errors.As(err, &de) ||
		de.Step != agentguard.StepObligation || !strings.Contains(de.Reason, "@audit_copy") {
		t.Fatalf("err = %v; want a denial with ErrObligation at the obligation step naming @audit_copy", err)
	}
	if runs.Load() != 0 || len(log.Calls()) != 0 {
		t.Errorf("tool ran %d times, other handler called %d times; want neither", runs.Load(), len(log.Calls()))
	}
	if rec, _ := env.Audit.Last(); rec.Decision != audit.Deny || rec.Step != agentguard.StepObligation ||
		!slices.Equal(rec.Policies, []string{"refund-with-copy"}) {
		t.Errorf("record = %+v; want a denial at the obligation step", rec)
	}
}

// TestAnnotationNotAnObligation: without policy.WithObligations the
// annotation is not an obligation: the handler is not called.
func TestAnnotationNotAnObligation(t *testing.T) {
	set := policy.MustParseSet("p.cedar", auditCopyPolicies)
	var log obligationLog
	env := newRolloutEnv(t, mustCedar(t, set), agentguard.WithObligation("audit_copy", log.handler(errors.New("must not be called"))))
	var runs atomic.Int64
	if _, err := env.Guard.Invoke(context.Background(), loggedTool("refund", &log, &runs, nil), agentguard.Call{Args: json.RawMessage(`{}`)}); err != nil {
		t.Fatalf("err = %v; @audit_copy is not an obligation of this engine", err)
	}
	if runs.Load() != 1 || len(log.Calls()) != 0 {
		t.Errorf("tool ran %d times, handler called %d times; want 1 and 0", runs.Load(), len(log.Calls()))
	}
}

// TestObligationsOfEveryPermit: each deciding permit's obligations are
// fulfilled, in order (policy ID, then annotation name); the first refusal
// stops the rest.
func TestObligationsOfEveryPermit(t *testing.T) {
	set := policy.MustParseSet("p.cedar", `
@id("a-copy") @audit_copy("security") @notify("ops")
permit(principal, action == Action::"refund", resource);
@id("b-notify") @notify("finance")
permit(principal, action == Action::"refund", resource) when { context.args.amount > 100 };
`)
	engine := mustCedar(t, set, policy.WithObligations("audit_copy", "notify"))

	t.Run("all fulfilled", func(t *testing.T) {
		var log obligationLog
		env := newRolloutEnv(t, engine,
			agentguard.WithObligation("audit_copy", log.handler(nil)),
			agentguard.WithObligation("notify", log.handler(nil)))
		var runs atomic.Int64
		if _, err := env.Guard.Invoke(context.Background(), loggedTool("refund", &log, &runs, nil), agentguard.Call{Args: json.RawMessage(`{"amount":500}`)}); err != nil {
			t.Fatal(err)
		}
		var got []policy.Obligation
		for _, c := range log.Calls() {
			got = append(got, c.o)
		}
		want := []policy.Obligation{
			{Name: "audit_copy", Value: "security", PolicyID: "a-copy"},
			{Name: "notify", Value: "ops", PolicyID: "a-copy"},
			{Name: "notify", Value: "finance", PolicyID: "b-notify"},
		}
		if !slices.Equal(got, want) {
			t.Errorf("obligations fulfilled = %+v\nwant %+v", got, want)
		}
		if runs.Load() != 1 {
			t.Errorf("tool ran %d times", runs.Load())
		}
	})

	t.Run("first refusal stops", func(t *testing.T) {
		var log obligationLog
		env := newRolloutEnv(t, engine,
			agentguard.WithObligation("audit_copy", log.handler(errors.New("no"))),
			agentguard.WithObligation("notify", log.handler(nil)))
		var runs atomic.Int64
		_, err := env.Guard.Invoke(context.Background(), loggedTool("refund", &log, &runs, nil), agentguard.Call{Args: json.RawMessage(`{"amount":500}`)})
		if !errors.Is(err, agentguard.ErrObligation) {
			t.Fatalf("err = %v, want ErrObligation", err)
		}
		if got := log.Events(); !slices.Equal(got, []string{"obligation audit_copy"}) {
			t.Errorf("events = %v; want only the refused obligation", got)
		}
	})
}

// TestObligationHandlerPanics: a panicking handler denies the call with
// ErrInternal at the obligation step, and the tool does not run.
func TestObligationHandlerPanics(t *testing.T) {
	set := policy.MustParseSet("p.cedar", auditCopyPolicies)
	var log obligationLog
	env := newRolloutEnv(t, mustCedar(t, set, policy.WithObligations("audit_copy")),
		agentguard.WithObligation("audit_copy", func(context.Context, policy.Obligation, agentguard.Call) error {
			panic("handler bug")
		}))
	var runs atomic.Int64
	_, err := env.Guard.Invoke(context.Background(), loggedTool("refund", &log, &runs, nil), agentguard.Call{Args: json.RawMessage(`{}`)})
	var de *agentguard.DenyError
	if !errors.Is(err, agentguard.ErrInternal) || !errors.As(err, &de) || de.Step != agentguard.StepObligation {
		t.Fatalf("err = %v; want ErrInternal at the obligation step", err)
	}
	if runs.Load() != 0 {
		t.Error("tool ran")
	}
	if rec, _ := env.Audit.Last(); rec.Step != agentguard.StepObligation || rec.Outcome != audit.OutcomeDenied {
		t.Errorf("record = %+v", rec)
	}
}

// TestObligationErrorScrubbed: a handler's error that quotes the task's
// user token is scrubbed from the call's error, its audit records and span.
func TestObligationErrorScrubbed(t *testing.T) {
	const canary = "user-token-CANARY-7f3a9c"
	set := policy.MustParseSet("p.cedar", auditCopyPolicies)
	errCopy := errors.New("copy service rejected bearer " + canary)
	var log obligationLog
	env := newRolloutEnv(t, mustCedar(t, set, policy.WithObligations("audit_copy")),
		agentguard.WithObligation("audit_copy", log.handler(errCopy)))
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{OnBehalfOf: "alice", UserToken: credentials.NewSecret(canary)})
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	_, err = env.Guard.Invoke(ctx, loggedTool("refund", &log, &runs, nil), agentguard.Call{Args: json.RawMessage(`{}`)})
	if err == nil || runs.Load() != 0 || len(log.Calls()) != 1 {
		t.Fatalf("err = %v, runs %d, handler calls %d; want a denial", err, runs.Load(), len(log.Calls()))
	}
	if !errors.Is(err, agentguard.ErrObligation) || !errors.Is(err, errCopy) {
		t.Errorf("err = %v; scrubbing must keep ErrObligation and the cause for errors.Is", err)
	}
	if !strings.Contains(err.Error(), "copy service rejected bearer") {
		t.Errorf("err = %q; want the handler's message, scrubbed", err)
	}
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	var where []string
	if strings.Contains(err.Error(), canary) {
		where = append(where, "error")
	}
	for _, e := range env.Audit.Events() {
		if b, _ := json.Marshal(e); strings.Contains(string(b), canary) {
			where = append(where, "audit record "+string(e.Kind))
		}
	}
	for _, s := range env.spans.Ended() {
		if strings.Contains(s.Status().Description, canary) {
			where = append(where, "span status "+s.Name())
		}
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.Emit(), canary) {
				where = append(where, "span attribute "+string(a.Key))
			}
		}
	}
	if len(where) > 0 {
		t.Errorf("user token leaked into %v", where)
	}
}

// TestObligationAfterApproval: approval comes first; the other obligations
// are those of the decision made after it, fulfilled once.
func TestObligationAfterApproval(t *testing.T) {
	approver := func(log *obligationLog, grant bool) agentguard.Option {
		return agentguard.WithApprover(agentguard.ApproverFunc(func(_ context.Context, r *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			log.note("approve " + r.Kind)
			a := r.Grant("alice")
			a.Granted = grant
			return a, nil
		}))
	}

	t.Run("same permit", func(t *testing.T) {
		set := policy.MustParseSet("p.cedar", `
@id("refund") @approval("manager") @audit_copy("security")
permit(principal, action == Action::"refund", resource);
`)
		var log obligationLog
		env := newRolloutEnv(t, mustCedar(t, set, policy.WithObligations("audit_copy")),
			approver(&log, true), agentguard.WithObligation("audit_copy", log.handler(nil)))
		var runs atomic.Int64
		if _, err := env.Guard.Invoke(context.Background(), loggedTool("refund", &log, &runs, nil), agentguard.Call{Args: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if got, want := log.Events(), []string{"approve manager", "obligation audit_copy", "execute"}; !slices.Equal(got, want) {
			t.Errorf("order = %v, want %v", got, want)
		}
		if calls := log.Calls(); len(calls) != 1 || calls[0].o.PolicyID != "refund" {
			t.Errorf("handler calls = %+v, want one for policy refund", calls)
		}
		if rec, _ := env.Audit.Last(); rec.Approval == nil || !rec.Approval.Granted || rec.Outcome != audit.OutcomeOK {
			t.Errorf("record = %+v; want approved and run", rec)
		}
	})

	t.Run("obligation set by the decision after approval", func(t *testing.T) {
		set := policy.MustParseSet("p.cedar", `
@id("needs-approval") @approval("manager")
permit(principal, action == Action::"refund", resource);
@id("approved-copy") @audit_copy("approved")
permit(principal, action == Action::"refund", resource) when { context.approval.granted };
`)
		var log obligationLog
		env := newRolloutEnv(t, mustCedar(t, set, policy.WithObligations("audit_copy")),
			approver(&log, true), agentguard.WithObligation("audit_copy", log.handler(nil)))
		var runs atomic.Int64
		if _, err := env.Guard.Invoke(context.Background(), loggedTool("refund", &log, &runs, nil), agentguard.Call{Args: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if got, want := log.Events(), []string{"approve manager", "obligation audit_copy", "execute"}; !slices.Equal(got, want) {
			t.Errorf("order = %v, want %v", got, want)
		}
		want := policy.Obligation{Name: "audit_copy", Value: "approved", PolicyID: "approved-copy"}
		if calls := log.Calls(); len(calls) != 1 || calls[0].o != want {
			t.Errorf("handler calls = %+v, want one: %+v", calls, want)
		}
	})

	t.Run("approval refused", func(t *testing.T) {
		set := policy.MustParseSet("p.cedar", `
@id("refund") @approval("manager") @audit_copy("security")
permit(principal, action == Action::"refund", resource);
`)
		var log obligationLog
		env := newRolloutEnv(t, mustCedar(t, set, policy.WithObligations("audit_copy")),
			approver(&log, false), agentguard.WithObligation("audit_copy", log.handler(nil)))
		var runs atomic.Int64
		_, err := env.Guard.Invoke(context.Background(), loggedTool("refund", &log, &runs, nil), agentguard.Call{Args: json.RawMessage(`{}`)})
		if !errors.Is(err, agentguard.ErrApprovalRequired) {
			t.Fatalf("err = %v, want ErrApprovalRequired", err)
		}
		if got := log.Events(); !slices.Equal(got, []string{"approve manager"}) {
			t.Errorf("events = %v; the obligation must not be fulfilled for a refused call", got)
		}
	})
}

// TestObligationOfDelegatingAgent: a delegated call carries the obligations
// of the decisions for the agents up its chain.
func TestObligationOfDelegatingAgent(t *testing.T) {
	set := policy.MustParseSet("p.cedar", fmt.Sprintf(`
@id("sub-search") permit(principal == Agent::%q, action == Action::"search", resource);
@id("root-search") @audit_copy("root-copy")
permit(principal == Agent::%q, action == Action::"search", resource);
`, rolloutSub, rolloutRoot))
	var log obligationLog
	env := newRolloutEnv(t, mustCedar(t, set, policy.WithObligations("audit_copy")),
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(rolloutSub, rolloutRoot))),
		agentguard.WithObligation("audit_copy", log.handler(nil)))
	var runs atomic.Int64
	if _, err := env.Guard.Invoke(context.Background(), loggedTool("search", &log, &runs, nil), agentguard.Call{Args: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	want := policy.Obligation{Name: "audit_copy", Value: "root-copy", PolicyID: "root-search"}
	if calls := log.Calls(); len(calls) != 1 || calls[0].o != want {
		t.Errorf("handler calls = %+v, want one: %+v", calls, want)
	}
	if runs.Load() != 1 {
		t.Errorf("tool ran %d times", runs.Load())
	}
}

// TestObligationOnceForChain: a permit that applies to the sub-agent and to
// the agent that delegated to it sets its obligation once, not once per
// agent.
func TestObligationOnceForChain(t *testing.T) {
	set := policy.MustParseSet("p.cedar", `@id("search-copy") @audit_copy("security")
permit(principal, action == Action::"search", resource);`)
	var log obligationLog
	env := newRolloutEnv(t, mustCedar(t, set, policy.WithObligations("audit_copy")),
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(rolloutSub, rolloutRoot))),
		agentguard.WithObligation("audit_copy", log.handler(nil)))
	var runs atomic.Int64
	if _, err := env.Guard.Invoke(context.Background(), loggedTool("search", &log, &runs, nil), agentguard.Call{Args: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if calls := log.Calls(); len(calls) != 1 {
		t.Fatalf("handler called %d times, want once: %+v", len(calls), calls)
	}
}
