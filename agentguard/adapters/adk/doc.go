// Package adkguard guards the tool calls of agents built with Google's Agent
// Development Kit for Go (google.golang.org/adk v1.2.0) with an
// agentguard.Guard. Import it as
//
//	import adkguard "github.com/agentguard/go-sdk/agentguard/adapters/adk"
//
// It is a module of its own, so that the core SDK never depends on ADK.
//
// # Wiring
//
// Describe what ADK does not know of a tool (its credentials, risk,
// annotations) with a Spec, then install the guard on each agent's
// configuration (Configure, or Agent, which also builds the agent), and on
// the runner as a plugin, first among its plugins:
//
//	d := approval.NewDeferred() // approvals through ADK tool confirmations
//	guard, _ := agentguard.New(..., agentguard.WithApprover(d))
//	ag, _ := adkguard.New(guard,
//		adkguard.WithApprovals(d),
//		adkguard.WithApproverName(signedInApprover), // see below
//		adkguard.WithSpec("refund", adkguard.Spec{Risk: agentguard.RiskHigh,
//			Credentials: []credentials.Requirement{{Name: "payments", Provider: "oauth"}}}))
//
//	a, _ := ag.Agent(llmagent.Config{Name: "support", Model: m, Tools: tools})
//
//	p, _ := ag.Plugin()
//	r, _ := runner.New(runner.Config{Agent: a, SessionService: s,
//		PluginConfig: runner.PluginConfig{Plugins: []*plugin.Plugin{p}}})
//
//	ctx, task, _ := guard.StartTask(ctx, agentguard.TaskSpec{Purpose: "..."})
//	defer task.End(ctx)
//	for ev, err := range r.Run(ctx, userID, sessionID, msg, agent.RunConfig{}) { ... }
//
// Tools run in the task's context: start the task before running, and run
// every turn of a conversation that may resume a confirmation in the same task.
//
// # What is guarded
//
// Every tool call ADK runs passes BeforeTool, which runs the guard's
// pipeline (identify, check integrity, authorize, approve, credential) with
// Guard.Begin, the function-call ID as the call's ID. The tool's definition
// is what the model reads of it: its declaration's name, description,
// parameters and response schema (as JSON Schema), and the label
// LabelLongRunning for a long-running tool. Each call has one audit record
// and one execute_tool span of the guard's (ADK opens an execute_tool span
// of its own too, through the global tracer provider: the guard's is its
// child when both go to the same provider).
//
// This covers the agent's tools and toolsets and the tools ADK adds itself,
// such as transfer_to_agent for an agent with sub-agents: policy must allow
// those too. BeforeModel removes from each model request the tools policy
// does not list for the agent (Allowed, the registry's listing decision),
// with their declarations, so the model is offered only what it may call.
// A call of a tool ADK does not have (one the model invents, or one that
// is not offered) runs nothing: the guard's OnToolError records it as a
// lookup denial and tells the model so.
//
// A tool wrapped by Tools or Toolset (Configure and Agent wrap the agent's)
// runs with the guard's context: it finds its task credentials with
// credentials.FromContext on its tool.Context. It runs only for a call the
// guard allowed, with the arguments policy saw (ErrUnguarded,
// ErrArgsChanged otherwise), so a forgotten callback fails closed. It
// records its call's outcome itself, when it returns, and hands ADK a
// failure as the guard's *agentguard.ToolError, whose message holds no
// credential value of the call: ADK runs the tool-error callbacks (of
// plugins such as retryandreflect, then the agent's) before the after-tool
// ones, and none of them sees the tool's raw error.
//
// The outcome of a call of a tool that is not wrapped is recorded by
// OnToolError or AfterTool. If another callback answers first, the guard
// records the call as failed (ErrUnfinished) when the agent next asks its
// model (BeforeModel: ADK has run all the calls of a response by then),
// when the agent's run ends (AfterAgent) or the runner's run ends (the
// plugin, also when the application stops reading the run's events). When
// the run's context ends first, the guard waits for the outcome (see
// agentguard.Guard.Begin), and records that the tool may have run if none
// comes within its end timeout. Tools that are not wrapped, with the agent's
// callbacks only (no plugin), are thus recorded late or, if nothing of the
// above happens, only when the run's context ends: wrap them.
//
// # Agents as tools
//
// ADK runs the agent of an agent tool (agenttool) in a runner of its own,
// without plugins: the guard's plugin never sees that agent's calls. Only
// an agent tool made with AgentTool, of an agent whose LLM agents (its
// sub-agents included) Agent built, runs; it guards its own calls with the
// callbacks Agent installed, in the task of the agent tool's call, each
// with its own credentials (the agent tool's are not passed down). An
// agent tool made with agenttool.New does not run (ErrUnguardedAgent),
// whether the guard wraps it or sees it from the plugin. A call of such an
// agent that needs approval cannot be confirmed: ADK ends that inner run
// with the confirmation, which never reaches the application; the model
// reads that the call waits for approval.
//
// # What is not
//
// Code of the application runs as it is: a custom (non-LLM) agent's own Run,
// and the callbacks of plugins ahead of the guard's, which may answer for a
// tool, or see an unwrapped tool's raw error, before the guard does (put the
// guard's plugin first). A tool that is not wrapped (a plugin cannot wrap
// tools) is guarded all the same, but runs with ADK's context: it finds its
// credentials with Guard.Credential, and a callback that runs after the
// guard's and changes its arguments is detected only afterwards (its result
// is withheld and the call recorded as failed). A before-tool callback that
// answers for a tool after the guard's allowed it makes the guard record that
// answer as the tool's result. Gemini's built-in tools (geminitool, such as
// Google Search) run on Google's servers, not in ADK: no callback sees them,
// and the guard neither lists nor checks them. With the agent's callbacks
// only (no plugin), a call of a tool ADK does not have is recorded only if no
// plugin's tool-error callback answers it first.
//
// # Denials and approvals in ADK
//
// A refused call does not run; the model gets, as the tool's result,
// {"error": <text>} with agentguard.Explain's account of which tool was
// refused, at which step and why, and the run goes on. A failing tool's
// error is replaced the same way, scrubbed of credential values.
//
// A call whose policy asks for a human's approval uses ADK's tool
// confirmation (with WithApprovals and the approval.Deferred that is the
// guard's approver): BeforeTool asks for a confirmation
// (tool.Context.RequestConfirmation) carrying the guard's request, and ADK
// ends the run with an adk_request_confirmation function call.
// Confirmations lists the confirmations of an event for the application:
// only one ADK made for the guard carries an Approval, which is the request
// as the guard stored it (tool, canonical arguments, reason), never what
// the event says; show the human that. Run the answer, made with Answer, as
// the next message of the same session, in the same task. ADK then runs
// the call again, and BeforeTool, before it gives the answer to the
// Deferred approver, checks that it answers the confirmation ADK made for
// this call and that the call is the one asked about (its ID, tool and
// canonical arguments); the guard then checks the call again, so a
// confirmed call runs once and a rejected one never. An answer that fails
// these checks (to a confirmation the model wrote itself, say) decides
// nothing, and the call does not run (ErrConfirmationMismatch); the
// request waits for the call to be made again.
//
// Whoever can post to the session answers ADK's confirmations, one person
// per answer. The approver recorded is WithApproverName's, from the
// context of the run that carries the answer (the application puts the
// signed-in approver there); by default it is "adk-user:" and the session's
// user ID (DefaultApproverName): the user the agent works for approves its
// calls, and the record says so. Kinds of approval that need several
// approvers (approval.WithDeferredQuorum) cannot be given this way: the
// answer is refused and the request stays pending; use approval.Queue for
// them. The guard's confirmation stands for the tool's own: a tool that
// asks for a confirmation itself (functiontool's RequireConfirmation) finds
// the confirmed answer and does not ask again, so the human answers once,
// shown the guard's request.
package adkguard
