// Package genkitguard guards the tool calls of genkit generations
// (github.com/firebase/genkit/go, v1.12.0) with AgentGuard: every tool
// genkit runs for a model passes the guard's pipeline (identity, integrity,
// policy, approval, credentials, span, audit) and runs only if the guard
// allows it.
//
//	import genkitguard "github.com/agentguard/go-sdk/agentguard/adapters/genkit"
//
// It is its own module, so that the AgentGuard core does not depend on
// genkit.
//
// # Wiring
//
// The Middleware is a genkit ai.Middleware whose WrapTool hook runs each
// tool call through the guard. Give it to every generation, last, which
// Middleware.Generate does:
//
//	mw, err := genkitguard.New(guard,
//		genkitguard.Describe(&agentguard.Tool{Name: "issue_refund", Risk: agentguard.RiskHigh,
//			Credentials: []credentials.Requirement{{Name: "payments", Provider: "oauth", Scopes: []string{"refunds:write"}}}}),
//		genkitguard.WithApprovals(deferred), // the guard's approver too
//	)
//	ctx, task, err := guard.StartTask(ctx, agentguard.TaskSpec{Purpose: "resolve ticket T-1"})
//	defer task.End(ctx)
//	tools, err := mw.Tools(ctx, lookup, refund)   // what policy lets this agent call
//	resp, err := mw.Generate(ctx, g, ai.WithModel(m), ai.WithPrompt(p), ai.WithTools(tools...))
//
// The guard sees each tool as genkit describes it to the model: its name,
// description, input and output schemas (ai.Tool.Definition), all part of
// the fingerprint pinned in the guard's lock, so a tool whose definition
// changes is blocked until reviewed. Describe adds what genkit does not
// know: the credentials a tool needs (which it finds with
// credentials.FromContext on its *ai.ToolContext), its risk, labels and
// annotations for policy, its toolset. The call ID is the tool request's
// Ref, and the arguments are its input as JSON; the tool runs with the
// canonical arguments the guard authorized.
//
// # What is guarded
//
// Every tool that genkit's tool loop runs in a generation given the
// middleware: the tools offered with ai.WithTools, tools registered in the
// genkit instance that the model names without being offered them (genkit
// runs them), tools other middleware adds (ai.Hooks.Tools), and tool
// requests restarted after an interrupt (ai.WithToolRestarts). A tool the
// middleware was not told about is guarded with its genkit definition
// alone, and policy decides on it like any other. A tool name that is not
// a valid Cedar action name, such as genkit's namespaced "plugin/tool",
// is refused. A name genkit does not know fails the generation in genkit,
// before any hook: nothing runs.
//
// # What is not
//
// The middleware guards only the generations it is given to, and only
// tools genkit runs: a genkit.Generate (or prompt Execute) without
// ai.WithUse(mw); ai.WithReturnToolRequests(true), which hands the tool
// requests to the application to run itself; a tool's RunRaw called by
// application code or a flow; tools run through genkit's reflection server
// (the Dev UI, GENKIT_ENV=dev), which runs any registered tool directly;
// and tools a model provider runs on its side. A tool response supplied
// with ai.WithToolResponses, or kept from an interrupted turn as pending
// output, runs nothing and is not checked. Middleware that comes after
// this one in ai.WithUse runs between the guard and the tool and may change
// the input the guard authorized: put the guard last (Middleware.Generate
// does).
//
// # Denials
//
// A call the guard refuses does not run. The model gets, as the tool's
// output, {"error": "<why>"} (agentguard.Explain: the tool, the step and
// the reason, never a credential), and the generation goes on, so the
// model can adapt; the tool response's metadata holds {"agentguard":
// {"denied": true, "step": "<step>"}}. A tool that runs and fails ends
// the generation with genkit's error, as without the guard, wrapping an
// *agentguard.ToolError whose message has the credentials' values removed.
// A tool's response has the values of the credentials it declared removed
// too (its output, content parts and metadata, through their JSON form),
// should it echo them; a response that does not encode as JSON cannot be
// checked, and fails the call.
//
// # Approvals
//
// When policy requires a human's approval and the guard's approver is an
// approval.Deferred, the call waits for the human through genkit's tool
// interrupts. Generate returns a response with FinishReason "interrupted";
// each of resp.Interrupts() waiting for approval carries the request in
// its interrupt metadata (InterruptKey). Show the human Middleware.Pending
// (the guard's copy of the request), then resume with the decision:
//
//	for _, p := range resp.Interrupts() {
//		req, ok := mw.Pending(p)
//		if !ok {
//			continue // another interrupt
//		}
//		decision := askHuman(req) // approval.Decision{Granted: ..., Approvers: []string{signedInUser}}
//		restart, err := mw.Restart(p, decision)
//		restarts = append(restarts, restart)
//	}
//	resp, err = mw.Generate(taskCtx, g, ai.WithModel(m), ai.WithTools(tools...),
//		ai.WithMessages(resp.History()...), ai.WithToolRestarts(restarts...))
//
// Restart records the decision in the Deferred, on the server: the restart
// part carries none, since parts are plain data that whoever holds the
// interrupted response (a client of a flow, say) can write, and a part
// that claims a decision is ignored. Restart checks that the part is a
// request the Deferred holds for that tool and call, with the arguments
// the human was shown (else ErrArgumentsChanged), and the restarted
// request runs with those arguments. On the restart the guard asks again
// and the Deferred answers with the decision: a grant runs the call once;
// a refusal is a denial the model reads. The decision binds to the exact
// call (tool, arguments, task, agent), so resume soon (it lapses after the
// Deferred's decision TTL), with the context of the same task. A restart
// whose call still waits (no decision recorded, or one used or lapsed, or
// a part changed after Restart) fails the generation with ErrStillPending,
// since genkit cannot interrupt a restarted request again. The Deferred
// must be the guard's approver: if it is not, the generation fails with
// ErrNotGuardsApprover at the first call that needs approval.
//
// Each guarded attempt of a call (the interrupted one, the restarted one)
// has its own span and audit record, under the same call ID.
package genkitguard
