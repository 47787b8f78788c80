// Package openaiguard runs the tool calls of OpenAI's Chat Completions and
// Responses APIs (github.com/openai/openai-go/v3) through an AgentGuard
// registry, so that every function call a model makes is identified,
// authorized, approved, given its credentials, traced and audited before
// its tool runs. Import it as
//
//	import openaiguard "github.com/agentguard/go-sdk/agentguard/adapters/openai"
//
// The SDK leaves the tool loop to the application; this package is the
// guarded body of that loop. With Chat Completions:
//
//	reg := guard.NewRegistry("support")
//	reg.Register(tools...)
//	ctx, task, _ := guard.StartTask(ctx, agentguard.TaskSpec{Purpose: "resolve T-1"})
//	defer task.End(ctx)
//	defs, err := openaiguard.Tools(ctx, reg) // only what policy lets the agent call
//	params := openai.ChatCompletionNewParams{Model: model, Tools: defs, Messages: msgs}
//	for {
//		completion, err := client.Chat.Completions.New(ctx, params)
//		if err != nil { ... }
//		msg := completion.Choices[0].Message
//		params.Messages = append(params.Messages, msg.ToParam())
//		turn, err := openaiguard.Run(ctx, reg, &msg)
//		if err != nil || len(turn.Calls) == 0 {
//			break // the model has finished
//		}
//		params.Messages = append(params.Messages, turn.Messages()...)
//	}
//
// With the Responses API, ResponseTools gives the tool definitions,
// RunResponse runs a response's function calls, and Turn.InputItems are
// the function_call_output items of the next request (with
// PreviousResponseID set to the response's ID).
//
// # What is guarded
//
// Tools and ResponseTools give the model the function definitions of the
// registry's tools that policy lets the agent call (Registry.List): name,
// description and input schema, as registered and pinned. Run and
// RunResponse call every function call through Registry.Call, with the
// model's call ID, so each call has one execute_tool span and one audit
// record. A call naming a tool the registry does not hold (one the model
// made up, or a tool the application added to the request by hand), a
// custom tool call (free-form input, "custom/<name>") and a Responses call
// in a namespace ("<namespace>/<name>") are denied and audited, never run.
//
// # What is not
//
// Hosted tools (web search, file search, code interpreter, remote MCP
// servers) run at OpenAI; the guard never sees them. Built-in tools the
// application runs itself (computer use, shell, local shell, apply_patch)
// have items of their own that RunResponse does not answer: an
// application that offers them runs them outside the guard. Leave these
// tools out of the request when every action must pass the guard. Tool
// results are the tool's own output: a tool must not put its credentials
// there.
//
// # Denials
//
// Tool messages have no error flag. A denied call, a call waiting for
// approval and a tool that failed are answered with a tool message (or
// function_call_output) whose content is agentguard.Explain's text: which
// tool, the step and reason, or the approval request's ID. The
// conversation goes on, and no credential value is in the text.
//
// # Approvals
//
// The OpenAI APIs have no human-in-the-loop of their own. Either give the
// guard an approver that waits for a human (approval.Queue,
// approval.Webhook): Run then blocks until the human decides. Or give it
// approval.Deferred, which never waits: a call that needs approval comes
// back at once with a text saying that it waits for the request's ID.
// Turn.Pending lists those requests; have a human decide them
// (Deferred.Decide, with the approvers the application signed in, never
// names the model gave), then Turn.Resume runs the decided calls again in
// the same task before Turn.Messages are sent, or send them as they are
// and let the model call the tool again once the request is decided.
//
// # Parallel tool calls
//
// A message may hold several tool calls (parallel_tool_calls). Run
// answers all of them, in the model's order, running them one after the
// other by default, so that decisions that depend on the task's state are
// reproducible; WithConcurrency runs up to n at once, results still in the
// model's order.
package openaiguard
