package agentguard_test

import (
	"context"
	"errors"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
)

// TestStartTaskRefusalsAudited: every refused start of a task is
// recorded as a task_start denial, with the step and reason, and the error
// the caller gets is unchanged; no token of the task reaches the record.
func TestStartTaskRefusalsAudited(t *testing.T) {
	const userToken = "user-token-CANARY"
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
	bg := context.Background()
	pctx, _, err := planner.guard.StartTask(bg, agentguard.TaskSpec{ID: "plan", OnBehalfOf: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	dctx, err := planner.guard.Delegate(pctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(bg)
	cancel()

	tests := []struct {
		name string
		env  *agentEnv
		ctx  context.Context
		spec agentguard.TaskSpec
		// is is what the error wraps; step and reason what the record says.
		is           error
		step, reason string
		agent        string
	}{
		{"context done", planner, cancelled, agentguard.TaskSpec{ID: "t1"}, context.Canceled, agentguard.StepTask, "context done", ""},
		{"invalid budget", planner, bg, agentguard.TaskSpec{ID: "t2", Budget: &agentguard.Budget{PerTool: -1}}, nil, agentguard.StepBudget, "invalid budget", ""},
		{"duplicate ID", planner, bg, agentguard.TaskSpec{ID: "plan"}, nil, agentguard.StepTask, "already open", planner.agent.ID().String()},
		{"handed to another agent", planner, dctx, agentguard.TaskSpec{ID: "t3"}, agentguard.ErrDelegation, agentguard.StepIdentify, "handed to another agent", planner.agent.ID().String()},
		{"another user", researcher, dctx, agentguard.TaskSpec{ID: "t4", OnBehalfOf: "bob", UserToken: credentials.NewSecret(userToken)},
			agentguard.ErrDelegation, agentguard.StepDelegate, "serves another user", researcher.agent.ID().String()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, task, err := tc.env.guard.StartTask(tc.ctx, tc.spec)
			if err == nil || task != nil || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("StartTask = %v, %v; want a refusal wrapping %v", task, err, tc.is)
			}
			e := audittest.Expect(t, tc.env.audit.Events(), audittest.Want{Kind: audit.KindTaskStart, Task: tc.spec.ID,
				Decision: audit.Deny, Outcome: audit.OutcomeDenied, Step: tc.step, Reason: tc.reason})
			if e.Error != err.Error() || e.Agent != tc.agent {
				t.Errorf("record = %+v; want error %q, agent %q", e, err, tc.agent)
			}
		})
	}
	// The open task "plan" was not disturbed by the refused duplicate.
	audittest.ExpectNone(t, planner.audit.Events(), audittest.Want{Kind: audit.KindTaskEnd, Task: "plan"})

	t.Run("guard closed", func(t *testing.T) {
		env := agentguardtest.New(t, nil, "tok")
		_ = env.Guard.Close(bg)
		if _, _, err := env.Guard.StartTask(bg, agentguard.TaskSpec{ID: "late"}); !errors.Is(err, agentguard.ErrClosed) {
			t.Fatalf("StartTask after Close = %v", err)
		}
		audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindTaskStart, Task: "late", Decision: audit.Deny, Step: agentguard.StepGuard, Reason: "guard closed"})
	})
	t.Run("no identity", func(t *testing.T) {
		src := identity.SourceFunc(func(context.Context) (identity.Identity, error) { return identity.Identity{}, errors.New("no SVID") })
		env := agentguardtest.New(t, nil, "tok", agentguard.WithIdentity(src))
		if _, _, err := env.Guard.StartTask(bg, agentguard.TaskSpec{ID: "anon"}); !errors.Is(err, agentguard.ErrNoIdentity) {
			t.Fatalf("StartTask without identity = %v", err)
		}
		audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindTaskStart, Task: "anon", Decision: audit.Deny,
			Step: agentguard.StepIdentify, Reason: "agent identity unavailable"})
	})
	t.Run("refusal not recorded", func(t *testing.T) {
		env := agentguardtest.New(t, nil, "tok")
		_ = env.Guard.Close(bg)
		env.Audit.Fail(nil)
		_, _, err := env.Guard.StartTask(bg, agentguard.TaskSpec{})
		if !errors.Is(err, agentguard.ErrClosed) || !errors.Is(err, agentguard.ErrAudit) {
			t.Fatalf("StartTask = %v, want ErrClosed and ErrAudit", err)
		}
	})
	audittest.ExpectNoSecret(t, researcher.audit.Events(), userToken)
}

// TestListRefusalsAudited: a refused listing is recorded (tool_list, a
// denial with the step and reason); in strict mode one that cannot be
// recorded returns both errors. A listing that succeeds records nothing.
func TestListRefusalsAudited(t *testing.T) {
	bg := context.Background()
	agent := identity.MustParse(agentguardtest.AgentID)
	env := agentguardtest.New(t, nil, "tok")
	reg := env.Guard.NewRegistry("support")
	if err := reg.Register(echoTool("lookup")); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.List(bg); err != nil {
		t.Fatal(err)
	}
	audittest.ExpectNone(t, env.Audit.Events(), audittest.Want{Kind: audit.KindToolList})

	ctx, _, err := env.Guard.StartTask(bg, agentguard.TaskSpec{ID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Guard.Suspend(bg, agent.ID, "investigation"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.List(bg); !errors.Is(err, agentguard.ErrSuspended) {
		t.Fatalf("List while suspended = %v", err)
	}
	e := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindToolList, Agent: agentguardtest.AgentID, Toolset: "support",
		Decision: audit.Deny, Outcome: audit.OutcomeDenied, Step: agentguard.StepSuspend, Reason: "agent suspended"})
	if e.Error == "" {
		t.Error("the refusal's error is not recorded")
	}
	// The suspension ended the task: a listing in it is refused, as
	// suspended.
	if _, err := reg.List(ctx); !errors.Is(err, agentguard.ErrSuspended) {
		t.Fatalf("List in the ended task = %v", err)
	}
	audittest.ExpectCount(t, env.Audit.Events(), audittest.Want{Kind: audit.KindToolList, Step: agentguard.StepSuspend}, 2)

	env.Audit.Fail(nil)
	_, err = reg.List(bg)
	if !errors.Is(err, agentguard.ErrSuspended) || !errors.Is(err, agentguard.ErrAudit) {
		t.Fatalf("List with a failing sink = %v, want ErrSuspended and ErrAudit", err)
	}
	env.Audit.Recover()
	if err := env.Guard.Resume(bg, agent.ID); err != nil {
		t.Fatal(err)
	}

	other := agentguardtest.New(t, nil, "tok")
	octx, _, err := other.Guard.StartTask(bg, agentguard.TaskSpec{ID: "foreign"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.List(octx); !errors.Is(err, agentguard.ErrForeignTask) {
		t.Fatalf("List in another guard's task = %v", err)
	}
	audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindToolList, Task: "foreign", Step: agentguard.StepTask})
}
