package einoguard_test

import (
	"context"
	"fmt"

	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/components/tool/utils"
	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"

	"github.com/agentguard/go-sdk/agentguard"
	einoguard "github.com/agentguard/go-sdk/agentguard/adapters/eino"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// A ToolsNode built from a toolset runs each call through the guard: the
// model is shown only the tools policy allows, an allowed call runs, and a
// denied one is answered with the guard's explanation.
func ExampleToolset() {
	ctx := context.Background()
	guard, err := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/shop"))),
		agentguard.WithPolicy(policytest.NewRules(policytest.Rule{ID: "lookups", Effect: policytest.Allow, Tool: "lookup_order"})),
		agentguard.WithAudit(audittest.NewRecorder()),
	)
	if err != nil {
		panic(err)
	}
	defer guard.Close(ctx)

	type order struct {
		Order string `json:"order"`
	}
	lookup, _ := utils.InferTool("lookup_order", "Look an order up.", func(_ context.Context, a order) (string, error) {
		return "order " + a.Order + ": shipped", nil
	})
	closeAccount, _ := utils.InferTool("close_account", "Close an account.", func(_ context.Context, a order) (string, error) {
		return "closed", nil
	})
	shop, err := einoguard.New(ctx, guard, "shop", []tool.BaseTool{lookup, closeAccount})
	if err != nil {
		panic(err)
	}

	infos, _ := shop.ToolInfos(ctx)
	for _, info := range infos {
		fmt.Println("the model sees:", info.Name)
	}

	node, _ := compose.NewToolNode(ctx, shop.NodeConfig())
	results, err := node.Invoke(ctx, &schema.Message{Role: schema.Assistant, ToolCalls: []schema.ToolCall{
		{ID: "call-1", Function: schema.FunctionCall{Name: "lookup_order", Arguments: `{"order":"O-1"}`}},
		{ID: "call-2", Function: schema.FunctionCall{Name: "close_account", Arguments: `{"order":"O-1"}`}},
	}})
	if err != nil {
		panic(err)
	}
	for _, m := range results {
		fmt.Printf("%s: %s\n", m.ToolCallID, m.Content)
	}
	// Output:
	// the model sees: lookup_order
	// call-1: order O-1: shipped
	// call-2: The call to tool "close_account" was denied (authorize): no rule allows this call. Policy does not allow it; do not retry it with the same arguments.
}
