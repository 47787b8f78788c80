package policy_test

import (
	"context"
	"fmt"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// A Cedar engine decides on one exact call: the arguments, the task's state
// and the agent's groups all count. Forbids give their @reason; deciding
// permits give their obligations.
func ExampleCedarEngine() {
	set := policy.MustParseSet("refunds.cedar", `
@id("refunds") @approval("manager")
permit (principal in AgentGroup::"support", action == Action::"refund", resource);

@id("refund-limit") @reason("refunds over 100 need a human")
forbid (principal, action == Action::"refund", resource) when { context.args.amount > 100 };
`)
	engine, _ := policy.NewCedarEngine(set, policy.WithAgentGroups(map[string][]string{
		"spiffe://example.org/agent/support": {"support"},
	}))
	ask := func(agent, args string) {
		d, err := engine.Decide(context.Background(), &policy.Request{
			Agent: identity.MustParse(agent),
			Tool:  policy.Tool{Name: "refund"},
			Args:  []byte(args),
		})
		fmt.Println(d.Allowed, d.Policies, d.Reason, d.Obligations, err)
	}
	ask("spiffe://example.org/agent/support", `{"amount": 40}`)
	ask("spiffe://example.org/agent/support", `{"amount": 400}`)
	ask("spiffe://example.org/agent/intern", `{"amount": 40}`)
	// Output:
	// true [refunds]  [{approval manager refunds}] <nil>
	// false [refund-limit] refunds over 100 need a human [] <nil>
	// false [] no policy permits this call [] <nil>
}
