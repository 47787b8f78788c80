package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentguard/go-sdk/agentguard"
	mcpguard "github.com/agentguard/go-sdk/agentguard/adapters/mcp"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
)

// audience is the files server's name in its callers' JWT-SVIDs.
const audience = "spiffe://example.org/mcp/files"

// storageSecret is the value of the storage credential the files server's
// tools get for each call. It never appears in the transcript.
var storageSecret = "storage-" + rand.Text()

// storage is the credential every tool of the files server declares.
var storage = credentials.Requirement{Name: "storage", Provider: "storage", Audience: "storage.example", Scopes: []string{"files"}}

// filesServer is an MCP server guarded by AgentGuard: its own guard
// decides for the caller that its JWT-SVID names, and asks the caller's
// client, through MCP elicitation, for its user's consent before a file is
// shared. (A client that says yes by itself consents for itself: calls
// that need a person other than the agent's user take an approver the
// server's operators run, such as approval.Queue.)
type filesServer struct {
	mcp    *mcp.Server
	guard  *agentguard.Guard
	mcpg   *mcpguard.Server
	http   *httptest.Server
	files  map[string]string
	script *transcript
}

func newFilesServer(issuer *identity.DevIssuer, t *transcript) (*filesServer, error) {
	self, err := issuer.Agent("/mcp/files")
	if err != nil {
		return nil, err
	}
	engine, err := loadEngine("server.cedar")
	if err != nil {
		return nil, err
	}
	consent := approval.NewDeferred()
	broker := credentials.NewBroker(credentials.WithProvider("storage", credentials.NewStaticProvider(storageSecret)))
	g, err := agentguard.New(
		// Each request's caller; the server's own SVID only for work
		// outside requests.
		agentguard.WithIdentity(mcpguard.CallerSource(self)),
		agentguard.WithPolicy(engine),
		agentguard.WithBroker(broker),
		agentguard.WithApprover(consent),
		agentguard.WithAudit(t.auditSink("server")),
	)
	if err != nil {
		return nil, err
	}
	s := &filesServer{guard: g, files: map[string]string{"notes.txt": "Buy milk. Call Bob."}, script: t}
	s.mcpg, err = mcpguard.NewServer(g, "files",
		mcpguard.WithToolConfig(func(t *agentguard.Tool) { t.Credentials = []credentials.Requirement{storage} }),
		// Sharing asks for the consent of the assistant's user, through
		// its MCP client: the answer is the client's, recorded as
		// "mcp-client:<its SPIFFE ID>", not an operator's approval.
		mcpguard.WithElicitation(consent),
	)
	if err != nil {
		return nil, err
	}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1.0.0"}, nil)
	s.addTools()
	s.mcp.AddReceivingMiddleware(s.mcpg.Middleware())
	verify := mcpguard.VerifyJWTSVID(issuer, audience)
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp }, nil)
	s.http = httptest.NewServer(auth.RequireBearerToken(verify, nil)(handler))
	return s, nil
}

var pathSchema = json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}`)

func (s *filesServer) addTools() {
	s.mcp.AddTool(&mcp.Tool{
		Name: "read_file", Description: "Reads a file.", InputSchema: pathSchema,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)},
	}, s.tool(func(args map[string]string) string { return s.files[args["path"]] }))
	s.mcp.AddTool(&mcp.Tool{
		Name: "share_file", Description: "Shares a file with someone by email.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"},"to":{"type":"string"}},"required":["path","to"]}`),
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false)},
	}, s.tool(func(args map[string]string) string { return "shared " + args["path"] + " with " + args["to"] }))
	s.mcp.AddTool(&mcp.Tool{
		Name: "delete_file", Description: "Deletes a file.", InputSchema: pathSchema,
	}, s.tool(func(args map[string]string) string { delete(s.files, args["path"]); return "deleted" }))
}

// tool adapts f to an MCP tool handler that uses the call's storage
// credential, as a real tool would to reach its backend.
func (s *filesServer) tool(f func(args map[string]string) string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if _, ok := credentials.FromContext(ctx, storage.Name); !ok {
			return nil, fmt.Errorf("no storage credential")
		}
		s.script.printf("    server: %s runs with the task's storage credential\n", req.Params.Name)
		var args map[string]string
		if err := json.Unmarshal(req.Params.Arguments, &args); err != nil {
			return nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: f(args)}}}, nil
	}
}

func (s *filesServer) close(ctx context.Context) error {
	s.http.Close()
	return s.guard.Close(ctx)
}

func ptr[T any](v T) *T { return &v }
