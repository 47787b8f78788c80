package main

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http/httptest"
	"strings"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"

	mcpgoguard "github.com/agentguard/go-sdk/agentguard/adapters/mcpgo"
)

//go:embed policies/server/*.cedar
var serverPolicyFiles embed.FS

// billingID is the billing server's SPIFFE ID: the audience its callers'
// JWT-SVIDs must be addressed to.
const billingID = "spiffe://example.org/mcp/billing"

// runBilling serves a guarded "billing" MCP server over mcp-go's streamable
// HTTP transport on a loopback port, and calls it as the support bot (its
// JWT-SVID in the Authorization header) and as a client without one.
func runBilling(ctx context.Context, out io.Writer, issuer *identity.DevIssuer, bot *identity.DevAgent) error {
	sub, _ := fs.Sub(serverPolicyFiles, "policies/server")
	set, err := policy.LoadFS(sub)
	if err != nil {
		return err
	}
	engine, err := policy.NewCedarEngine(set)
	if err != nil {
		return err
	}
	// The server's guard acts for each request's caller, as verified; its
	// tools get a task credential for the ledger, and its audit records
	// are printed.
	broker := credentials.NewBroker(credentials.WithProvider("ledger-token", credentials.NewStaticProvider("example-ledger-token")))
	g, err := agentguard.New(
		agentguard.WithIdentity(mcpgoguard.Callers()),
		agentguard.WithPolicy(engine),
		agentguard.WithBroker(broker),
		agentguard.WithAudit(audit.SinkFunc(func(_ context.Context, e audit.Event) error {
			if e.Kind == audit.KindToolCall {
				fmt.Fprintf(out, "      audit[billing] %s\n", describeRecord(e))
			}
			return nil
		})),
	)
	if err != nil {
		return err
	}
	defer g.Close(context.WithoutCancel(ctx))
	guard, err := mcpgoguard.NewServer(g, "billing", mcpgoguard.WithToolConfig(func(t *agentguard.Tool) {
		t.Credentials = []credentials.Requirement{{Name: "ledger", Provider: "ledger-token", Audience: "ledger"}}
	}))
	if err != nil {
		return err
	}
	srv := server.NewMCPServer("billing", "1.0.0", guard.Options()...)
	srv.AddTool(mcp.NewTool("balance", mcp.WithDescription("Balance of an account."),
		mcp.WithReadOnlyHintAnnotation(true), mcp.WithString("account", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			with := "without a ledger credential"
			if c, ok := credentials.FromContext(ctx, "ledger"); ok && !c.Secret.IsZero() {
				with = "read with the task's ledger credential"
			}
			return mcp.NewToolResultText("balance of " + req.GetString("account", "?") + ": 12.00 EUR (" + with + ")"), nil
		})
	srv.AddTool(mcp.NewTool("close_account", mcp.WithDescription("Close an account."),
		mcp.WithDestructiveHintAnnotation(true), mcp.WithString("account", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("closed"), nil
		})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(srv,
		server.WithHTTPContextFunc(mcpgoguard.JWTSVIDContext(issuer, billingID))))
	defer ts.Close()
	fmt.Fprintln(out, "\nthe billing MCP server, guarded, on a loopback port; callers prove who they are with JWT-SVIDs")

	callers := []struct {
		name    string
		headers transport.HTTPHeaderFunc
		calls   []step
	}{
		{"support-bot", mcpgoguard.JWTSVIDHeader(bot, billingID), []step{
			{"balance", map[string]any{"account": "A-7"}},
			{"close_account", map[string]any{"account": "A-7"}},
		}},
		{"anonymous", nil, []step{{"balance", map[string]any{"account": "A-7"}}}},
	}
	for _, c := range callers {
		var opts []transport.StreamableHTTPCOption
		if c.headers != nil {
			opts = append(opts, transport.WithHTTPHeaderFunc(c.headers))
		}
		mc, err := client.NewStreamableHttpClient(ts.URL+"/mcp", opts...)
		if err != nil {
			return err
		}
		defer mc.Close()
		if err := mc.Start(ctx); err != nil {
			return err
		}
		if _, err := mc.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
			return err
		}
		list, err := mc.ListTools(ctx, mcp.ListToolsRequest{})
		if err != nil {
			return err
		}
		names := []string{}
		for _, t := range list.Tools {
			names = append(names, t.Name)
		}
		if len(names) == 0 {
			names = append(names, "nothing")
		}
		fmt.Fprintf(out, "%s is shown: %s\n", c.name, strings.Join(names, ", "))
		for _, s := range c.calls {
			args, _ := json.Marshal(s.args)
			fmt.Fprintf(out, "%s -> %s %s\n", c.name, s.tool, args)
			res, err := mc.CallTool(ctx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: s.tool, Arguments: s.args}})
			if err != nil {
				return err
			}
			mark := ""
			if res.IsError {
				mark = "[isError] "
			}
			fmt.Fprintf(out, "      <- %s%s\n", mark, resultText(res))
		}
	}
	return nil
}

// describeRecord is one line of a tool-call audit record: tool, agent,
// decision and where it stopped or how it ended.
func describeRecord(e audit.Event) string {
	agent := e.Agent
	if agent == "" {
		agent = "nobody"
	}
	line := e.Tool + " by " + agent + ": " + e.Decision
	if e.Step != "" {
		return line + " at " + e.Step
	}
	return line + ", " + e.Outcome
}
