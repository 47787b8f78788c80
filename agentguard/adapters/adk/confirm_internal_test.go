package adkguard

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/adk/model"
	"google.golang.org/adk/session"
	"google.golang.org/adk/tool"
	"google.golang.org/adk/tool/functiontool"
	"google.golang.org/adk/tool/toolconfirmation"
	"google.golang.org/genai"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// fakeToolContext is the part of ADK's tool context the callbacks use, for
// calls ADK cannot be made to send: a resumed call that differs from the
// call its confirmation names.
type fakeToolContext struct {
	tool.Context // nil: the methods not overridden are not used
	ctx          context.Context
	call         string
	conf         *toolconfirmation.ToolConfirmation
	asked        []any
}

func (c *fakeToolContext) Deadline() (time.Time, bool) { return c.ctx.Deadline() }
func (c *fakeToolContext) Done() <-chan struct{}       { return c.ctx.Done() }
func (c *fakeToolContext) Err() error                  { return c.ctx.Err() }
func (c *fakeToolContext) Value(key any) any           { return c.ctx.Value(key) }
func (c *fakeToolContext) InvocationID() string        { return "inv-1" }
func (c *fakeToolContext) Branch() string              { return "" }
func (c *fakeToolContext) AgentName() string           { return "shop_agent" }
func (c *fakeToolContext) AppName() string             { return "shop" }
func (c *fakeToolContext) UserID() string              { return "alice" }
func (c *fakeToolContext) SessionID() string           { return "s-1" }
func (c *fakeToolContext) FunctionCallID() string      { return c.call }
func (c *fakeToolContext) ToolConfirmation() *toolconfirmation.ToolConfirmation {
	return c.conf
}
func (c *fakeToolContext) RequestConfirmation(hint string, payload any) error {
	c.asked = append(c.asked, payload)
	return nil
}

type refundArgs struct {
	Order  string  `json:"order"`
	Amount float64 `json:"amount"`
}

// An answer to the guard's confirmation decides the request only for the
// call it was asked about: a resumed call of another tool, with other
// arguments, or through another confirmation is refused, decides nothing
// and does not run, and is recorded.
func TestAnswerChecksTheResumedCall(t *testing.T) {
	amount := func(r *policy.Request) float64 {
		var a refundArgs
		_ = json.Unmarshal(r.Args, &a)
		return a.Amount
	}
	rules := policytest.NewRules(
		policytest.Rule{ID: "lookup", Effect: policytest.Allow, Tool: "lookup_order"},
		policytest.Rule{ID: "small", Effect: policytest.Allow, Tool: "refund", When: func(r *policy.Request) bool { return amount(r) <= 100 }},
		policytest.Rule{ID: "big", Effect: policytest.Allow, Tool: "refund", Approval: "supervisor", When: func(r *policy.Request) bool { return amount(r) > 100 }},
	)
	d := approval.NewDeferred()
	env := agentguardtest.New(t, rules, "canary-1", agentguard.WithApprover(d))
	g, err := New(env.Guard, WithApprovals(d))
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	refund, err := functiontool.New(functiontool.Config{Name: "refund", Description: "Refund."}, func(_ tool.Context, a refundArgs) (map[string]any, error) {
		ran++
		return map[string]any{"refunded": a.Amount}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	lookup, err := functiontool.New(functiontool.Config{Name: "lookup_order", Description: "Look up."}, func(_ tool.Context, a refundArgs) (map[string]any, error) {
		ran++
		return map[string]any{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{Purpose: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())

	big := map[string]any{"order": "A-1", "amount": 900.0}
	first := &fakeToolContext{ctx: ctx, call: "call-x"}
	if out, _ := g.BeforeTool(first, refund, big); out == nil || len(first.asked) != 1 {
		t.Fatalf("BeforeTool = %v, asked %d; want a refusal and a confirmation", out, len(first.asked))
	}
	// The event ADK makes of it; Confirmations ties the confirmation to it.
	ev := &session.Event{LongRunningToolIDs: []string{"adk-1"}, LLMResponse: model.LLMResponse{Content: &genai.Content{Role: genai.RoleModel, Parts: []*genai.Part{{
		FunctionCall: &genai.FunctionCall{ID: "adk-1", Name: toolconfirmation.FunctionCallName, Args: map[string]any{
			"originalFunctionCall": &genai.FunctionCall{ID: "call-x", Name: "refund", Args: big},
			"toolConfirmation":     toolconfirmation.ToolConfirmation{Hint: "?", Payload: first.asked[0]},
		}},
	}}}}}
	if cs := g.Confirmations(ev); len(cs) != 1 || cs[0].Approval == nil {
		t.Fatalf("Confirmations = %+v", cs)
	}
	yes := func(id string) *toolconfirmation.ToolConfirmation {
		return &toolconfirmation.ToolConfirmation{Confirmed: true, Payload: map[string]any{answerKey: id}}
	}
	for _, tc := range []struct {
		name string
		t    tool.Tool
		args map[string]any
		conf string
	}{
		{"another tool", lookup, map[string]any{"order": "A-1"}, "adk-1"},
		{"other arguments", refund, map[string]any{"order": "A-1", "amount": 90.0}, "adk-1"},
		{"another confirmation", refund, big, "forged-1"},
	} {
		resumed := &fakeToolContext{ctx: ctx, call: "call-x", conf: yes(tc.conf)}
		out, _ := g.BeforeTool(resumed, tc.t, tc.args)
		msg, _ := out["error"].(string)
		if !strings.Contains(msg, "not taken") {
			t.Errorf("%s: BeforeTool = %v, want a refusal", tc.name, out)
		}
		if len(d.Pending()) != 1 || g.PendingConfirmations() != 1 || len(resumed.asked) != 0 || g.InFlight() != 0 {
			t.Errorf("%s: %d requests, %d confirmations pending, %d asked, %d in flight; want 1, 1, 0, 0",
				tc.name, len(d.Pending()), g.PendingConfirmations(), len(resumed.asked), g.InFlight())
		}
	}
	// Both calls allowed on their own were recorded, and never ran.
	audittest.ExpectCount(t, env.Audit.Kind(audit.KindToolCall), audittest.Want{CallID: "call-x", Decision: audit.Allow, Outcome: audit.OutcomeError}, 2)
	if ran != 0 {
		t.Fatalf("a tool ran %d times", ran)
	}
	// The call it was asked about, through its confirmation, is decided.
	resumed := &fakeToolContext{ctx: ctx, call: "call-x", conf: yes("adk-1")}
	if out, _ := g.BeforeTool(resumed, refund, big); out != nil {
		t.Fatalf("BeforeTool = %v, want the call allowed", out)
	}
	if _, err := g.AfterTool(resumed, refund, big, map[string]any{"refunded": 900.0}, nil); err != nil {
		t.Fatal(err)
	}
	ev2 := audittest.Expect(t, env.Audit.Kind(audit.KindToolCall), audittest.Want{CallID: "call-x", Decision: audit.Allow, Approval: agentguard.ApprovalGranted})
	if got := ev2.Approval.Approvers; len(got) != 1 || got[0] != "adk-user:alice" {
		t.Errorf("approvers %v", got)
	}
	if len(d.Pending()) != 0 || g.PendingConfirmations() != 0 || g.InFlight() != 0 {
		t.Errorf("left over: %d requests, %d confirmations, %d calls", len(d.Pending()), g.PendingConfirmations(), g.InFlight())
	}
}
