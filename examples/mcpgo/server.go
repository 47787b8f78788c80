package main

import (
	"context"
	"fmt"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentguard/go-sdk/credentials"
)

// ordersCredential is the name under which the orders tools receive the
// task's credential for the orders API.
const ordersCredential = "orders-api"

// lookupTool is the orders server's look-up tool, with description.
func lookupTool(description string) mcp.Tool {
	return mcp.NewTool("lookup_order",
		mcp.WithDescription(description),
		mcp.WithReadOnlyHintAnnotation(true),
		mcp.WithOpenWorldHintAnnotation(false),
		mcp.WithString("order", mcp.Required(), mcp.Description("the order ID")),
	)
}

// newOrdersServer is a plain mcp-go server, as a third party runs it: the
// agent's side is what AgentGuard guards here.
func newOrdersServer() *server.MCPServer {
	srv := server.NewMCPServer("orders", "1.0.0", server.WithToolCapabilities(true))
	srv.AddTool(lookupTool("Look up an order by its ID."), lookup("shipped"))
	srv.AddTool(mcp.NewTool("refund",
		mcp.WithDescription("Refund part of an order."),
		mcp.WithDestructiveHintAnnotation(false),
		mcp.WithOpenWorldHintAnnotation(false),
		mcp.WithString("order", mcp.Required()),
		mcp.WithInteger("amount", mcp.Required(), mcp.Description("in euros")),
	), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(fmt.Sprintf("refunded %d on %s%s", req.GetInt("amount", 0), req.GetString("order", "?"), sawCredential(ctx))), nil
	})
	srv.AddTool(mcp.NewTool("delete_orders",
		mcp.WithDescription("Delete every order of a customer."),
		mcp.WithDestructiveHintAnnotation(true),
		mcp.WithString("customer", mcp.Required()),
	), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("deleted"), nil
	})
	return srv
}

// lookup answers every look-up with status.
func lookup(status string) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("order " + req.GetString("order", "?") + ": " + status + sawCredential(ctx)), nil
	}
}

// sawCredential says whether the call came with the task's credential. In
// process, the server's handler runs with the client's context; over HTTP
// mcpgoguard.CredentialHeader would send it as a header.
func sawCredential(ctx context.Context) string {
	if c, ok := credentials.FromContext(ctx, ordersCredential); ok && !c.Secret.IsZero() {
		return " (with the task's orders-api credential)"
	}
	return " (without a credential)"
}
