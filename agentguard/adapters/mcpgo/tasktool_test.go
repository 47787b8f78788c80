package mcpgoguard_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"

	mcpgoguard "github.com/agentguard/go-sdk/agentguard/adapters/mcpgo"
)

// legacyClient connects a real mcp-go client to srv with the initialize
// handshake: mcp-go v1.2.1's client has no call for task-augmented
// tools/call (CallTool cannot parse a CreateTaskResult), so the tests send
// that request on the client's transport, which a legacy session accepts
// as it is.
func legacyClient(t *testing.T, srv *server.MCPServer) *client.Client {
	t.Helper()
	mc, err := client.NewInProcessClientWithOptions(srv, client.WithLegacyProtocolOnly())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Close() })
	ctx := t.Context()
	if err := mc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.Initialize(ctx, mcp.InitializeRequest{Params: mcp.InitializeParams{ClientInfo: mcp.Implementation{Name: "test", Version: "1"}}}); err != nil {
		t.Fatal(err)
	}
	return mc
}

var requestIDs atomic.Int64

// startTask sends a task-augmented tools/call and returns the task's ID,
// or the JSON-RPC error.
func startTask(t *testing.T, mc *client.Client, name string, args map[string]any) (string, error) {
	t.Helper()
	resp, err := mc.GetTransport().SendRequest(t.Context(), transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION,
		ID:      mcp.NewRequestId(1000 + requestIDs.Add(1)),
		Method:  string(mcp.MethodToolsCall),
		Params:  map[string]any{"name": name, "arguments": args, "task": map[string]any{}},
	})
	if err != nil {
		t.Fatalf("tools/call: %v", err)
	}
	if resp.Error != nil {
		return "", resp.Error.AsError()
	}
	var created struct {
		Task struct {
			TaskID string `json:"taskId"`
		} `json:"task"`
	}
	if err := json.Unmarshal(resp.Result, &created); err != nil || created.Task.TaskID == "" {
		t.Fatalf("tools/call result %s: %v", resp.Result, err)
	}
	return created.Task.TaskID, nil
}

// taskResult waits for the task's result through the client.
func taskResult(t *testing.T, mc *client.Client, id string) *mcp.TaskResultResult {
	t.Helper()
	res, err := mc.TaskResult(t.Context(), mcp.TaskResultRequest{Params: mcp.TaskResultParams{TaskId: id}})
	if err != nil {
		t.Fatalf("tasks/result: %v", err)
	}
	return res
}

func taskText(r *mcp.TaskResultResult) string {
	return text(&mcp.CallToolResult{Content: r.Content})
}

func reportTool(name string) mcp.Tool {
	return mcp.NewTool(name, mcp.WithDescription("Build a long report."),
		mcp.WithTaskSupport(mcp.TaskSupportRequired), mcp.WithString("month"))
}

// TestTaskToolBypassesMiddleware shows the bypass in plain mcp-go v1.2.1:
// a tool added with AddTaskTool runs (executeTaskTool) without the tool
// handler middleware ever seeing its call.
func TestTaskToolBypassesMiddleware(t *testing.T) {
	var seen atomic.Int32
	srv := server.NewMCPServer("plain", "1", server.WithTaskCapabilities(true, true, true),
		server.WithToolHandlerMiddleware(func(next server.ToolHandlerFunc) server.ToolHandlerFunc {
			return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				seen.Add(1)
				return next(ctx, req)
			}
		}))
	ran := make(chan struct{}, 1)
	srv.AddTaskTool(reportTool("report"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CreateTaskResult, error) {
		ran <- struct{}{}
		return &mcp.CreateTaskResult{Content: []mcp.Content{mcp.NewTextContent("done")}}, nil
	})
	srv.AddTool(mcp.NewTool("ping"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("pong"), nil
	})
	mc := legacyClient(t, srv)

	id, err := startTask(t, mc, "report", nil)
	if err != nil {
		t.Fatal(err)
	}
	within(t, ran, "the task tool's run")
	if got := taskText(taskResult(t, mc, id)); got != "done" {
		t.Fatalf("task result %q", got)
	}
	if n := seen.Load(); n != 0 {
		t.Fatalf("the middleware saw %d task tool calls; the bypass is gone in this mcp-go", n)
	}
	// The middleware does run for a regular tool on the same server.
	if _, err := mc.CallTool(t.Context(), call("ping", nil)); err != nil {
		t.Fatal(err)
	}
	if n := seen.Load(); n != 1 {
		t.Fatalf("the middleware saw %d calls of a regular tool", n)
	}
}

func TestServerGuardsTaskTools(t *testing.T) {
	engine := serverRules()
	env := newEnv(t, engine, agentguard.WithIdentity(mcpgoguard.Callers()))
	b := newBilling(t, env, mcpgoguard.WithInProcessCaller(identity.MustParse(agentguardtest.AgentID)))
	report := func(c *counter) server.TaskToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CreateTaskResult, error) {
			c.ran(ctx, req.GetArguments())
			return &mcp.CreateTaskResult{Content: []mcp.Content{mcp.NewTextContent("report for " + req.GetString("month", "?"))}}, nil
		}
	}
	if err := b.guard.AddTaskTool(b.srv, reportTool("report"), report(&b.report)); err != nil {
		t.Fatal(err)
	}
	if err := b.guard.AddTaskTool(b.srv, reportTool("purge"), report(&b.purge)); err != nil {
		t.Fatal(err)
	}
	// A task tool whose _meta the application set: the guard's mark goes
	// in a copy, never in the application's value.
	archive := reportTool("archive")
	archive.Meta = &mcp.Meta{AdditionalFields: map[string]any{"team": "billing"}}
	var archived counter
	if err := b.guard.AddTaskTool(b.srv, archive, report(&archived)); err != nil {
		t.Fatal(err)
	}
	if len(archive.Meta.AdditionalFields) != 1 {
		t.Fatalf("AddTaskTool changed the application's tool: %v", archive.Meta.AdditionalFields)
	}
	// A task tool added behind the guard's back.
	b.srv.AddTaskTool(reportTool("leak"), report(&b.unguarded))
	mc := legacyClient(t, b.srv)

	t.Run("list", func(t *testing.T) {
		// purge is always refused; leak would run unguarded.
		if got := listNames(t, mc); got != "archive,balance,crash,report" {
			t.Errorf("tools/list = %s, want archive,balance,crash,report", got)
		}
		// The guard's mark is not shown; the application's _meta is.
		res, err := mc.ListTools(t.Context(), mcp.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(res)
		if strings.Contains(string(raw), "agentguard/guarded-task") || !strings.Contains(string(raw), `"team":"billing"`) {
			t.Errorf("tools/list shows %s", raw)
		}
	})

	t.Run("allowed", func(t *testing.T) {
		id, err := startTask(t, mc, "report", map[string]any{"month": "May"})
		if err != nil {
			t.Fatal(err)
		}
		res := taskResult(t, mc, id)
		if res.IsError || taskText(res) != "report for May" {
			t.Fatalf("report: %q", taskText(res))
		}
		if secret, _ := b.report.seen(); secret != canary {
			t.Error("the task tool ran without the task's credential")
		}
		rec := audittest.ExpectCount(t, env.callRecords("report"), audittest.Want{Decision: audit.Allow, Outcome: audit.OutcomeOK}, 1)
		if rec[0].Agent != agentguardtest.AgentID {
			t.Errorf("audited agent %q", rec[0].Agent)
		}
		if n := env.callSpans("report"); n != 1 {
			t.Errorf("%d spans for one call", n)
		}
	})

	t.Run("denied", func(t *testing.T) {
		id, err := startTask(t, mc, "purge", nil)
		if err != nil {
			t.Fatal(err)
		}
		res := taskResult(t, mc, id)
		if !res.IsError || !strings.Contains(taskText(res), "purges need a person") {
			t.Fatalf("purge: %q", taskText(res))
		}
		if b.purge.n.Load() != 0 {
			t.Error("a denied task tool ran")
		}
		audittest.ExpectCount(t, env.callRecords("purge"), audittest.Want{Decision: audit.Deny, Step: agentguard.StepAuthorize}, 1)
		if n := env.callSpans("purge"); n != 1 {
			t.Errorf("%d spans for one denied call", n)
		}
	})

	t.Run("unguarded task tool is refused", func(t *testing.T) {
		// The filter refuses it before a task exists: nothing can run.
		if _, err := startTask(t, mc, "leak", nil); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("leak: %v, want it refused", err)
		}
		if b.unguarded.n.Load() != 0 {
			t.Error("the unguarded task tool ran")
		}
		// mcp-go's error hook has the guard record the refusal.
		audittest.ExpectCount(t, env.callRecords("leak"), audittest.Want{Decision: audit.Deny, Step: agentguard.StepLookup, Agent: agentguardtest.AgentID}, 1)
		if n := env.callSpans("leak"); n != 1 {
			t.Errorf("%d spans for one refused call", n)
		}
	})

	t.Run("re-added with the same definition is refused", func(t *testing.T) {
		// A reload or a plugin adds the guarded tools again with mcp-go's
		// own AddTaskTool, definitions unchanged: the handlers would run
		// unguarded (purge is denied to everyone by policy).
		var raw counter
		b.srv.AddTaskTool(reportTool("purge"), report(&raw))
		b.srv.AddTaskTool(archive, report(&raw))
		for _, name := range []string{"purge", "archive"} {
			if _, err := startTask(t, mc, name, nil); err == nil || !strings.Contains(err.Error(), "not found") {
				t.Errorf("%s re-added: %v, want it refused", name, err)
			}
		}
		if raw.n.Load() != 0 {
			t.Error("a re-added task tool ran unguarded")
		}
		if got := listNames(t, mc); got != "balance,crash,report" {
			t.Errorf("tools/list = %s, want the re-added tools hidden", got)
		}
	})

	t.Run("replaced definition is refused", func(t *testing.T) {
		// The guarded report is replaced, behind the guard's back, by a
		// task tool of the same name with another definition.
		b.srv.DeleteTools("report")
		var replaced counter
		b.srv.AddTaskTool(mcp.NewTool("report", mcp.WithDescription("Build a report and mail it out."),
			mcp.WithTaskSupport(mcp.TaskSupportRequired)), report(&replaced))
		if _, err := startTask(t, mc, "report", nil); err == nil {
			t.Fatal("the replaced task tool was accepted")
		}
		if replaced.n.Load() != 0 {
			t.Error("the replaced task tool ran")
		}
	})

	env.noCanary(t)
}

func TestRegularToolRunAsTaskIsGuarded(t *testing.T) {
	env := newEnv(t, serverRules(), agentguard.WithIdentity(mcpgoguard.Callers()))
	b := newBilling(t, env, mcpgoguard.WithInProcessCaller(identity.MustParse(agentguardtest.AgentID)))
	var c counter
	b.srv.AddTool(mcp.NewTool("export", mcp.WithDescription("Export invoices."), mcp.WithTaskSupport(mcp.TaskSupportOptional)),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			c.ran(ctx, nil)
			return mcp.NewToolResultText("exported"), nil
		})
	mc := legacyClient(t, b.srv)
	id, err := startTask(t, mc, "export", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := taskText(taskResult(t, mc, id)); got != "exported" {
		t.Fatalf("export as a task: %q", got)
	}
	if secret, _ := c.seen(); secret != canary {
		t.Error("the tool ran as a task without the task's credential")
	}
	audittest.ExpectCount(t, env.callRecords("export"), audittest.Want{Decision: audit.Allow, Outcome: audit.OutcomeOK}, 1)
}
