// Package mcpgoguard guards the MCP tools of Go agents and servers built on
// mcp-go (github.com/mark3labs/mcp-go, v1.2.1). Import it as
//
//	import mcpgoguard "github.com/agentguard/go-sdk/agentguard/adapters/mcpgo"
//
// It is a module of its own, so that the core SDK never depends on mcp-go.
//
// # Client: an agent calling a remote MCP server
//
// Client wraps an mcp-go *client.Client. The server's tools become the
// toolset named after the server (its initialize result's serverInfo.name,
// or WithToolset), each a Cedar resource Tool::"<name>" in
// Toolset::"<server>", whose MCP annotations are its attributes
// (read_only, destructive, idempotent, open_world, with MCP's defaults for
// missing hints: destructive and open-world true; as MCP gives the
// destructive hint a meaning only for tools that are not read-only, a
// read-only tool is never destructive).
//
//	mc, _ := client.NewStreamableHttpClient(url,
//		transport.WithHTTPHeaderFunc(mcpgoguard.JWTSVIDHeader(agent, serverID)))
//	c, err := mcpgoguard.NewClient(ctx, guard, mc) // starts, initializes, lists
//	changes, err := c.Review(ctx)                  // a human approves the definitions
//	tools, err := c.Tools(ctx)                     // what the model may be offered
//	res, err := c.CallTool(ctx, req)               // guarded tools/call
//
// Tool definitions (name, title, description, input and output schemas,
// annotations) are pinned: they are taken with Registry.Sync, which never
// trusts them on first use, so a new tool, or a tool whose description or
// schema changed since it was pinned (a rug pull), is hidden from Tools and
// its calls are denied with agentguard.ErrIntegrity, never sent to the
// server, until Review approves it. Tools lists the server's tools afresh
// each time; a notifications/tools/list_changed makes the next CallTool
// list them first; Refresh lists them on demand. A listing that fails, or
// holds more than WithMaxTools tools (DefaultMaxTools) or MaxListPages
// pages, leaves no tool callable until one succeeds. A reviewed lock
// (agentguard.WithLock) with the definitions pinned (Describe gives the
// guard's description of an MCP tool) needs no review at run time.
//
// # Server: a Go MCP server guarding its callers
//
// Server installs the guard in an mcp-go server: a tool handler middleware
// guards every tools/call, a tools/list hook shows each caller only the
// tools policy lets it call, and a tool filter refuses task tools the guard
// does not know. The acting agent is the caller of each request, verified:
// give the guard the identity source Callers, and the streamable HTTP
// server JWTSVIDContext, which takes the caller's SPIFFE ID from a bearer
// JWT-SVID addressed to the server. A request without a verified caller is
// refused and shown no tools (fail closed). WithInProcessCaller names the
// caller of mcp-go's in-process clients, for tests and servers embedded in
// the agent; it never applies to HTTP requests or other sessions, and
// never replaces a verified caller.
//
//	g, _ := agentguard.New(agentguard.WithIdentity(mcpgoguard.Callers()), ...)
//	guard, _ := mcpgoguard.NewServer(g, "billing")
//	srv := server.NewMCPServer("billing", "1.0.0", guard.Options()...)
//	srv.AddTool(tool, handler)                    // guarded by the middleware
//	_ = guard.AddTaskTool(srv, taskTool, handler) // task tools: see below
//	http.Handle("/mcp", server.NewStreamableHTTPServer(srv,
//		server.WithHTTPContextFunc(mcpgoguard.JWTSVIDContext(bundles, "spiffe://example.org/mcp/billing"))))
//
// mcp-go makes the first tool handler middleware given the outermost:
// give Options (or Middleware) before any other tool middleware, since an
// outer middleware that answers by itself (a cache, a short circuit) would
// answer without the guard.
//
// Without a lock of its own the guard pins the server's own tools on first
// use (at their first listing or call); a definition changed at run time
// is then refused until reviewed. The pins are per toolset and name: per-
// session tools (AddSessionTool) that share a name but not a definition
// have the first one seen pinned, and every other session's variant is
// refused as changed (fail closed) until reviewed; give such tools names
// of their own, or pin them in a lock.
//
// # What is not guarded
//
// Task tools bypass mcp-go's tool middleware: a tool added with
// MCPServer.AddTaskTool (or AddTaskTools) is run by executeTaskTool, which
// calls its handler directly on a goroutine of its own, so
// WithToolHandlerMiddleware never sees its calls (TestTaskToolBypassesMiddleware
// shows it). Add task tools with Server.AddTaskTool, which guards the
// handler itself and stamps the tool with a random mark; the tool filter
// hides and refuses every task tool without that mark (one added, or
// added again under the same name and definition, with mcp-go's own
// AddTaskTool) or whose definition changed since. A regular tool with task
// support called as a task goes through the middleware, and is guarded.
// mcp-go runs both with the tools/call request's context, which ends as
// soon as the task is created; the guard keeps its values but not its end,
// so tasks/cancel does not stop a guarded task (in v1.2.1 it could not
// reach the handler anyway).
//
// Calls made on the wrapped mcp-go client directly, rather than through
// Client, are not guarded. mcp-go refuses a tools/call of a tool it does
// not have, or that a filter hides, with a JSON-RPC error (not an isError
// result) before any middleware runs; such a call never reaches a tool.
// The error hook AddHooks installs (Options includes it) has the guard
// record it, for the request's caller, as a denial at the lookup step
// (agentguard.ErrUnknownTool) with its span; a server that installs its
// own Hooks without calling AddHooks loses those records, not the
// refusal. Other calls mcp-go refuses before the middleware (a tool that
// requires a task called without one, a task tool called synchronously)
// run nothing and are not recorded. The definition pinned
// on the client side is the one mcp-go decodes, which is what the model is
// shown: schema keywords outside mcp-go's ToolArgumentsSchema are dropped
// by mcp-go, before anyone sees them. _meta, icons and execution are not
// part of a definition. Task-augmented calls through Client are authorized
// when they are made; their results, fetched with tasks/result, are not
// guarded.
//
// # Denials and approvals
//
// A denied call comes back in MCP's idiom, a CallToolResult marked isError
// whose text is agentguard.Explain's (which tool, the step and reason;
// never a credential value), so that the model reads it and the run goes
// on. On the server the client receives that result, never a JSON-RPC
// error, and so it does for a tool that failed (its message scrubbed of
// the call's credentials). Client.CallTool returns the result and the
// guard's error both.
//
// Approvals use the guard's Approver. With approval.Deferred on the client
// side, a call that needs a human is denied at once with an error matching
// agentguard.ErrApprovalPending and an isError result naming the request
// ID; once the application records the human's answer (Deferred.Decide,
// approvers named by the application), the same call in the same task
// runs. On the server side a blocking Approver (approval.Queue, a webhook)
// holds the tools/call until a person decides (TestServerApprovalQueue):
// a grant runs the tool once, a refusal is an isError result. A Deferred
// does not fit the server as it stands: each tools/call runs in a task of
// its own, so a decision stored for one call never answers the client's
// next one (it would take a task that outlives the request, which the
// application's context function would have to give each request).
// MCP's own way of asking a
// user, elicitation, is answered by the calling client, the very agent the
// server guards: at best its user's consent, never a separation of duties.
// This package does not offer it as an approval (the official SDK's
// adapter offers it, opt-in, as that consent and records it under the
// client's identity).
package mcpgoguard
