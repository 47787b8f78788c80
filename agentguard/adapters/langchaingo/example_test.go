package langchainguard_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/tmc/langchaingo/agents"
	"github.com/tmc/langchaingo/chains"
	"github.com/tmc/langchaingo/tools"

	"github.com/agentguard/go-sdk/agentguard"
	langchainguard "github.com/agentguard/go-sdk/agentguard/adapters/langchaingo"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// Guard the tools of a langchaingo one-shot agent with Cedar policy: the
// free-text input of a tool is context.args.input, and a denial is the
// observation the model reads next.
func Example() {
	policies := policy.MustParseSet("support.cedar", `
@id("lookup")
permit (principal, action == Action::"lookup", resource in Toolset::"support");

@id("refund-orders")
permit (principal, action == Action::"refund", resource in Toolset::"support")
when { context.args.input like "O-*" };
`)
	engine, _ := policy.NewCedarEngine(policies)
	g, _ := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/support"))),
		agentguard.WithPolicy(engine),
		agentguard.WithAudit(audittest.NewRecorder()),
	)
	defer g.Close(context.Background())

	lookup := &fakeTool{name: "lookup", desc: "Looks up an order."}
	refund := &fakeTool{name: "refund", desc: "Refunds an order."}
	set, _ := langchainguard.New(g, "support", []tools.Tool{lookup, refund})

	ctx, task, _ := g.StartTask(context.Background(), agentguard.TaskSpec{Purpose: "ticket T-1"})
	defer task.End(ctx)
	allowed, _ := set.Allowed(ctx)

	model := newModel(
		action("refund", "O-1"),
		action("refund", "every order"),
		text("Final Answer: refunded O-1 only"),
	)
	executor := agents.NewExecutor(set.Agent(agents.NewOneShotAgent(model, allowed)))
	answer, _ := chains.Run(ctx, executor, "Refund O-1, then everything.")

	_, scratchpad, _ := strings.Cut(model.Prompts()[2], "Begin!")
	for _, line := range strings.Split(scratchpad, "\n") {
		if strings.HasPrefix(line, "Observation:") {
			fmt.Println(line)
		}
	}
	fmt.Println(answer)
	// Output:
	// Observation: refund done: O-1
	// Observation: The call to tool "refund" was denied (authorize): no policy permits this call. Policy does not allow it; do not retry it with the same arguments.
	// refunded O-1 only
}
