package agentguard_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// fakeClock is a clock tests move by hand; safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// budgetDenial checks that err is a budget denial at StepBudget whose
// message contains want.
func budgetDenial(t *testing.T, err error, want string) {
	t.Helper()
	var de *agentguard.DenyError
	if !errors.Is(err, agentguard.ErrBudget) || !errors.As(err, &de) || de.Step != agentguard.StepBudget {
		t.Fatalf("err = %v, want a budget denial at step %q", err, agentguard.StepBudget)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to say %q", err, want)
	}
}

// TestBudgetLimits: each kind of limit lets exactly its number of calls
// run and denies the next, saying which budget.
func TestBudgetLimits(t *testing.T) {
	tests := []struct {
		name   string
		budget agentguard.Budget
		calls  []string // tools called in order
		denied int      // index of the first denied call; -1 for none
		says   string
	}{
		{"calls", agentguard.Budget{Calls: 3}, []string{"a", "b", "a", "b"}, 3, "3 calls, limit 3"},
		{"per tool", agentguard.Budget{PerTool: 2}, []string{"a", "b", "a", "b", "a"}, 4, `2 calls of tool "a", limit 2`},
		{"tools override per tool", agentguard.Budget{PerTool: 1, Tools: map[string]int{"a": 3}},
			[]string{"a", "a", "b", "a", "a"}, 4, `3 calls of tool "a", limit 3`},
		{"tools override is per tool", agentguard.Budget{PerTool: 1, Tools: map[string]int{"a": 3}},
			[]string{"a", "b", "b"}, 2, `1 calls of tool "b", limit 1`},
		{"tools only", agentguard.Budget{Tools: map[string]int{"a": 1}}, []string{"b", "b", "b", "a", "a"}, 4, `tool "a", limit 1`},
		{"per minute", agentguard.Budget{PerMinute: 2}, []string{"a", "b", "a"}, 2, "2 calls in the last minute, limit 2"},
		{"no budget", agentguard.Budget{}, []string{"a", "a", "a", "a", "a", "a"}, -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := agentguardtest.New(t, nil, "tok", agentguard.WithBudget(tt.budget), agentguard.WithRequireTask())
			ctx, _, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t1"})
			if err != nil {
				t.Fatal(err)
			}
			var runs atomic.Int64
			for i, name := range tt.calls {
				_, err := env.Guard.Invoke(ctx, counted(name, &runs), agentguard.Call{})
				switch {
				case i == tt.denied:
					budgetDenial(t, err, tt.says)
					if !strings.Contains(err.Error(), `task "t1"`) {
						t.Errorf("err = %q, want it to name the task", err)
					}
					last, _ := env.Audit.Last()
					if last.Kind != audit.KindToolCall || last.Step != agentguard.StepBudget || last.Outcome != audit.OutcomeDenied ||
						!strings.Contains(last.Error, tt.says) {
						t.Errorf("denial audited as %+v", last)
					}
					if int(runs.Load()) != i {
						t.Errorf("%d handler runs before the denial, want %d", runs.Load(), i)
					}
					return
				case err != nil:
					t.Fatalf("call %d (%s): %v", i, name, err)
				}
			}
			if tt.denied >= 0 {
				t.Fatalf("no call denied, want call %d denied", tt.denied)
			}
		})
	}
}

// TestBudgetPerMinute: the window is the trailing 60 seconds of the
// guard's clock; once the oldest call leaves it, one more call may run.
func TestBudgetPerMinute(t *testing.T) {
	clock := newFakeClock()
	env := agentguardtest.New(t, nil, "tok", agentguard.WithClock(clock.Now), agentguard.WithBudget(agentguard.Budget{PerMinute: 2}))
	ctx, _, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	tool := counted("a", &runs)
	invoke := func() error { _, err := env.Guard.Invoke(ctx, tool, agentguard.Call{}); return err }

	if err := invoke(); err != nil { // t=0
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	if err := invoke(); err != nil { // t=30
		t.Fatal(err)
	}
	clock.Advance(29 * time.Second) // t=59: both calls are within the minute
	budgetDenial(t, invoke(), "2 calls in the last minute, limit 2")
	clock.Advance(time.Second) // t=60: the first has left the window
	if err := invoke(); err != nil {
		t.Fatalf("after the first call left the window: %v", err)
	}
	budgetDenial(t, invoke(), "2 calls in the last minute")
	clock.Advance(2 * time.Minute)
	for i := range 2 {
		if err := invoke(); err != nil {
			t.Fatalf("call %d after two quiet minutes: %v", i, err)
		}
	}
	if runs.Load() != 5 {
		t.Errorf("runs = %d, want 5", runs.Load())
	}
}

// TestBudgetDeniedCallsDoNotCount: calls that policy, or the budget
// itself, denied take nothing from the budget.
func TestBudgetDeniedCallsDoNotCount(t *testing.T) {
	engine := policytest.NewRules(policytest.Rule{ID: "ok", Tool: "ok"})
	env := agentguardtest.New(t, engine, "tok", agentguard.WithBudget(agentguard.Budget{Calls: 2}))
	ctx, _, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	for range 5 {
		if _, err := env.Guard.Invoke(ctx, counted("forbidden", &runs), agentguard.Call{}); errors.Is(err, agentguard.ErrBudget) || !errors.Is(err, agentguard.ErrDenied) {
			t.Fatalf("forbidden: err = %v, want a policy denial", err)
		}
	}
	for i := range 2 {
		if _, err := env.Guard.Invoke(ctx, counted("ok", &runs), agentguard.Call{}); err != nil {
			t.Fatalf("call %d within the budget, after policy denials: %v", i, err)
		}
	}
	for range 3 {
		_, err := env.Guard.Invoke(ctx, counted("ok", &runs), agentguard.Call{})
		budgetDenial(t, err, "2 calls, limit 2")
	}
	if runs.Load() != 2 {
		t.Errorf("runs = %d, want 2", runs.Load())
	}
}

// TestBudgetCheckedBeforePolicy: a spent budget denies before the policy
// engine (or an approver) is asked.
func TestBudgetCheckedBeforePolicy(t *testing.T) {
	engine := policytest.NewRules(policytest.Rule{ID: "ok", Tool: "ok"})
	env := agentguardtest.New(t, engine, "tok", agentguard.WithBudget(agentguard.Budget{Calls: 1}))
	ctx, _, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	if _, err := env.Guard.Invoke(ctx, counted("ok", &runs), agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	asked := len(engine.Calls())
	_, err = env.Guard.Invoke(ctx, counted("ok", &runs), agentguard.Call{})
	budgetDenial(t, err, "1 calls, limit 1")
	if got := len(engine.Calls()); got != asked {
		t.Errorf("policy asked %d more times for a call past the budget, want 0", got-asked)
	}
}

// TestBudgetSpentWhileWaitingForApproval: the early check lets a call go
// to the approver; the budget is taken only when the call is about to run,
// so a call that another used up the budget for meanwhile is denied then.
func TestBudgetSpentWhileWaitingForApproval(t *testing.T) {
	asked, release := make(chan struct{}), make(chan struct{})
	env := agentguardtest.New(t, nil, "tok", agentguard.WithBudget(agentguard.Budget{Calls: 1}),
		agentguard.WithRiskApproval(agentguard.RiskHigh),
		agentguard.WithApprover(agentguard.ApproverFunc(func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			close(asked)
			<-release
			return req.Grant("alice"), nil
		})))
	ctx, _, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	risky := counted("risky", &runs)
	risky.Risk = agentguard.RiskHigh
	done := make(chan error, 1)
	go func() { _, err := env.Guard.Invoke(ctx, risky, agentguard.Call{}); done <- err }()
	<-asked
	if _, err := env.Guard.Invoke(ctx, counted("quick", &runs), agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	close(release)
	budgetDenial(t, <-done, "1 calls, limit 1")
	if runs.Load() != 1 {
		t.Errorf("runs = %d, want 1", runs.Load())
	}
}

// TestBudgetConcurrent: 50 calls at once under Calls: 10 run exactly 10
// times; the other 40 are budget denials. An approver holds every call
// until all 50 have passed the early check, so that only the atomic admit
// can keep the budget.
func TestBudgetConcurrent(t *testing.T) {
	const n = 50
	var arrived atomic.Int64
	all := make(chan struct{})
	env := agentguardtest.New(t, nil, "tok", agentguard.WithBudget(agentguard.Budget{Calls: 10, PerTool: 10}),
		agentguard.WithRiskApproval(agentguard.RiskHigh),
		agentguard.WithApprover(agentguard.ApproverFunc(func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			if arrived.Add(1) == n {
				close(all)
			}
			<-all
			return req.Grant("alice"), nil
		})))
	ctx, _, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	var runs, denied atomic.Int64
	tool := counted("a", &runs)
	tool.Risk = agentguard.RiskHigh
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := env.Guard.Invoke(ctx, tool, agentguard.Call{})
			switch {
			case errors.Is(err, agentguard.ErrBudget):
				denied.Add(1)
			case err != nil:
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	if runs.Load() != 10 || denied.Load() != n-10 {
		t.Errorf("runs = %d, budget denials = %d; want 10 and %d", runs.Load(), denied.Load(), n-10)
	}
}

// TestBudgetTaskSpecTightens: a task's budget tightens the guard's, each
// limit the stricter of the two, and never loosens it.
func TestBudgetTaskSpecTightens(t *testing.T) {
	guardBudget := agentguard.Budget{Calls: 5, PerTool: 3, Tools: map[string]int{"b": 4}}
	tests := []struct {
		name string
		spec *agentguard.Budget
		want agentguard.Budget
		// calls of tool a, then of tool b, that run before a denial
		a, b int
	}{
		{"none", nil, guardBudget, 3, 2},
		{"tighter", &agentguard.Budget{Calls: 2}, agentguard.Budget{Calls: 2, PerTool: 3, Tools: map[string]int{"b": 4}}, 2, 0},
		{"looser is ignored", &agentguard.Budget{Calls: 50, PerTool: 10, Tools: map[string]int{"a": 9, "b": 9}},
			agentguard.Budget{Calls: 5, PerTool: 3, Tools: map[string]int{"a": 3, "b": 4}}, 3, 2},
		{"tighter tool", &agentguard.Budget{Tools: map[string]int{"a": 1}},
			agentguard.Budget{Calls: 5, PerTool: 3, Tools: map[string]int{"a": 1, "b": 4}}, 1, 4},
		{"per minute added", &agentguard.Budget{PerMinute: 1}, agentguard.Budget{Calls: 5, PerTool: 3, Tools: map[string]int{"b": 4}, PerMinute: 1}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := agentguardtest.New(t, nil, "tok", agentguard.WithBudget(guardBudget))
			ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{Budget: tt.spec})
			if err != nil {
				t.Fatal(err)
			}
			if got := task.Budget(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Budget() = %+v, want %+v", got, tt.want)
			}
			var runs atomic.Int64
			for _, tc := range []struct {
				tool string
				want int
			}{{"a", tt.a}, {"b", tt.b}} {
				runs.Store(0)
				for {
					_, err := env.Guard.Invoke(ctx, counted(tc.tool, &runs), agentguard.Call{})
					if err != nil {
						budgetDenial(t, err, "limit")
						break
					}
					if runs.Load() > 10 {
						t.Fatalf("tool %s: no budget denial after 10 calls", tc.tool)
					}
				}
				if int(runs.Load()) != tc.want {
					t.Errorf("tool %s ran %d times, want %d", tc.tool, runs.Load(), tc.want)
				}
			}
		})
	}
}

// TestBudgetInvalid: a negative limit, or a Tools entry that is not
// positive, is refused by New and StartTask.
func TestBudgetInvalid(t *testing.T) {
	bad := []agentguard.Budget{
		{Calls: -1}, {PerTool: -2}, {PerMinute: -1},
		{Tools: map[string]int{"a": 0}}, {Tools: map[string]int{"a": -1}}, {Tools: map[string]int{"": 3}},
	}
	for _, b := range bad {
		t.Run(fmt.Sprint(b), func(t *testing.T) {
			_, err := agentguard.New(agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(agentguardtest.AgentID))),
				agentguard.WithPolicy(policytest.AllowAll()), agentguard.WithBudget(b))
			if err == nil || !strings.Contains(err.Error(), "budget") {
				t.Errorf("New: err = %v, want a budget error", err)
			}
			env := agentguardtest.New(t, nil, "tok")
			if _, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{Budget: &b}); err == nil || task != nil {
				t.Errorf("StartTask: err = %v, want a budget error", err)
			}
		})
	}
}

// TestBudgetVisibleToPolicy: Cedar sees the task's counts as
// context.task.calls, tool_calls and calls_last_minute.
func TestBudgetVisibleToPolicy(t *testing.T) {
	engine, err := policy.NewCedarEngine(policy.MustParseSet("budget.cedar", `
@id("all") permit (principal, action, resource);
@id("per-tool") forbid (principal, action == Action::"a", resource) when { context.task.tool_calls >= 2 };
@id("total") forbid (principal, action == Action::"b", resource) when { context.task.calls >= 4 };
@id("rate") forbid (principal, action == Action::"c", resource) when { context.task.calls_last_minute >= 1 };
`))
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	env := agentguardtest.New(t, engine, "tok", agentguard.WithClock(clock.Now))
	ctx, _, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	steps := []struct {
		tool    string
		advance time.Duration
		policy  string // the forbidding policy, "" for allowed
	}{
		{"a", 0, ""}, {"a", 0, ""}, {"a", 0, "per-tool"}, // tool_calls 0, 1, 2
		{"b", 0, ""}, {"b", 0, ""}, {"b", 0, "total"}, // calls 2, 3, 4
		{"c", 0, "rate"},                // 4 calls in the last minute
		{"c", 61 * time.Second, ""},     // none
		{"c", 59 * time.Second, "rate"}, // one, 59 s ago
		{"c", time.Second, ""},          // none again
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		_, err := env.Guard.Invoke(ctx, counted(s.tool, &runs), agentguard.Call{})
		if s.policy == "" {
			if err != nil {
				t.Fatalf("step %d (%s): %v", i, s.tool, err)
			}
			continue
		}
		var de *agentguard.DenyError
		if !errors.As(err, &de) || de.Step != agentguard.StepAuthorize || strings.Join(de.Policies, ",") != s.policy {
			t.Fatalf("step %d (%s): err = %v, want a denial by policy %s", i, s.tool, err, s.policy)
		}
	}
}

// TestBudgetSubAgent: a sub-agent's task works for the delegating task:
// its calls, in a task of its own or outside any, count against the
// delegating task's budget too, in another guard.
func TestBudgetSubAgent(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies, agentguard.WithBudget(agentguard.Budget{Calls: 3}))
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
	pctx, _, err := planner.guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "plan-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := call(pctx, planner.guard, "search"); err != nil {
		t.Fatal(err)
	}
	dctx, err := planner.guard.Delegate(pctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	sctx, stask, err := researcher.guard.StartTask(dctx, agentguard.TaskSpec{ID: "research-1"})
	if err != nil {
		t.Fatal(err)
	}
	if b := stask.Budget(); b.Calls != 0 {
		t.Errorf("sub-task's own budget = %+v, want none (the researcher's guard has none)", b)
	}
	if err := call(sctx, researcher.guard, "search"); err != nil {
		t.Fatal(err)
	}
	if err := call(dctx, researcher.guard, "search"); err != nil { // outside any task of its own
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ctx  context.Context
		g    *agentguard.Guard
	}{{"sub-task", sctx, researcher.guard}, {"no sub-task", dctx, researcher.guard}, {"planner", pctx, planner.guard}} {
		t.Run(c.name, func(t *testing.T) {
			budgetDenial(t, call(c.ctx, c.g, "search"), `task "plan-1": 3 calls, limit 3`)
		})
	}
}

// TestChildTaskAfterParentEnded: a task works for the task it was started
// from, and stops when that one ends, even when its context outlives it
// (context.WithoutCancel): a later call is denied with ErrTaskEnded before
// policy or an approver is asked and before any credential is issued.
func TestChildTaskAfterParentEnded(t *testing.T) {
	engine := policytest.AllowAll()
	var asked atomic.Int64
	env := agentguardtest.New(t, engine, "tok", agentguard.WithRiskApproval(agentguard.RiskHigh),
		agentguard.WithApprover(agentguard.ApproverFunc(func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			asked.Add(1)
			return req.Grant("alice"), nil
		})))
	var leases sync.Map
	tool := credTool(&leases)
	tool.Risk = agentguard.RiskHigh
	ctx := context.Background()
	pctx, parent, err := env.Guard.StartTask(ctx, agentguard.TaskSpec{ID: "parent"})
	if err != nil {
		t.Fatal(err)
	}
	cctx, child, err := env.Guard.StartTask(context.WithoutCancel(pctx), agentguard.TaskSpec{ID: "child"})
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.End(ctx); err != nil {
		t.Fatal(err)
	}
	if isDone(child) {
		t.Fatal("test premise: the child's context outlives the parent")
	}
	decided, approvals, issued, records := len(engine.Calls()), asked.Load(), env.Provider.Issued(), len(env.Audit.Kind(audit.KindCredentialIssue))

	_, err = env.Guard.Invoke(cctx, tool, agentguard.Call{})
	var de *agentguard.DenyError
	if !errors.Is(err, agentguard.ErrTaskEnded) || !errors.As(err, &de) || de.Step != agentguard.StepTask ||
		!strings.Contains(err.Error(), `task "parent", which this task works for, has ended`) {
		t.Fatalf("call in the child after the parent ended: err = %v, want ErrTaskEnded at step task naming the parent", err)
	}
	if n := len(engine.Calls()) - decided; n != 0 {
		t.Errorf("policy asked %d times about a call that cannot run", n)
	}
	if n := asked.Load() - approvals; n != 0 {
		t.Errorf("approver asked %d times about a call that cannot run", n)
	}
	if env.Provider.Issued() != issued || len(env.Audit.Kind(audit.KindCredentialIssue)) != records {
		t.Error("a credential was issued for a call that cannot run")
	}
}
