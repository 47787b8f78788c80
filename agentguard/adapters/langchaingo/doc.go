// Package langchainguard guards the tools of a langchaingo agent
// (github.com/tmc/langchaingo v0.1.14) with AgentGuard: every call the
// agent's executor makes passes the guard's whole pipeline (identity,
// integrity, policy, approval, credentials, span, audit) before the tool
// runs.
//
// Import it as
//
//	import langchainguard "github.com/agentguard/go-sdk/agentguard/adapters/langchaingo"
//
// # Wiring
//
// Wrap the tools the agent already has, list those policy allows for the
// task, and build the agent and executor from them:
//
//	set, err := langchainguard.New(guard, "support", []tools.Tool{lookup, refund},
//		langchainguard.WithSpec("refund", langchainguard.Spec{
//			Risk:        agentguard.RiskHigh,
//			Credentials: []credentials.Requirement{{Name: "payments", Provider: "oauth", Scopes: []string{"refund"}}},
//		}))
//	ctx, task, err := guard.StartTask(ctx, agentguard.TaskSpec{Purpose: "resolve ticket T-1"})
//	defer task.End(ctx)
//	allowed, err := set.Allowed(ctx) // the tools policy lets this agent call
//	agent := agents.NewOneShotAgent(model, allowed)
//	executor := agents.NewExecutor(set.Agent(agent), agents.WithCallbacksHandler(set.Callbacks()))
//	answer, err := chains.Run(ctx, executor, "Refund order O-1")
//
// Each tool joins the guard's registry for the toolset (policy's
// Toolset::"support"), described by its Name and Description and by its
// Spec. Without agentguard.WithLock the guard trusts these definitions on
// first use; with it they must be pinned.
//
// # Arguments
//
// A langchaingo tool takes one input string. By default it is free text,
// and the call's arguments are {"input": "<text>"}, with the input schema
// TextInputSchema, so that Cedar policy reads context.args.input. A tool
// whose input is a JSON object says so with Spec.InputSchema: its input
// then is the arguments as they are, policy reads context.args.<field>,
// and input that is not a JSON object is denied. Either way the tool runs
// with what policy saw (the canonical arguments), and finds its
// credentials with credentials.FromContext.
//
// # Denials, failures and approvals
//
// A denied call never reaches the tool. Its observation, what the model
// reads next, is agentguard.Explain's text (which tool, the step, the
// reason; never a credential), and the tool returns a nil error, since
// langchaingo's executor ends the whole run on a tool's error. A tool's
// own error is returned as it would be unguarded, so the run ends with it
// (its message scrubbed of the call's credential values), unless
// WithToolErrorsAsObservations turns it into an observation too. A tool's
// output has the values of its credentials removed, should it echo them.
//
// langchaingo has no human-in-the-loop mechanism for tools, so approvals
// are the guard's Approver's:
//
//   - a blocking approver (approval.Queue, approval.Webhook) holds the
//     tool call, and so the run, until a human decides; the tool then runs,
//     or the model reads the refusal;
//   - approval.Deferred does not wait: the model reads that the call needs
//     a human's approval, with the request's ID, and the run goes on. The
//     application shows Deferred.Pending to a human and records the answer
//     with Deferred.Decide; when the model makes the same call again in the
//     same task (a later run with the task's context), the stored decision
//     answers it, once.
//
// # Call IDs
//
// The executor gives a tool only its input. Toolset.Callbacks, set as the
// executor's callbacks handler, passes each action's tool-call ID to the
// guard, matched to the tool call by task, tool name and input; the OpenAI
// functions agent's actions have the model's IDs, the one-shot and
// conversational agents' have none, and then the guard makes one up.
//
// # What is guarded, and what is not
//
// Guarded: every call of a tool of the Toolset, through any agent or
// executor, or called directly. Toolset.Agent also guards the executor's
// dispatch: a tool the agent holds that no Toolset of this guard was given
// (an unwrapped tool passed to the agent, or appended to it, or a tool
// guarded by another Guard) is never run; its calls are denied and audited
// as calls of an unknown tool. A tool of the toolset that the agent was not
// given (one Allowed left out) is dispatched to the guard all the same, so
// that a model calling it anyway gets policy's decision and the call is
// audited; a name that is no tool of the agent or the toolset is answered
// by the executor ("... is not a valid tool"), and leaves no record.
//
// Not guarded: a tool the application calls itself, unwrapped, or an
// executor built on an agent that was not passed through Toolset.Agent and
// was given unwrapped tools. Allowed filters the tools given to the agent
// (its prompt or function list); an agent built from Tools instead shows the
// model tools whose calls policy will deny. Listing ignores conditions on
// context.args (see agentguard.Registry.List).
package langchainguard
