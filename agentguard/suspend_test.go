package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// suspendedDenial checks that err is a call denied at StepSuspend with
// ErrSuspended, saying want.
func suspendedDenial(t *testing.T, err error, want string) {
	t.Helper()
	var de *agentguard.DenyError
	if !errors.Is(err, agentguard.ErrSuspended) || !errors.As(err, &de) || de.Step != agentguard.StepSuspend {
		t.Fatalf("err = %v, want a denial at step %q with ErrSuspended", err, agentguard.StepSuspend)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to say %q", err, want)
	}
}

func isDone(t *agentguard.Task) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

// TestSuspend: the kill switch denies every following call of the agent
// at once, audited; ends the tasks the agent called in, revoking their
// credentials; and Resume lets new calls through again.
func TestSuspend(t *testing.T) {
	clock := newFakeClock()
	env := agentguardtest.New(t, nil, "tok", agentguard.WithClock(clock.Now))
	agent := spiffeid.RequireFromString(agentguardtest.AgentID)
	var leases sync.Map
	api := credTool(&leases)
	var runs atomic.Int64
	search := counted("search", &runs)
	reg := env.Guard.NewRegistry("tools")
	if err := reg.Register(search); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	used, usedTask, err := env.Guard.StartTask(ctx, agentguard.TaskSpec{ID: "used"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Guard.Invoke(used, api, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	idle, idleTask, err := env.Guard.StartTask(ctx, agentguard.TaskSpec{ID: "idle"})
	if err != nil {
		t.Fatal(err)
	}

	if err := env.Guard.Suspend(ctx, agent, "compromised"); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	if got := env.Guard.Suspended(); len(got) != 1 || got[0].Target != agent || got[0].Reason != "compromised" || !got[0].Since.Equal(clock.Now()) {
		t.Errorf("Suspended() = %+v", got)
	}

	// The task the agent called in has ended, and its lease is revoked.
	if !isDone(usedTask) {
		t.Fatal("the task the suspended agent called in is still open")
	}
	n := 0
	leases.Range(func(k, _ any) bool {
		n++
		if err := env.Provider.Check(k.(string)); !errors.Is(err, credentials.ErrRevoked) {
			t.Errorf("lease %s not revoked: %v", k, err)
		}
		return true
	})
	if n != 1 {
		t.Fatalf("%d leases, want 1", n)
	}
	var ended []audit.Event
	for _, e := range env.Audit.Kind(audit.KindTaskEnd) {
		if e.Task == "used" {
			ended = append(ended, e)
		}
	}
	if len(ended) != 1 || ended[0].Reason != "agent suspended: compromised" {
		t.Errorf("task end records = %+v", ended)
	}
	if len(env.Audit.Kind(audit.KindCredentialRevoke)) != 1 {
		t.Errorf("revocation not audited")
	}
	// A task it never called in is left open: it has no credentials, and
	// every call in it is denied anyway.
	if isDone(idleTask) {
		t.Error("a task the agent never called in was ended")
	}
	sus := env.Audit.Kind(audit.KindSuspend)
	if len(sus) != 1 || sus[0].Target != agentguardtest.AgentID || sus[0].Reason != "compromised" ||
		!slices.Equal(sus[0].Tasks, []string{"used"}) || sus[0].Outcome != audit.OutcomeOK {
		t.Errorf("suspend records = %+v", sus)
	}

	// Every call is denied, in a task or not, audited at step suspend.
	for _, c := range []context.Context{idle, ctx} {
		_, err := env.Guard.Invoke(c, search, agentguard.Call{})
		suspendedDenial(t, err, "agent "+agentguardtest.AgentID+" is suspended since 2026-03-01T12:00:00Z: compromised")
		last, _ := env.Audit.Last()
		if last.Kind != audit.KindToolCall || last.Step != agentguard.StepSuspend || last.Outcome != audit.OutcomeDenied || last.Agent != agentguardtest.AgentID {
			t.Errorf("denial audited as %+v", last)
		}
	}
	if _, err := reg.Call(idle, agentguard.Call{Name: "search"}); !errors.Is(err, agentguard.ErrSuspended) {
		t.Errorf("Registry.Call: err = %v, want ErrSuspended", err)
	}
	if tools, err := reg.List(idle); !errors.Is(err, agentguard.ErrSuspended) || len(tools) != 0 {
		t.Errorf("Registry.List = %v, %v; want ErrSuspended", tools, err)
	}
	if runs.Load() != 0 {
		t.Errorf("the tool ran %d times while the agent was suspended", runs.Load())
	}

	clock.Advance(time.Minute)
	if err := env.Guard.Resume(ctx, agent); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if got := env.Guard.Suspended(); len(got) != 0 {
		t.Errorf("Suspended() after Resume = %+v", got)
	}
	res := env.Audit.Kind(audit.KindResume)
	if len(res) != 1 || res[0].Target != agentguardtest.AgentID || !res[0].Time.Equal(clock.Now()) {
		t.Errorf("resume records = %+v", res)
	}
	if _, err := env.Guard.Invoke(idle, search, agentguard.Call{}); err != nil {
		t.Errorf("call after Resume: %v", err)
	}
	fresh, _, err := env.Guard.StartTask(ctx, agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Guard.Invoke(fresh, api, agentguard.Call{}); err != nil {
		t.Errorf("credentialed call in a new task after Resume: %v", err)
	}
	// The ended task stays ended.
	if _, err := env.Guard.Invoke(used, search, agentguard.Call{}); !errors.Is(err, agentguard.ErrTaskEnded) {
		t.Errorf("call in the ended task: err = %v, want ErrTaskEnded", err)
	}
	// Resuming what is not suspended does nothing and records nothing.
	if err := env.Guard.Resume(ctx, agent); err != nil {
		t.Errorf("second Resume: %v", err)
	}
	if len(env.Audit.Kind(audit.KindResume)) != 1 {
		t.Error("a Resume that changed nothing was recorded")
	}
}

// TestSuspendAgain: suspending again updates the reason, keeps Since, is
// audited again, and ends the tasks the agent called in since.
func TestSuspendAgain(t *testing.T) {
	clock := newFakeClock()
	env := agentguardtest.New(t, nil, "tok", agentguard.WithClock(clock.Now))
	agent := spiffeid.RequireFromString(agentguardtest.AgentID)
	ctx := context.Background()
	since := clock.Now()
	if err := env.Guard.Suspend(ctx, agent, "first"); err != nil {
		t.Fatal(err)
	}
	tctx, task, err := env.Guard.StartTask(ctx, agentguard.TaskSpec{ID: "tried"})
	if err != nil {
		t.Fatal(err)
	}
	suspendedDenial(t, call(tctx, env.Guard, "search"), "first")
	clock.Advance(time.Hour)
	if err := env.Guard.Suspend(ctx, agent, "second"); err != nil {
		t.Fatal(err)
	}
	if got := env.Guard.Suspended(); len(got) != 1 || got[0].Reason != "second" || !got[0].Since.Equal(since) {
		t.Errorf("Suspended() = %+v, want reason second since %v", got, since)
	}
	if sus := env.Audit.Kind(audit.KindSuspend); len(sus) != 2 || sus[1].Reason != "second" || !slices.Equal(sus[1].Tasks, []string{"tried"}) {
		t.Errorf("suspend records = %+v", sus)
	}
	if !isDone(task) {
		t.Error("a task the suspended agent tried to call in is still open")
	}
}

// ctxAgentKey carries the agent a test's identity source returns, so that
// one guard serves several agents.
type ctxAgentKey struct{}

func asAgent(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxAgentKey{}, identity.MustParse(id))
}

var ctxIdentity = identity.SourceFunc(func(ctx context.Context) (identity.Identity, error) {
	id, ok := ctx.Value(ctxAgentKey{}).(identity.Identity)
	if !ok {
		return identity.Identity{}, identity.ErrNoIdentity
	}
	return id, nil
})

// TestSuspendTrustDomain: a target with no path suspends every agent of
// the trust domain, and only what was suspended is resumed.
func TestSuspendTrustDomain(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok", agentguard.WithIdentity(ctxIdentity))
	ctx := context.Background()
	a := asAgent(ctx, "spiffe://example.org/agent/a")
	b := asAgent(ctx, "spiffe://example.org/agent/b")
	c := asAgent(ctx, "spiffe://other.example/agent/c")
	td := spiffeid.RequireTrustDomainFromString("example.org").ID()

	if err := env.Guard.Suspend(ctx, td, "incident"); err != nil {
		t.Fatal(err)
	}
	for _, x := range []context.Context{a, b} {
		suspendedDenial(t, call(x, env.Guard, "search"), "trust domain example.org of agent")
	}
	if err := call(c, env.Guard, "search"); err != nil {
		t.Errorf("agent of another trust domain: %v", err)
	}
	if sus := env.Audit.Kind(audit.KindSuspend); len(sus) != 1 || sus[0].Target != "spiffe://example.org" {
		t.Errorf("suspend records = %+v", sus)
	}

	// Resuming one agent does not lift its trust domain's suspension.
	if err := env.Guard.Resume(ctx, spiffeid.RequireFromString("spiffe://example.org/agent/a")); err != nil {
		t.Fatal(err)
	}
	suspendedDenial(t, call(a, env.Guard, "search"), "trust domain example.org")
	if err := env.Guard.Resume(ctx, td); err != nil {
		t.Fatal(err)
	}
	for _, x := range []context.Context{a, b, c} {
		if err := call(x, env.Guard, "search"); err != nil {
			t.Errorf("after Resume: %v", err)
		}
	}

	// An agent suspended on its own stays suspended when its trust domain
	// is suspended and resumed.
	agentB := spiffeid.RequireFromString("spiffe://example.org/agent/b")
	for _, s := range []func() error{
		func() error { return env.Guard.Suspend(ctx, agentB, "b alone") },
		func() error { return env.Guard.Suspend(ctx, td, "incident") },
		func() error { return env.Guard.Resume(ctx, td) },
	} {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	if err := call(a, env.Guard, "search"); err != nil {
		t.Errorf("agent a: %v", err)
	}
	suspendedDenial(t, call(b, env.Guard, "search"), "b alone")
}

// TestSuspendDelegationChain: suspending an agent stops the calls of every
// sub-agent with it up the chain, and its handoffs.
func TestSuspendDelegationChain(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
	fetcher := devAgent(t, iss, "/agent/fetcher", delegationPolicies)
	ctx := context.Background()

	pctx, ptask, err := planner.guard.StartTask(ctx, agentguard.TaskSpec{ID: "plan-1"})
	if err != nil {
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
	if err := call(sctx, researcher.guard, "search"); err != nil {
		t.Fatal(err)
	}
	own, _, err := researcher.guard.StartTask(ctx, agentguard.TaskSpec{ID: "own"})
	if err != nil {
		t.Fatal(err)
	}

	// In the researcher's guard, the planner is suspended: the
	// researcher's delegated work stops, its own goes on.
	if err := researcher.guard.Suspend(ctx, planner.agent.ID(), "planner compromised"); err != nil {
		t.Fatal(err)
	}
	if !isDone(stask) {
		t.Error("the sub-task, with the suspended planner up its chain, is still open")
	}
	if sus := researcher.audit.Kind(audit.KindSuspend); len(sus) != 1 || !slices.Equal(sus[0].Tasks, []string{"research-1"}) {
		t.Errorf("suspend records = %+v", sus)
	}
	suspendedDenial(t, call(dctx, researcher.guard, "search"), "delegating agent spiffe://example.org/agent/planner is suspended")
	last, _ := researcher.audit.Last()
	if last.Step != agentguard.StepSuspend || !slices.Equal(last.Chain, []string{planner.agent.ID().String()}) {
		t.Errorf("denial audited as %+v", last)
	}
	var derr *agentguard.DelegationError
	if _, err := researcher.guard.Delegate(dctx, fetcher.agent.ID()); !errors.Is(err, agentguard.ErrSuspended) || !errors.As(err, &derr) || derr.Step != agentguard.StepSuspend {
		t.Errorf("Delegate with the planner up the chain: err = %v, want ErrSuspended at step suspend", err)
	}
	if err := call(own, researcher.guard, "search"); err != nil {
		t.Errorf("the researcher's own task: %v", err)
	}
	if err := researcher.guard.Resume(ctx, planner.agent.ID()); err != nil {
		t.Fatal(err)
	}

	// In the planner's own guard: its task ends, and with it, in this
	// process, the sub-agent's task started from it.
	sctx2, stask2, err := researcher.guard.StartTask(dctx, agentguard.TaskSpec{ID: "research-2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := call(sctx2, researcher.guard, "search"); err != nil {
		t.Fatal(err)
	}
	if err := call(pctx, planner.guard, "search"); err != nil {
		t.Fatal(err)
	}
	if err := planner.guard.Suspend(ctx, planner.agent.ID(), "stop"); err != nil {
		t.Fatal(err)
	}
	if !isDone(ptask) {
		t.Error("the planner's task is still open")
	}
	select {
	case <-stask2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the sub-agent's task did not end with the delegating task")
	}
	if err := call(sctx2, researcher.guard, "search"); !errors.Is(err, agentguard.ErrTaskEnded) {
		t.Errorf("sub-agent call after its task ended: err = %v, want ErrTaskEnded", err)
	}
	p2, _, err := planner.guard.StartTask(ctx, agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := planner.guard.Delegate(p2, researcher.agent.ID()); !errors.Is(err, agentguard.ErrSuspended) {
		t.Errorf("Delegate by a suspended agent: err = %v, want ErrSuspended", err)
	}
	if _, err := planner.guard.Handoff(p2, researcher.agent.ID()); !errors.Is(err, agentguard.ErrSuspended) {
		t.Errorf("Handoff by a suspended agent: err = %v, want ErrSuspended", err)
	}
	if dl := planner.audit.Kind(audit.KindDelegate); len(dl) < 2 || dl[len(dl)-1].Step != agentguard.StepSuspend || dl[len(dl)-1].Decision != audit.Deny {
		t.Errorf("refused handoff audited as %+v", dl[len(dl)-1])
	}
	if err := planner.guard.Resume(ctx, planner.agent.ID()); err != nil {
		t.Fatal(err)
	}
	// Handing work to a suspended agent is refused too.
	if err := planner.guard.Suspend(ctx, researcher.agent.ID(), "researcher compromised"); err != nil {
		t.Fatal(err)
	}
	if _, err := planner.guard.Delegate(p2, researcher.agent.ID()); !errors.Is(err, agentguard.ErrSuspended) || !strings.Contains(err.Error(), "delegatee suspended") {
		t.Errorf("Delegate to a suspended agent: err = %v, want ErrSuspended", err)
	}
	if _, err := planner.guard.Delegate(p2, fetcher.agent.ID()); err != nil {
		t.Errorf("Delegate to another agent: %v", err)
	}
}

// TestSuspendAcceptHandoff: a guard refuses a handoff when its own agent,
// or an agent of the presented chain, is suspended.
func TestSuspendAcceptHandoff(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
	ctx := context.Background()
	h, err := planner.guard.Handoff(ctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []spiffeid.ID{planner.agent.ID(), researcher.agent.ID()} {
		if err := researcher.guard.Suspend(ctx, target, "test"); err != nil {
			t.Fatal(err)
		}
		var derr *agentguard.DelegationError
		if _, err := researcher.guard.AcceptHandoff(ctx, h); !errors.Is(err, agentguard.ErrSuspended) || !errors.As(err, &derr) || derr.Step != agentguard.StepSuspend {
			t.Errorf("%s suspended: AcceptHandoff err = %v, want ErrSuspended at step suspend", target, err)
		}
		if err := researcher.guard.Resume(ctx, target); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := researcher.guard.AcceptHandoff(ctx, h); err != nil {
		t.Errorf("AcceptHandoff after Resume: %v", err)
	}
}

// TestSuspendWhileWaitingForApproval: a call that passed the first check
// and waited for a human is stopped by the check just before its tool runs.
func TestSuspendWhileWaitingForApproval(t *testing.T) {
	asked, release := make(chan struct{}), make(chan struct{})
	env := agentguardtest.New(t, nil, "tok", agentguard.WithRiskApproval(agentguard.RiskHigh),
		agentguard.WithApprover(agentguard.ApproverFunc(func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			close(asked)
			<-release
			return req.Grant("alice"), nil
		})))
	var runs atomic.Int64
	risky := counted("risky", &runs)
	risky.Risk = agentguard.RiskHigh
	done := make(chan error, 1)
	go func() { _, err := env.Guard.Invoke(context.Background(), risky, agentguard.Call{}); done <- err }()
	<-asked
	if err := env.Guard.Suspend(context.Background(), spiffeid.RequireFromString(agentguardtest.AgentID), "stop"); err != nil {
		t.Fatal(err)
	}
	close(release)
	suspendedDenial(t, <-done, "stop")
	if runs.Load() != 0 {
		t.Error("the tool ran after the agent was suspended")
	}
	if last, _ := env.Audit.Last(); last.Step != agentguard.StepSuspend || last.Approval == nil || !last.Approval.Granted {
		t.Errorf("denial audited as %+v", last)
	}
}

// TestSuspendConcurrent: while many goroutines call, Suspend and Resume
// come and go. Every call that began after Suspend returned and ended
// before Resume was called is denied with ErrSuspended, its tool never
// entered; every denial is audited at step suspend; calls run again after
// each Resume. Run with -race.
func TestSuspendConcurrent(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	agent := spiffeid.RequireFromString(agentguardtest.AgentID)
	// epoch is odd from just after Suspend returns to just before Resume
	// is called.
	var epoch, runs, wrongRuns, denials, calls atomic.Int64
	tool := &agentguard.Tool{Name: "work", Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
		runs.Add(1)
		var a struct{ Epoch int64 }
		_ = json.Unmarshal(args, &a)
		if a.Epoch%2 == 1 && epoch.Load() == a.Epoch {
			wrongRuns.Add(1) // began and entered its tool within one suspension
		}
		return &agentguard.Result{}, nil
	}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				e := epoch.Load()
				args, _ := json.Marshal(map[string]int64{"epoch": e})
				_, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{Args: args})
				calls.Add(1)
				if errors.Is(err, agentguard.ErrSuspended) {
					denials.Add(1)
				}
				if e%2 == 1 && epoch.Load() == e && !errors.Is(err, agentguard.ErrSuspended) {
					t.Errorf("call begun while suspended: err = %v, want ErrSuspended", err)
				}
				if e%2 == 0 && err != nil && !errors.Is(err, agentguard.ErrSuspended) {
					t.Errorf("call: %v", err)
				}
			}
		})
	}
	waitCalls := func(n int64) {
		start := calls.Load()
		for calls.Load() < start+n {
			time.Sleep(100 * time.Microsecond)
		}
	}
	for range 20 {
		waitCalls(20)
		if err := env.Guard.Suspend(context.Background(), agent, "cycle"); err != nil {
			t.Error(err)
		}
		epoch.Add(1)
		_ = env.Guard.Suspended()
		waitCalls(20)
		epoch.Add(1)
		if err := env.Guard.Resume(context.Background(), agent); err != nil {
			t.Error(err)
		}
	}
	ran := runs.Load()
	waitCalls(20)
	close(stop)
	wg.Wait()
	if wrongRuns.Load() != 0 {
		t.Errorf("%d tool runs of calls begun while the agent was suspended", wrongRuns.Load())
	}
	if runs.Load() == ran {
		t.Error("no call ran after the last Resume")
	}
	if denials.Load() == 0 {
		t.Error("no call was denied while suspended")
	}
	audited := 0
	for _, e := range env.Audit.Kind(audit.KindToolCall) {
		if e.Step == agentguard.StepSuspend {
			audited++
		}
	}
	if int64(audited) != denials.Load() {
		t.Errorf("%d denials audited at step suspend, %d calls denied", audited, denials.Load())
	}
	if s, r := len(env.Audit.Kind(audit.KindSuspend)), len(env.Audit.Kind(audit.KindResume)); s != 20 || r != 20 {
		t.Errorf("%d suspend and %d resume records, want 20 each", s, r)
	}
}

// TestSuspendAuditFails: a suspension whose record cannot be written is in
// force all the same (fail closed); a resumption whose record cannot be
// written does not happen.
func TestSuspendAuditFails(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	agent := spiffeid.RequireFromString(agentguardtest.AgentID)
	ctx := context.Background()
	env.Audit.Fail(nil)
	if err := env.Guard.Suspend(ctx, agent, "x"); !errors.Is(err, agentguard.ErrAudit) {
		t.Errorf("Suspend: err = %v, want ErrAudit", err)
	}
	env.Audit.Recover()
	suspendedDenial(t, call(ctx, env.Guard, "search"), "x")
	env.Audit.Fail(nil)
	if err := env.Guard.Resume(ctx, agent); !errors.Is(err, agentguard.ErrAudit) {
		t.Errorf("Resume: err = %v, want ErrAudit", err)
	}
	env.Audit.Recover()
	if len(env.Guard.Suspended()) != 1 {
		t.Fatal("an unrecorded Resume lifted the suspension")
	}
	suspendedDenial(t, call(ctx, env.Guard, "search"), "x")
	if err := env.Guard.Resume(ctx, agent); err != nil {
		t.Fatal(err)
	}
	if err := call(ctx, env.Guard, "search"); err != nil {
		t.Error(err)
	}
}

func TestSuspendNoTarget(t *testing.T) {
	env := agentguardtest.New(t, policytest.AllowAll(), "tok")
	if err := env.Guard.Suspend(context.Background(), spiffeid.ID{}, "x"); err == nil {
		t.Error("Suspend of no target succeeded")
	}
	if err := env.Guard.Resume(context.Background(), spiffeid.ID{}); err == nil {
		t.Error("Resume of no target succeeded")
	}
	if len(env.Guard.Suspended()) != 0 || len(env.Audit.Events()) != 0 {
		t.Error("a refused Suspend changed something")
	}
}

// TestSuspendEndsCallsOutsideTasks: a call made outside any task runs in a
// task of its own, which Suspend (and Close) end like any other: once they
// return, the call's credential is revoked and its tool's context
// cancelled, though the tool is still running.
func TestSuspendEndsCallsOutsideTasks(t *testing.T) {
	for _, tt := range []struct {
		name string
		stop func(context.Context, *agentguard.Guard) error
	}{
		{"suspend", func(ctx context.Context, g *agentguard.Guard) error {
			return g.Suspend(ctx, spiffeid.RequireFromString(agentguardtest.AgentID), "stop")
		}},
		{"close", func(ctx context.Context, g *agentguard.Guard) error { return g.Close(ctx) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := agentguardtest.New(t, nil, "tok")
			started, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			defer unblock()
			var (
				lease   string
				toolCtx context.Context
			)
			long := &agentguard.Tool{Name: "long",
				Credentials: []credentials.Requirement{{Name: "token", Provider: agentguardtest.StaticProvider, Audience: "api"}},
				Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
					c, _ := credentials.FromContext(ctx, "token")
					lease, toolCtx = c.LeaseID, ctx
					close(started)
					select { // a long-running tool, which heeds its context
					case <-ctx.Done():
					case <-release:
					}
					return &agentguard.Result{}, nil
				}}
			done := make(chan error, 1)
			go func() { _, err := env.Guard.Invoke(context.Background(), long, agentguard.Call{}); done <- err }()
			<-started

			if err := tt.stop(context.Background(), env.Guard); err != nil {
				t.Fatal(err)
			}
			if err := env.Provider.Check(lease); !errors.Is(err, credentials.ErrRevoked) {
				t.Errorf("the running call's lease is still valid: %v", err)
			}
			if toolCtx.Err() == nil {
				t.Error("the running tool's context is not cancelled")
			}
			if tt.name == "suspend" {
				sus := env.Audit.Kind(audit.KindSuspend)
				if len(sus) != 1 || len(sus[0].Tasks) != 1 || !strings.HasPrefix(sus[0].Tasks[0], "call-task-") {
					t.Errorf("suspend records = %+v, want one naming the call's task", sus)
				}
			}
			unblock()
			<-done
		})
	}
}

// TestSuspendStartTaskForSuspendedAgent: StartTask refuses a context whose
// delegation names a suspended agent, the delegating one or the one the
// task was handed to: it knows them before any call.
func TestSuspendStartTaskForSuspendedAgent(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
	ctx := context.Background()
	pctx, _, err := planner.guard.StartTask(ctx, agentguard.TaskSpec{ID: "plan-1"})
	if err != nil {
		t.Fatal(err)
	}
	dctx, err := planner.guard.Delegate(pctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []spiffeid.ID{planner.agent.ID(), researcher.agent.ID(), spiffeid.RequireTrustDomainFromString("example.org").ID()} {
		if err := researcher.guard.Suspend(ctx, target, "test"); err != nil {
			t.Fatal(err)
		}
		if _, task, err := researcher.guard.StartTask(dctx, agentguard.TaskSpec{}); !errors.Is(err, agentguard.ErrSuspended) || task != nil {
			t.Errorf("%s suspended: StartTask err = %v (task started: %t), want ErrSuspended", target, err, task != nil)
		}
		if err := researcher.guard.Resume(ctx, target); err != nil {
			t.Fatal(err)
		}
	}
	// Each refusal is recorded as one; none as a start.
	audittest.ExpectNone(t, researcher.audit.Events(), audittest.Want{Kind: audit.KindTaskStart, Decision: audit.Allow})
	audittest.ExpectCount(t, researcher.audit.Events(), audittest.Want{Kind: audit.KindTaskStart, Decision: audit.Deny, Step: agentguard.StepSuspend}, 3)
	if _, _, err := researcher.guard.StartTask(dctx, agentguard.TaskSpec{}); err != nil {
		t.Errorf("StartTask after Resume: %v", err)
	}
}

// escalatingSink is an audit sink that calls back into the guard: when it
// records the suspension (or resumption) of an agent, it suspends (or
// resumes) the agent's trust domain.
type escalatingSink struct {
	rec  *audittest.Recorder
	g    atomic.Pointer[agentguard.Guard]
	errs chan error
	// onResume, if set, is called when a resume record is written.
	onResume func()
}

func (s *escalatingSink) Write(ctx context.Context, e audit.Event) error {
	if err := s.rec.Write(ctx, e); err != nil {
		return err
	}
	target, err := spiffeid.FromString(e.Target)
	if err != nil || target.Path() == "" {
		return nil
	}
	if e.Kind == audit.KindResume && s.onResume != nil {
		s.onResume()
		return nil
	}
	g := s.g.Load()
	if g == nil {
		return nil
	}
	switch e.Kind {
	case audit.KindSuspend:
		s.errs <- g.Suspend(ctx, target.TrustDomain().ID(), "escalated: "+e.Reason)
	case audit.KindResume:
		s.errs <- g.Resume(ctx, target.TrustDomain().ID())
	}
	return nil
}

// within waits for f to return, or fails the test: it is a deadlock test,
// not a timing test, so it waits long.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return: deadlock", what)
		return nil
	}
}

// TestSuspendFromAuditSink: an audit sink may call Suspend and Resume
// while it writes a suspend or resume record (to escalate to the trust
// domain) without deadlocking; both changes take effect.
func TestSuspendFromAuditSink(t *testing.T) {
	sink := &escalatingSink{rec: audittest.NewRecorder(), errs: make(chan error, 10)}
	env := agentguardtest.New(t, nil, "tok", agentguard.WithAudit(sink))
	sink.g.Store(env.Guard)
	agent := spiffeid.RequireFromString(agentguardtest.AgentID)
	ctx := context.Background()

	if err := within(t, "Suspend", func() error { return env.Guard.Suspend(ctx, agent, "compromised") }); err != nil {
		t.Fatal(err)
	}
	if err := <-sink.errs; err != nil {
		t.Errorf("the sink's Suspend: %v", err)
	}
	got := env.Guard.Suspended()
	if len(got) != 2 || got[0].Target.String() != "spiffe://example.org" || got[0].Reason != "escalated: compromised" || got[1].Target != agent {
		t.Errorf("Suspended() = %+v, want the agent and its trust domain", got)
	}
	if sus := sink.rec.Kind(audit.KindSuspend); len(sus) != 2 {
		t.Errorf("suspend records = %+v, want 2", sus)
	}
	suspendedDenial(t, call(ctx, env.Guard, "search"), "suspended")

	if err := within(t, "Resume", func() error { return env.Guard.Resume(ctx, agent) }); err != nil {
		t.Fatal(err)
	}
	if err := <-sink.errs; err != nil {
		t.Errorf("the sink's Resume: %v", err)
	}
	if got := env.Guard.Suspended(); len(got) != 0 {
		t.Errorf("Suspended() after Resume = %+v", got)
	}
	if err := call(ctx, env.Guard, "search"); err != nil {
		t.Errorf("call after Resume: %v", err)
	}
}

// TestResumeRacingSuspend: a Suspend made while a Resume of the same
// target is being recorded neither waits for the record nor is undone by
// it: the later suspension stands, and Resume says so.
func TestResumeRacingSuspend(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	sink := &escalatingSink{rec: audittest.NewRecorder(), errs: make(chan error, 10),
		onResume: func() { close(entered); <-release }}
	env := agentguardtest.New(t, nil, "tok", agentguard.WithAudit(sink))
	agent := spiffeid.RequireFromString(agentguardtest.AgentID)
	ctx := context.Background()
	// The sink has no guard: it does not escalate here.
	if err := env.Guard.Suspend(ctx, agent, "first"); err != nil {
		t.Fatal(err)
	}
	resumed := make(chan error, 1)
	go func() { resumed <- env.Guard.Resume(ctx, agent) }()
	<-entered // the resume record is being written
	if err := within(t, "Suspend during a Resume", func() error { return env.Guard.Suspend(ctx, agent, "again") }); err != nil {
		t.Fatal(err)
	}
	unblock()
	if err := <-resumed; !errors.Is(err, agentguard.ErrSuspended) {
		t.Errorf("Resume: err = %v, want ErrSuspended (suspended again meanwhile)", err)
	}
	if got := env.Guard.Suspended(); len(got) != 1 || got[0].Reason != "again" {
		t.Errorf("Suspended() = %+v, want the later suspension", got)
	}
	suspendedDenial(t, call(ctx, env.Guard, "search"), "again")
}
