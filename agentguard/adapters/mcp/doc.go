// Package mcpguard guards the tool calls that pass through the official MCP
// Go SDK (github.com/modelcontextprotocol/go-sdk), on both sides of the
// protocol. It is its own module, so that the core module never imports
// MCP:
//
//	go get github.com/agentguard/go-sdk/agentguard/adapters/mcp
//
//	import mcpguard "github.com/agentguard/go-sdk/agentguard/adapters/mcp"
//
// # Client side: an agent calling remote MCP servers
//
// A Session wraps an mcp.ClientSession. The server's tools become the tools
// of one agentguard.Registry, whose toolset (policy's Toolset::"<name>") is
// the server's name from its initialize result (WithToolset overrides it);
// each tool's annotations become the resource's attributes (read_only,
// destructive, idempotent, open_world, with MCP's defaults for absent
// hints), and WithToolConfig adds what MCP cannot say (risk, labels, the
// credentials a call needs).
//
//	client := mcp.NewClient(impl, &mcp.ClientOptions{
//		ToolListChangedHandler: mcpguard.ToolListChanged(nil),
//	})
//	cs, err := client.Connect(ctx, transport, nil)
//	...
//	s, err := mcpguard.NewSession(ctx, guard, cs)
//	defer s.Close()
//	tools, err := s.Tools(ctx) // for the model: what policy lets it call
//	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
//	// res is for the model either way: on a denial or a failure it is an
//	// isError result with agentguard.Explain's text, and err says why.
//
// Tool definitions are pinned, never trusted on first use: a tool is listed
// and callable only once its definition (name, title, description, input
// and output schemas, annotations) is pinned in the guard's Lock. An
// operator pins a server's tools ahead of time with PinTools and a lock
// file given to agentguard.WithLock, or approves them with
// Registry.Review (policy's Action::"change_toolset" and the guard's
// approver). When the server sends notifications/tools/list_changed, the
// session lists the tools again (Session.Refresh, which the application may
// also call): a definition that changed (a rug pull: a description that now
// says "ignore previous instructions...") is hidden from Tools and its
// calls are denied with agentguard.ErrIntegrity until a review approves it,
// a tool that is new waits the same way, and a tool the server no longer
// lists is denied with agentguard.ErrUnknownTool. Registry.Pending shows
// what waits. A listing that fails leaves no tool callable until one
// succeeds.
//
// A denied call is not sent to the server. CallTool (and Invoke) then
// returns the guard's error (matching agentguard.ErrDenied) together with
// MCP's idiom for the model, a CallToolResult with isError whose text is
// agentguard.Explain's, so that an agent loop hands the result to the
// model whatever happened and the run goes on; so it does for a tool that
// failed (an *agentguard.ToolError wrapping a *ToolFailure, the server's
// own isError result), whose text is the failure scrubbed of the call's
// credentials. ErrorResult builds that result from any error.
// Approvals use the guard's Approver; with an approval.Deferred, the
// result names the request a human must decide before the model calls
// again in the same task.
//
// A call's task credentials are in the context its tools/call is sent
// with. Over the streamable HTTP transport, CredentialTransport sends one
// to the server in a header of that request, and only where the
// credential is for (its resource indicators, or origins the application
// allows, redirects included):
//
//	rt := mcpguard.CredentialTransport(nil, "files-api", "X-Files-Token")
//	transport := &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: rt}}
//
// The SDK sends each request with the context of the call that made it,
// so requests outside a guarded call carry no credential.
//
// Not guarded on the client side: calls made on the mcp.ClientSession
// itself (Session.ClientSession returns it for prompts and resources), and
// what the server asks of the client (sampling, elicitation, roots).
// Tools whose names the guard refuses (other than 1 to 128 of A-Z a-z 0-9
// _ . -) or whose schemas are not JSON objects are left out, and so is every
// copy of a name listed twice. Without the ToolListChanged handler, changes
// are seen only at the next Refresh (Session.Tools answers from the last
// one); on the 2026-07-28 protocol, a Refresh may be answered from the
// SDK's cache of tools/list for the ttlMs the server set. A listing may
// hold at most WithMaxTools tools (DefaultMaxTools) in 1000 pages; a
// longer one fails, and the session holds no tools until one succeeds.
//
// # Server side: a Go MCP server guarding its own tools
//
// A Server is receiving middleware for an mcp.Server: it runs every
// tools/call through the guard, for the identity of the caller, with the
// server's own handling as the tool's execution, and shows in tools/list
// only the tools policy lets the caller call. The caller's identity is that
// of the request, never the server's: the guard must use CallerSource.
//
//	guard, err := agentguard.New(
//		agentguard.WithIdentity(mcpguard.CallerSource(nil)),
//		agentguard.WithPolicy(engine), ...)
//	g, err := mcpguard.NewServer(guard, "files")
//	server.AddReceivingMiddleware(g.Middleware())
//	verify := mcpguard.VerifyJWTSVID(bundles, "spiffe://example.org/mcp/files")
//	http.Handle("/mcp", auth.RequireBearerToken(verify, nil)(
//		mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))
//
// The caller is found in the request's token info (req.Extra.TokenInfo,
// which auth.RequireBearerToken sets on the streamable HTTP transport), by
// this rule: a TokenInfo made by VerifyJWTSVID names the SPIFFE ID of the
// JWT-SVID it verified; one made by CallerTransport names the agent the
// application gave it; with WithTokenUserIDs(td), another verifier's
// UserID that is a SPIFFE ID of trust domain td names it (the application
// vouches for its verifier); nothing else does. A request with no verified
// caller is denied with agentguard.ErrNoIdentity. Transports without
// tokens (the SDK's in-memory transport, a child process's stdio) name
// their caller with CallerTransport, given to Server.Connect per
// connection: it cannot reach the SDK's HTTP handlers, which make their
// own transports, and it never replaces a caller a transport verified.
//
// A denial is a CallToolResult with isError and agentguard.Explain's text,
// not a JSON-RPC error, so that the caller's model reads why. The server's
// tools come from its own tools/list, taken at each request: a tool first
// seen is trusted on first use unless the guard has a Lock; a definition
// replaced later waits for Registry.Review; a name the server does not list
// is denied. Tool handlers find their task credentials with
// credentials.FromContext and receive the canonical arguments the guard
// checked.
//
// Approvals use the guard's Approver. For the consent of the calling
// client's user, MCP's own human-in-the-loop, elicitation, is opt-in:
// with WithElicitation and an approval.Deferred as the guard's approver,
// on the 2026-07-28 protocol the call answers with an input-required
// result (an elicitation under ElicitationKey), the client asks its user
// and calls again, and the guard runs the call again in the same task,
// where the decision is waiting; on older protocols the server elicits
// while serving the call. Each guarded run is audited and traced: an
// approved call leaves the paused run's record (denied, approval pending)
// and the resumed one's, whose approver is "mcp-client:" and the caller's
// SPIFFE ID. The answer comes from the calling client, the very agent the
// server guards: a client that says yes by itself approves its own calls.
// It is consent, not a separation of duties; calls that need one take an
// approver the server's operators control (approval.Queue, a webhook, a
// quorum), which holds the tools/call until a person decides.
//
// Not guarded on the server side: prompts, resources and custom methods;
// tool handlers the server's own code calls directly; and the short window
// between the middleware's listing of the tools and the server's dispatch of
// the call, should the tool be replaced in it. To learn the server's tools,
// the middleware sends tools/list requests of its own through the
// middlewares installed before it (those inside it) and the server's own
// handling, every page, on each tools/call and each tools/list: a cost
// proportional to the number of tools, and requests an inner middleware
// that logs or meters sees. When a listing cannot be taken (it fails, or a
// tool first seen cannot be registered), the server holds no tool until
// one can: calls are denied. A tool's own isError result is replaced by
// agentguard.Explain's text of the failure, scrubbed of the call's
// credentials: its structured content, images and other non-text content
// do not reach the client.
package mcpguard
