package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const execCanary = "exec-canary-SECRET-1d2e3f"

func execEnv(t *testing.T) (*agentguardtest.Env, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	env := agentguardtest.New(t, policytest.NewRules(policytest.Rule{ID: "search-ok", Tool: "search"}), execCanary,
		agentguard.WithTracerProvider(tp))
	return env, sr
}

func searchTool() *agentguard.Tool {
	return &agentguard.Tool{Name: "search", Credentials: []credentials.Requirement{{Name: "api", Provider: agentguardtest.StaticProvider}}}
}

// TestBeginEnd: an allowed call's tool runs outside the guard with the
// context Begin gave (its credential, its span), and End records it once.
func TestBeginEnd(t *testing.T) {
	env, sr := execEnv(t)
	ctx, x, err := env.Guard.Begin(context.Background(), searchTool(), agentguard.Call{ID: "fc-1", Args: json.RawMessage(`{"q":"x"}`)})
	if err != nil || x == nil {
		t.Fatalf("Begin: %v, %v", x, err)
	}
	c, ok := credentials.FromContext(ctx, "api")
	if !ok || c.Secret.Reveal() != execCanary {
		t.Fatal("the tool's context lacks its credential")
	}
	if !trace.SpanFromContext(ctx).SpanContext().IsValid() {
		t.Fatal("the tool's context has no span")
	}
	if n := len(env.Audit.Kind(audit.KindToolCall)); n != 0 {
		t.Fatalf("%d records before the tool ended", n)
	}
	res, err := x.End(&agentguard.Result{Output: "found"}, nil)
	if err != nil || res.Output != "found" {
		t.Fatalf("End = %v, %v", res, err)
	}
	// A second End changes nothing.
	if res2, err2 := x.End(nil, errors.New("late")); err2 != nil || res2 != res {
		t.Fatalf("second End = %v, %v", res2, err2)
	}
	evs := env.Audit.Kind(audit.KindToolCall)
	if len(evs) != 1 || evs[0].CallID != "fc-1" || evs[0].Outcome != audit.OutcomeOK || evs[0].Agent != agentguardtest.AgentID {
		t.Fatalf("records = %+v", evs)
	}
	if spans := sr.Ended(); len(spans) != 1 || spans[0].Name() != "execute_tool search" {
		t.Fatalf("spans = %v", spans)
	}
}

// TestBeginDenied: a denied call gets no Execution, and is recorded.
func TestBeginDenied(t *testing.T) {
	env, sr := execEnv(t)
	_, x, err := env.Guard.Begin(context.Background(), &agentguard.Tool{Name: "drop_table"}, agentguard.Call{ID: "fc-2"})
	if !errors.Is(err, agentguard.ErrDenied) || x != nil {
		t.Fatalf("Begin = %v, %v; want a denial", x, err)
	}
	_, x, err = env.Guard.Begin(context.Background(), &agentguard.Tool{Name: "bad name"}, agentguard.Call{ID: "fc-3"})
	if !errors.Is(err, agentguard.ErrInvalidTool) || x != nil {
		t.Fatalf("Begin = %v, %v; want ErrInvalidTool", x, err)
	}
	if evs := env.Audit.Kind(audit.KindToolCall); len(evs) != 2 || evs[0].Decision != audit.Deny || evs[1].Step != agentguard.StepDefinition {
		t.Fatalf("records = %+v", evs)
	}
	if len(sr.Ended()) != 2 {
		t.Fatalf("spans = %d, want 2", len(sr.Ended()))
	}
}

// TestBeginToolFails: End of a failed tool gives a scrubbed ToolError.
func TestBeginToolFails(t *testing.T) {
	env, _ := execEnv(t)
	_, x, err := env.Guard.Begin(context.Background(), searchTool(), agentguard.Call{ID: "fc-4"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = x.End(nil, errors.New("upstream refused token "+execCanary))
	var te *agentguard.ToolError
	if !errors.As(err, &te) || strings.Contains(err.Error(), execCanary) || strings.Contains(agentguard.Explain(err), execCanary) {
		t.Fatalf("End err = %v", err)
	}
	if evs := env.Audit.Kind(audit.KindToolCall); len(evs) != 1 || evs[0].Outcome != audit.OutcomeError || strings.Contains(evs[0].Error, execCanary) {
		t.Fatalf("records = %+v", evs)
	}
}

// TestBeginCancelled: a call whose context is cancelled while the
// framework runs the tool is recorded with the outcome End reports; one
// cancelled before the tool was handed out is denied, and the tool must
// not run.
func TestBeginCancelled(t *testing.T) {
	env, _ := execEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, x, err := env.Guard.Begin(ctx, searchTool(), agentguard.Call{ID: "fc-5"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if res, err := x.End(&agentguard.Result{Output: "done anyway"}, nil); err != nil || res.Output != "done anyway" {
		t.Fatalf("End after cancel = %v, %v; want the tool's result", res, err)
	}
	if evs := env.Audit.Kind(audit.KindToolCall); len(evs) != 1 || evs[0].Outcome != audit.OutcomeOK {
		t.Fatalf("records = %+v, want the tool's real outcome", evs)
	}

	_, x, err = env.Guard.Begin(ctx, searchTool(), agentguard.Call{ID: "fc-6"})
	var de *agentguard.DenyError
	if x != nil || !errors.As(err, &de) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Begin with a cancelled context = %v, %v; want a denial", x, err)
	}
	if _, err := x.End(nil, nil); !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("End of no execution = %v", err)
	}
	if evs := env.Audit.Kind(audit.KindToolCall); len(evs) != 2 || evs[1].Outcome != audit.OutcomeDenied {
		t.Fatalf("records = %+v", evs)
	}
}

// TestBeginAbandoned: a call whose context ends and whose End never
// comes is recorded, after the end timeout, as failed with an error
// saying the tool may have run; the goroutine it held stops.
func TestBeginAbandoned(t *testing.T) {
	env := agentguardtest.New(t, policytest.NewRules(policytest.Rule{ID: "search-ok", Tool: "search"}), execCanary,
		agentguard.WithEndTimeout(time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	_, x, err := env.Guard.Begin(ctx, searchTool(), agentguard.Call{ID: "fc-7"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	var evs []audit.Event
	for len(evs) == 0 {
		evs = env.Audit.Kind(audit.KindToolCall)
		runtime.Gosched()
	}
	if evs[0].Outcome != audit.OutcomeError || !strings.Contains(evs[0].Error, "may have run") {
		t.Fatalf("record = %+v", evs[0])
	}
	if _, err := x.End(&agentguard.Result{Output: "too late"}, nil); err == nil || !strings.Contains(err.Error(), "may have run") {
		t.Fatalf("late End = %v", err)
	}
}

// TestCancelledBeforeExecute: a call whose context ends after it was
// authorized (here, while an obligation ran) is denied at execute: the
// tool does not run.
func TestCancelledBeforeExecute(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	engine := policytest.Func(func(r *policy.Request) policy.Decision {
		return policy.Decision{Allowed: true, Policies: []string{"p"}, Obligations: []policy.Obligation{{Name: "notify", PolicyID: "p"}}}
	})
	env := agentguardtest.New(t, engine, execCanary, agentguard.WithObligation("notify",
		func(context.Context, policy.Obligation, agentguard.Call) error {
			cancel() // the run was abandoned meanwhile
			return nil
		}))
	ran := false
	refund := &agentguard.Tool{Name: "refund", Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
		ran = true
		return &agentguard.Result{}, nil
	}}
	_, err := env.Guard.Invoke(ctx, refund, agentguard.Call{})
	var de *agentguard.DenyError
	if ran || !errors.As(err, &de) || de.Step != agentguard.StepExecute || !errors.Is(err, context.Canceled) {
		t.Fatalf("Invoke = %v (ran %v); want a denial at execute", err, ran)
	}
}

// TestEndConcurrent: two Ends at once record the call once and both
// return the first one's answer.
func TestEndConcurrent(t *testing.T) {
	env, sr := execEnv(t)
	_, x, err := env.Guard.Begin(context.Background(), searchTool(), agentguard.Call{ID: "fc-8"})
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan *agentguard.Result, 2)
	for _, out := range []string{"a", "b"} {
		go func() {
			res, _ := x.End(&agentguard.Result{Output: out}, nil)
			results <- res
		}()
	}
	r1, r2 := <-results, <-results
	if r1 == nil || r1 != r2 {
		t.Fatalf("Ends returned %v and %v, want one answer", r1, r2)
	}
	if n := len(env.Audit.Kind(audit.KindToolCall)); n != 1 || len(sr.Ended()) != 1 {
		t.Fatalf("%d records, %d spans; want one each", n, len(sr.Ended()))
	}
}
