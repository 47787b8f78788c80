package mcpgoguard_test

import (
	"context"
	"fmt"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"

	mcpgoguard "github.com/agentguard/go-sdk/agentguard/adapters/mcpgo"
)

// A guarded mcp-go server: tools/list shows the caller what policy lets it
// call, and a denied tools/call comes back as an isError result.
func ExampleServer() {
	engine := policytest.NewRules(
		policytest.Rule{ID: "reads", Effect: policytest.Allow, Tool: "balance"},
	)
	g, _ := agentguard.New(
		agentguard.WithIdentity(mcpgoguard.Callers()),
		agentguard.WithPolicy(engine),
		agentguard.WithAudit(discard{}),
	)
	defer g.Close(context.Background())
	// WithInProcessCaller names the caller of in-process clients only:
	// over HTTP, verify callers with JWTSVIDContext.
	guard, _ := mcpgoguard.NewServer(g, "billing",
		mcpgoguard.WithInProcessCaller(identity.MustParse("spiffe://example.org/agent/buyer")))
	srv := server.NewMCPServer("billing", "1.0.0", guard.Options()...)
	srv.AddTool(mcp.NewTool("balance"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("12.00"), nil
	})
	srv.AddTool(mcp.NewTool("refund"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("refunded"), nil
	})

	ctx := context.Background()
	mc, _ := client.NewInProcessClient(srv)
	defer mc.Close()
	_ = mc.Start(ctx)
	_, _ = mc.Initialize(ctx, mcp.InitializeRequest{})
	list, _ := mc.ListTools(ctx, mcp.ListToolsRequest{})
	for _, t := range list.Tools {
		fmt.Println("listed:", t.Name)
	}
	for _, name := range []string{"balance", "refund"} {
		res, _ := mc.CallTool(ctx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: name}})
		fmt.Printf("%s: isError=%v %s\n", name, res.IsError, res.Content[0].(mcp.TextContent).Text)
	}
	// Output:
	// listed: balance
	// balance: isError=false 12.00
	// refund: isError=true The call to tool "refund" was denied (authorize): no rule allows this call. Policy does not allow it; do not retry it with the same arguments.
}

// discard is an audit sink that keeps nothing.
type discard struct{}

func (discard) Write(context.Context, audit.Event) error { return nil }
