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
// configuration, or on the runner as a plugin, or both:
//
//	d := approval.NewDeferred() // approvals through ADK tool confirmations
//	guard, _ := agentguard.New(..., agentguard.WithApprover(d))
//	ag, _ := adkguard.New(guard,
//		adkguard.WithApprovals(d),
//		adkguard.WithSpec("refund", adkguard.Spec{Risk: agentguard.RiskHigh,
//			Credentials: []credentials.Requirement{{Name: "payments", Provider: "oauth"}}}))
//
//	cfg := llmagent.Config{Name: "support", Model: m, Tools: tools}
//	ag.Configure(&cfg) // wraps the tools, installs the callbacks
//	a, _ := llmagent.New(cfg)
//
//	p, _ := ag.Plugin() // every agent the runner runs, sub-agents included
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
// LabelLongRunning for a long-running tool. AfterTool records the outcome
// with Execution.End, paired with the call by the function-call ID, so each
// call has one execute_tool span and one audit record. Calls BeforeTool
// allowed and AfterTool never saw (another callback answered first) are
// finished, as failed, when the agent's run ends (AfterAgent) or the
// runner's run ends (the plugin), or when the run's context is cancelled.
//
// This covers the agent's tools and toolsets and the tools ADK adds itself,
// such as transfer_to_agent for an agent with sub-agents: policy must allow
// those too. BeforeModel removes from each model request the tools policy
// does not list for the agent (Allowed, the registry's listing decision),
// with their declarations, so the model is offered only what it may call;
// a call of a tool that is not offered is one ADK does not know, and runs
// nothing.
//
// A tool wrapped by Tools or Toolset (Configure wraps the agent's) runs with
// the guard's context: it finds its task credentials with
// credentials.FromContext on its tool.Context. It runs only for a call the
// guard allowed, with the arguments policy saw (ErrUnguarded,
// ErrArgsChanged otherwise), so a forgotten callback fails closed.
//
// # What is not
//
// A tool that is not wrapped (a plugin cannot wrap tools) is guarded all
// the same, but runs with ADK's context: it finds its credentials with
// Guard.Credential instead, and a callback that runs after the guard's and
// changes its arguments is detected only afterwards (its result is
// withheld and the call recorded as failed). Gemini's built-in tools
// (geminitool, such as Google Search) run on Google's servers, not in ADK:
// no callback sees them, and the guard neither lists nor checks them.
// A tool name the model invents is answered by ADK ("not found") before any
// callback runs, so it is not audited.
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
// (tool.Context.RequestConfirmation) whose payload is an ApprovalPayload,
// the guard's request bound to this call, and ADK ends the run with an
// adk_request_confirmation function call. Confirmations lists them for the
// application, which shows them to a human and runs the answer (Answer) as
// the next message of the same session, in the same task. ADK then runs
// the call again: BeforeTool gives the answer to the Deferred approver as
// the decision of the session's user (WithApproverName), and the guard
// checks the call again, so a confirmed call runs once and a rejected one
// never. The approver's name comes from the application, never from the
// model or the payload; a confirmation the model writes itself carries no
// approval and gets no call past policy.
package adkguard
