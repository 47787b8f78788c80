package adkguard_test

import (
	"context"
	"fmt"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/runner"
	"google.golang.org/adk/session"
	"google.golang.org/adk/tool"
	"google.golang.org/adk/tool/functiontool"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/adapters/adk"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// A refund policy forbids is refused: the tool never runs, and the model
// reads the refusal as the tool's result.
func ExampleGuard_Configure() {
	guard, _ := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/shop"))),
		agentguard.WithPolicy(policytest.NewRules(
			policytest.Rule{ID: "refunds", Effect: policytest.Allow, Tool: "refund"},
			policytest.Rule{ID: "refund-limit", Effect: policytest.Deny, Tool: "refund", Reason: "refunds over 1000 are never made by an agent",
				When: func(r *policy.Request) bool { return amount(r) > 1000 }},
		)),
		agentguard.WithAudit(audittest.NewRecorder()),
	)
	defer guard.Close(context.Background())
	ag, _ := adkguard.New(guard)

	refund, _ := functiontool.New(functiontool.Config{Name: "refund", Description: "Refund an order."},
		func(_ tool.Context, a refundArgs) (refundResult, error) {
			fmt.Println("refund ran")
			return refundResult{Refunded: a.Amount}, nil
		})
	// A scripted model.LLM: it asks for a refund of 5000, then answers.
	m := &scriptedModel{steps: []step{
		calls(call("call-1", "refund", map[string]any{"order": "A-1", "amount": 5000})),
		text("I cannot refund that."),
	}}
	cfg := llmagent.Config{Name: "shop", Model: m, Tools: []tool.Tool{refund}}
	ag.Configure(&cfg)
	a, _ := llmagent.New(cfg)
	sessions := session.InMemoryService()
	r, _ := runner.New(runner.Config{AppName: "shop", Agent: a, SessionService: sessions})
	s, _ := sessions.Create(context.Background(), &session.CreateRequest{AppName: "shop", UserID: "alice"})

	ctx, task, _ := guard.StartTask(context.Background(), agentguard.TaskSpec{Purpose: "refunds"})
	defer task.End(ctx)
	for ev, err := range r.Run(ctx, "alice", s.Session.ID(), userText("Refund 5000."), agent.RunConfig{}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, p := range ev.Content.Parts {
			if p.FunctionResponse != nil {
				fmt.Println("tool result:", p.FunctionResponse.Response["error"])
			}
			if p.Text != "" {
				fmt.Println("model:", p.Text)
			}
		}
	}
	// Output:
	// tool result: The call to tool "refund" was denied (authorize): refunds over 1000 are never made by an agent. Policy does not allow it; do not retry it with the same arguments.
	// model: I cannot refund that.
}
