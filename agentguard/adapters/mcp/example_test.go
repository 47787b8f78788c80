package mcpguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/adapters/mcp"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// exampleServer is an MCP server with a read-only tool and a destructive
// one, connected to a client over the SDK's in-memory transport.
func exampleServer(ctx context.Context, server *mcp.Server, serverSide func(mcp.Transport) mcp.Transport) *mcp.ClientSession {
	schema := json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}}}`)
	answer := func(text string) mcp.ToolHandler {
		return func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil
		}
	}
	server.AddTool(&mcp.Tool{Name: "read_file", Description: "Reads a file.", InputSchema: schema,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, answer("hello"))
	server.AddTool(&mcp.Tool{Name: "delete_file", Description: "Deletes a file.", InputSchema: schema}, answer("deleted"))
	ct, st := mcp.NewInMemoryTransports()
	var t mcp.Transport = st
	if serverSide != nil {
		t = serverSide(st)
	}
	if _, err := server.Connect(ctx, t, nil); err != nil {
		panic(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: mcpguard.ToolListChanged(nil),
	})
	cs, err := client.Connect(ctx, ct, nil)
	if err != nil {
		panic(err)
	}
	return cs
}

// readOnly permits calls of read-only tools and nothing else.
var readOnly = policytest.Func(func(r *policy.Request) policy.Decision {
	if r.Action == "" && r.Tool.ReadOnly {
		return policy.Decision{Allowed: true, Policies: []string{"read-only"}}
	}
	return policy.Decision{Policies: []string{"read-only"}, Reason: "only read-only tools"}
})

func ExampleNewSession() {
	ctx := context.Background()
	cs := exampleServer(ctx, mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil), nil)

	// The operator pins the server's tools as reviewed.
	lock := agentguard.NewLock()
	if _, err := mcpguard.PinTools(ctx, lock, cs, "files"); err != nil {
		panic(err)
	}
	guard, err := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/demo"))),
		agentguard.WithPolicy(readOnly),
		agentguard.WithLock(lock),
		agentguard.WithAudit(audittest.NewRecorder()),
	)
	if err != nil {
		panic(err)
	}
	defer guard.Close(ctx)
	s, err := mcpguard.NewSession(ctx, guard, cs)
	if err != nil {
		panic(err)
	}
	defer s.Close()

	tools, _ := s.Tools(ctx)
	for _, t := range tools {
		fmt.Println("listed:", t.Name)
	}
	for _, name := range []string{"read_file", "delete_file"} {
		// On a denial, res is what the model reads instead of the tool's
		// result (isError, agentguard.Explain's text) and err says why.
		res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{"path": "a.txt"}})
		fmt.Printf("%s: denied=%v isError=%v %s\n", name, errors.Is(err, agentguard.ErrDenied), res.IsError, res.Content[0].(*mcp.TextContent).Text)
	}
	// Output:
	// listed: read_file
	// read_file: denied=false isError=false hello
	// delete_file: denied=true isError=true The call to tool "delete_file" was denied (authorize): only read-only tools. Policy does not allow it; do not retry it with the same arguments.
}

func ExampleServer_Middleware() {
	ctx := context.Background()
	guard, err := agentguard.New(
		agentguard.WithIdentity(mcpguard.CallerSource(nil)),
		agentguard.WithPolicy(readOnly),
		agentguard.WithAudit(audittest.NewRecorder()),
	)
	if err != nil {
		panic(err)
	}
	defer guard.Close(ctx)
	g, err := mcpguard.NewServer(guard, "files")
	if err != nil {
		panic(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)
	server.AddReceivingMiddleware(g.Middleware())
	// The in-memory transport carries no token: its connection names the
	// caller. Over HTTP, use auth.RequireBearerToken(mcpguard.VerifyJWTSVID(...)).
	demo := identity.MustParse("spiffe://example.org/agent/demo").ID
	cs := exampleServer(ctx, server, func(t mcp.Transport) mcp.Transport { return mcpguard.CallerTransport(t, demo) })
	defer cs.Close()

	list, _ := cs.ListTools(ctx, nil)
	for _, t := range list.Tools {
		fmt.Println("listed:", t.Name)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "delete_file", Arguments: map[string]any{"path": "a.txt"}})
	fmt.Println(err, res.IsError, res.Content[0].(*mcp.TextContent).Text)
	// Output:
	// listed: read_file
	// <nil> true The call to tool "delete_file" was denied (authorize): only read-only tools. Policy does not allow it; do not retry it with the same arguments.
}
