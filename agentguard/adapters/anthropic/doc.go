// Package anthropicguard runs the tool calls of Anthropic's Messages API
// (github.com/anthropics/anthropic-sdk-go/v2) through an AgentGuard
// registry, so that every tool_use block a model sends is identified,
// authorized, approved, given its credentials, traced and audited before
// its tool runs. Import it as
//
//	import anthropicguard "github.com/agentguard/go-sdk/agentguard/adapters/anthropic"
//
// The SDK leaves the tool loop to the application; this package is the
// guarded body of that loop:
//
//	reg := guard.NewRegistry("support")
//	reg.Register(tools...)
//	ctx, task, _ := guard.StartTask(ctx, agentguard.TaskSpec{Purpose: "resolve T-1"})
//	defer task.End(ctx)
//	defs, err := anthropicguard.Tools(ctx, reg) // only what policy lets the agent call
//	params := anthropic.MessageNewParams{Model: model, MaxTokens: 1024, Tools: defs, Messages: msgs}
//	for {
//		msg, err := client.Messages.New(ctx, params)
//		if err != nil { ... }
//		params.Messages = append(params.Messages, msg.ToParam())
//		turn, err := anthropicguard.Run(ctx, reg, msg)
//		if err != nil || len(turn.Calls) == 0 {
//			break // the model has finished
//		}
//		params.Messages = append(params.Messages, turn.Message())
//	}
//
// # What is guarded
//
// Tools gives the model the definitions of the registry's tools that
// policy lets the agent call (Registry.List): name, description and input
// schema, as registered and pinned. Run calls every tool_use block of a
// message through Registry.Call, with the block's ID as the call ID, so
// each call has one execute_tool span and one audit record. A block naming
// a tool the registry does not hold (one the model made up, or one of a
// tool the application added to the request by hand) is denied and
// audited, never run.
//
// # What is not
//
// Server tools (web search, web fetch, code execution: server_tool_use
// blocks) run at Anthropic, not here; the guard never sees them. Leave them
// out of the request when every action must pass the guard. Tool results
// are the tool's own output: a tool must not put its credentials there.
// The SDK's beta tool runner (BetaToolRunner) runs tools itself and is not
// covered; use Run in a loop of your own.
//
// # Denials
//
// A denied call, a call waiting for approval and a tool that failed are
// answered with a tool_result whose is_error is true and whose text is
// agentguard.Explain's (which tool, the step and reason, or the approval
// request's ID), never an error that ends the conversation, and never a
// credential value.
//
// # Approvals
//
// The Messages API has no human-in-the-loop of its own. Either give the
// guard an approver that waits for a human (approval.Queue, approval.Webhook):
// Run then blocks until the human decides. Or give it approval.Deferred,
// which never waits: a call that needs approval comes back at once as an
// is_error result saying that it waits for the request's ID. Turn.Pending
// lists those requests; have a human decide them (Deferred.Decide, with
// the approvers the application signed in, never names the model gave),
// then Turn.Resume runs the decided calls again in the same task before
// Turn.Message is sent, or send the message as it is and let the model
// call the tool again once the request is decided.
//
// # Parallel tool use
//
// A message may hold several tool_use blocks. Run answers all of them, in
// the model's order, running them one after the other by default, so that
// decisions that depend on the task's state are reproducible;
// WithConcurrency runs up to n at once, results still in the model's order.
package anthropicguard
