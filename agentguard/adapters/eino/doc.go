// Package einoguard guards the tools of an eino agent
// (github.com/cloudwego/eino v0.7.36): every call a ToolsNode makes
// passes through an agentguard.Guard (identity, policy, approval,
// credentials, span, audit) before the tool runs.
//
//	import einoguard "github.com/agentguard/go-sdk/agentguard/adapters/eino"
//
// It is a module of its own, so that the SDK's core never depends on eino.
//
// # Wiring
//
// Describe the agent's tools to the guard once, give the chat model only the
// tools policy lets the agent call, and build the ToolsNode from the
// toolset's configuration, which holds the guarding middleware:
//
//	deferred := approval.NewDeferred()
//	guard, _ := agentguard.New(..., agentguard.WithApprover(deferred))
//	shop, _ := einoguard.New(ctx, guard, "shop", []tool.BaseTool{lookup, refund},
//		einoguard.WithSpec("refund", einoguard.Spec{Risk: agentguard.RiskHigh, Credentials: needs}),
//		einoguard.WithApprovals(deferred))
//
//	ctx, task, _ := guard.StartTask(ctx, agentguard.TaskSpec{Purpose: "resolve ticket T-1"})
//	defer task.End(ctx)
//	infos, _ := shop.ToolInfos(ctx)          // filtered by policy
//	chat, _ := chatModel.WithTools(infos)
//	tools, _ := compose.NewToolNode(ctx, shop.NodeConfig())
//	// ... a graph with chat and tools, compiled with a checkpoint store
//
// eino's ReAct agent (flow/agent/react) binds the Tools of its ToolsConfig to
// the model: give it shop.NodeConfig() with Tools set to shop.Tools(ctx),
// the filtered tools (a call of a hidden one reaches the UnknownToolsHandler,
// and is denied and audited). Any other component built on a ToolsNode takes
// shop.Middleware() and shop.UnknownToolsHandler in its
// compose.ToolsNodeConfig; tools it adds itself are not in the toolset, and
// are denied. Put the toolset's middleware last among ToolCallMiddlewares:
// eino runs them in order, so a middleware after it runs between the guard
// and the tool, and may change the arguments the guard authorized.
//
// # What is guarded
//
// Every call of the toolset's tools through a ToolsNode holding the
// middleware, for all four kinds of eino tool (invokable, streamable and
// their enhanced, multimodal variants), in the graph's Invoke and Stream
// modes alike: eino runs each call through exactly one of the four
// middleware hooks. Each tool's definition (name, description, parameters
// as JSON Schema) is read from Info once, by New, as NewToolNode reads it;
// it is pinned in the guard's lock, and the model is shown that definition:
// ToolInfos returns it, and the tools of Tools and NodeConfig describe
// themselves with it rather than with their live Info, so a tool whose Info
// changes later (a rug pull) cannot show the model anything else than what
// the guard checks. Policy sees the call's arguments as eino passes them to the
// tool (after any ToolArgumentsHandler) and its tool-call ID, and the tool
// runs with their canonical form, what policy saw, whatever its kind. The
// values of the credentials the tool declared are removed from its output
// (a string, each field of an enhanced tool's result, a stream's chunks),
// should it echo them. A Spec gives a tool what Info cannot say: attributes
// for policy, the credentials it needs, what its audit records hold.
// A tool that pauses the run with eino's own interrupt passes the guard on
// each run, the paused one and the resumed one; the paused one is recorded
// as ending in error, since the guard sees the interrupt as the tool's
// error.
//
// A call naming no tool of the ToolsNode or no tool of the toolset is
// denied (agentguard.ErrUnknownTool) and audited: one the ToolsNode does
// not hold, even a tool of the toolset left out of it (eino hands it to the
// UnknownToolsHandler, which NodeConfig sets), and one the ToolsNode holds
// but the toolset does not know (added to the node's Tools, or given to one
// run with compose.WithToolList). A tool that runs another ToolsNode (a
// sub-agent) passes its context on; a call made in it never runs the outer
// tool under another tool's authorization.
//
// # What is not
//
// A tool's own methods called outside a ToolsNode, and an
// UnknownToolsHandler or ToolArgumentsHandler of the application's, which
// eino runs without middleware: keep NodeConfig's handler. A tool given to
// one run (compose.WithToolList) under the name of one of the toolset's
// tools is guarded as that tool, with its definition: the middleware sees
// the call, not which implementation eino picked. Tools added to the toolset
// after New are unknown until a new Toolset describes them.
//
// # Denials
//
// A denied call never reaches the tool. The model gets agentguard.Explain's
// text as the tool's result (a tool message, a text part for an enhanced
// tool, a one-chunk stream for a streaming one) and the run goes on: eino
// has no other way to tell the model, since a tool's error ends the run.
// A tool that runs and fails still ends the run, as in eino without the
// guard, with an *agentguard.ToolError whose message holds no credential
// value; wrap the tool with eino's utils.WrapToolWithErrorHandler to turn
// its failures into results instead.
//
// # Approvals
//
// With WithApprovals and the guard's approval.Deferred, a call that needs a
// human's approval pauses the run with eino's interrupt (tool.StatefulInterrupt):
// the graph returns an interrupt error whose InterruptCtx.Info is an
// *ApprovalRequest (Interrupts finds them), and its checkpoint keeps the
// call. The application shows the request to a human and runs the graph
// again with the same checkpoint ID, in the same task, resuming the call
// with the human's Decision, which names the request they saw:
//
//	for _, w := range einoguard.Interrupts(err) {
//		ok := askHuman(w.Request)
//		ctx = einoguard.Resume(ctx, w.ID, einoguard.Decision{
//			RequestID: w.Request.RequestID, Granted: ok, Approvers: []string{signedInUser}})
//	}
//	out, err = graph.Invoke(ctx, input, compose.WithCheckPointID(id))
//
// The call then goes through the guard again: a grant lets it run, once; a
// refusal is a denial the model is told about. The decision is recorded
// only if it names the request the call waits for and the guard's own copy
// of that request (the Deferred's, not the checkpoint's, which lives in the
// application's store) is for this very call: tool, call ID, arguments and
// task. A resume without a Decision, with one for another request
// (ErrWrongRequest), or with one the Deferred does not accept
// (ErrDecision) is an error and the call does not run; the checkpoint
// stays, to be resumed again. The approvers' names come from the Decision,
// which the application builds, never from the model. The Deferred must be
// the guard's approver: if it is not, the run ends with
// ErrNotGuardsApprover rather than pause for a decision it could never
// record.
// Each pass through the guard writes its own audit record: the pause
// (decision deny, approval pending) and the resumed call.
//
// # Streaming tools
//
// The guard decides before a streaming tool starts (agentguard.Guard.Begin),
// and the call is recorded when its stream ends: at its end (ok), or at its
// first error (failed: the reader gets the scrubbed *agentguard.ToolError,
// which ends the run as an invokable tool's failure does). The task's
// credentials stay valid for the whole stream. By default the adapter reads
// the tool's whole stream and writes the record before it passes the chunks
// on, so that a streaming tool's result is withheld, as any other's, when
// its record cannot be written (strict audit mode): the model then reads
// that the result was withheld, and the run goes on. WithLiveStreams
// passes chunks on as they come instead; a reader that closes the stream
// early is then recorded as ErrStreamClosed, and a record that cannot be
// written ends the stream with the explanation as its last chunk, after
// chunks the reader has seen. Either way the stream the adapter returns
// closes itself once eino drops it unread (ToolsNode.Stream does with the
// other calls of a message when one fails), so the call is still recorded
// and no goroutine is left behind; as with any eino stream, read it to its
// end or close it.
package einoguard
