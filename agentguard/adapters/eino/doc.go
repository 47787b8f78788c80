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
// the filtered tools (a call of a hidden one still reaches the guard, through
// the UnknownToolsHandler, and is denied). Any other component built on a
// ToolsNode takes shop.Middleware() and shop.UnknownToolsHandler in its
// compose.ToolsNodeConfig; tools it adds itself are not in the toolset, and
// are denied.
//
// # What is guarded
//
// Every call of the toolset's tools through a ToolsNode holding the
// middleware, for all four kinds of eino tool (invokable, streamable and
// their enhanced, multimodal variants), in the graph's Invoke and Stream
// modes alike: eino runs each call through exactly one of the four
// middleware hooks. Each tool's definition (name, description, parameters
// as JSON Schema) is read from Info once, by New, as NewToolNode reads it;
// it is pinned in the guard's lock, and the model is shown that definition
// (ToolInfos). Policy sees the call's arguments as eino passes them to the
// tool (after any ToolArgumentsHandler) and its tool-call ID. A Spec gives a
// tool what Info cannot say: attributes for policy, the credentials it
// needs, what its audit records hold.
// A tool that pauses the run with eino's own interrupt passes the guard on
// each run, the paused one and the resumed one; the paused one is recorded
// as ending in error, since the guard sees the interrupt as the tool's
// error.
//
// A call naming no tool of the toolset is denied (agentguard.ErrUnknownTool)
// and audited: one the ToolsNode does not hold either (eino hands it to the
// UnknownToolsHandler, which NodeConfig sets), and one the ToolsNode holds
// but the toolset does not know (added to the node's Tools, or given to one
// run with compose.WithToolList).
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
// with the human's Decision (Resume). The call then goes through the guard
// again: a grant lets it run, once; a refusal is a denial the model is told
// about. A resume without a Decision, or with one the Deferred does not
// accept, is an error (ErrNoDecision, ErrDecision) and the call does not
// run; the checkpoint stays, to be resumed again. The approvers' names come
// from the Decision, which the application builds, never from the model.
// Each pass through the guard writes its own audit record: the pause
// (decision deny, approval pending) and the resumed call.
//
// # Streaming tools
//
// The guard decides before a streaming tool starts (agentguard.Guard.Begin).
// Its stream is then passed on chunk by chunk, and the call is recorded when
// the stream ends: at its end (ok), at its first error (failed: the reader
// gets the scrubbed *agentguard.ToolError), or when the reader closes it
// early (recorded as ErrStreamClosed). So the record says how the call
// ended, and the task's credentials stay valid for the whole stream.
// Chunks reach the reader before the record is written: in strict audit
// mode a record that cannot be written fails the stream after its chunks
// rather than withholding them. As with any eino stream, read it to its end
// or close it.
package einoguard
