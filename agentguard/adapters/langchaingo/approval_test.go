package langchainguard_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tmc/langchaingo/agents"
	"github.com/tmc/langchaingo/chains"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// refundsNeedApproval allow refunds only with a supervisor's approval.
func refundsNeedApproval() *policytest.Rules {
	return policytest.NewRules(
		policytest.Rule{ID: "refunds", Effect: policytest.Allow, Tool: "refund", Approval: "supervisor"},
		policytest.Rule{ID: "support", Effect: policytest.Allow, Tool: "lookup"},
	)
}

// TestApprovalQueue: with a blocking approver the tool call, and so the
// run, waits for the human: a grant runs the tool, a refusal comes back
// to the model as the observation.
func TestApprovalQueue(t *testing.T) {
	for _, grant := range []bool{true, false} {
		name := map[bool]string{true: "grant", false: "refuse"}[grant]
		t.Run(name, func(t *testing.T) {
			q := approval.NewQueue()
			t.Cleanup(q.Close)
			e := newEnv(t, refundsNeedApproval(), agentguard.WithApprover(q))
			lookup, refund := supportTools()
			set := newSupportSet(t, e, lookup, refund)
			ctx := e.task(t)

			// The human: decides the one request the run makes.
			asked := make(chan *agentguard.ApprovalRequest, 1)
			hctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				req, err := q.Next(hctx)
				if err == nil {
					asked <- req
					if grant {
						err = q.Grant(req.ID, "alice", "checked the order")
					} else {
						err = q.Refuse(req.ID, "alice", "not eligible")
					}
				}
				done <- err
			}()
			t.Cleanup(func() { stop(); <-done })

			model := newModel(action("refund", "O-1"), text("Final Answer: handled"))
			executor := agents.NewExecutor(set.Agent(agents.NewOneShotAgent(model, set.Tools())))
			if _, err := chains.Run(ctx, executor, "Refund O-1"); err != nil {
				t.Fatalf("run: %v", err)
			}
			req := <-asked
			if req.Tool != "refund" || string(req.Args) != `{"input":"O-1"}` || req.Kind != "supervisor" {
				t.Errorf("approval request %s %s kind %q", req.Tool, req.Args, req.Kind)
			}
			obs := model.Prompts()[1]
			if grant {
				if got := refund.Inputs(); !slices.Equal(got, []string{"O-1"}) {
					t.Errorf("refund inputs %q, want [O-1]", got)
				}
				if !strings.Contains(obs, "Observation: refund done: O-1") {
					t.Errorf("second prompt lacks the refund's result:\n%s", obs)
				}
				audittest.ExpectCount(t, e.toolCalls(), audittest.Want{Tool: "refund", Decision: audit.Allow, Approval: agentguard.ApprovalGranted, Outcome: audit.OutcomeOK}, 1)
			} else {
				if n := len(refund.Inputs()); n != 0 {
					t.Errorf("refund ran %d times", n)
				}
				if want := `Observation: The call to tool "refund" was denied (approve)`; !strings.Contains(obs, want) {
					t.Errorf("second prompt lacks %q:\n%s", want, obs)
				}
				audittest.ExpectCount(t, e.toolCalls(), audittest.Want{Tool: "refund", Decision: audit.Deny, Approval: agentguard.ApprovalRefused}, 1)
			}
			if len(e.toolCalls()) != 1 || e.executeSpans()["refund"] != 1 {
				t.Errorf("records %s, spans %v: want one of each", audittest.List(e.toolCalls()), e.executeSpans())
			}
		})
	}
}

// TestApprovalDeferred: with approval.Deferred the run does not wait: the
// model reads that the call waits for a human, with the request's ID.
// Once the human has decided, the same call in the same task, made in a
// later run, is answered by the decision.
func TestApprovalDeferred(t *testing.T) {
	d := approval.NewDeferred()
	e := newEnv(t, refundsNeedApproval(), agentguard.WithApprover(d))
	lookup, refund := supportTools()
	set := newSupportSet(t, e, lookup, refund)
	ctx := e.task(t)

	first := newModel(action("refund", "O-1"), text("Final Answer: the refund waits for a supervisor"))
	if _, err := chains.Run(ctx, agents.NewExecutor(set.Agent(agents.NewOneShotAgent(first, set.Tools()))), "Refund O-1"); err != nil {
		t.Fatalf("first run: %v", err)
	}
	if n := len(refund.Inputs()); n != 0 {
		t.Fatalf("refund ran %d times before approval", n)
	}
	pending := d.Pending()
	if len(pending) != 1 || pending[0].Tool != "refund" {
		t.Fatalf("pending requests %v, want one for refund", pending)
	}
	want := `Observation: The call to tool "refund" needs a human's approval (approval: supervisor). The request ` + pending[0].ID + " has been sent"
	if obs := first.Prompts()[1]; !strings.Contains(obs, want) {
		t.Errorf("second prompt lacks %q:\n%s", want, obs)
	}

	// The approver's name comes from the application, never the model.
	if err := d.Decide(pending[0].ID, approval.Decision{Granted: true, Approvers: []string{"alice"}, Reason: "checked"}); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	second := newModel(action("refund", "O-1"), text("Final Answer: refunded"))
	out, err := chains.Run(ctx, agents.NewExecutor(set.Agent(agents.NewOneShotAgent(second, set.Tools()))), "Refund O-1")
	if err != nil || out != "refunded" {
		t.Fatalf("second run: %q, %v", out, err)
	}
	if got := refund.Inputs(); !slices.Equal(got, []string{"O-1"}) {
		t.Errorf("refund inputs %q, want [O-1]", got)
	}
	calls := e.toolCalls()
	audittest.ExpectCount(t, calls, audittest.Want{Tool: "refund", Decision: audit.Deny, Step: agentguard.StepApprove}, 1)
	granted := audittest.Expect(t, calls, audittest.Want{Tool: "refund", Decision: audit.Allow, Approval: agentguard.ApprovalGranted, Outcome: audit.OutcomeOK})
	if granted.Approval == nil || !slices.Equal(granted.Approval.Approvers, []string{"alice"}) {
		t.Errorf("approval %+v, want alice's", granted.Approval)
	}
	if len(calls) != 2 || e.executeSpans()["refund"] != 2 {
		t.Errorf("records %s, spans %v: want two of each", audittest.List(calls), e.executeSpans())
	}
	// The decision counted once: the same call again waits again.
	third := newModel(action("refund", "O-1"), text("Final Answer: waits"))
	if _, err := chains.Run(ctx, agents.NewExecutor(set.Agent(agents.NewOneShotAgent(third, set.Tools()))), "Refund O-1 again"); err != nil {
		t.Fatalf("third run: %v", err)
	}
	if n := len(refund.Inputs()); n != 1 {
		t.Errorf("refund ran %d times, want 1", n)
	}
	if !strings.Contains(third.Prompts()[1], "needs a human's approval") {
		t.Errorf("third run's call did not wait for approval:\n%s", third.Prompts()[1])
	}
}
