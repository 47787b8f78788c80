// Package agentguard guards an agent's tool calls.
//
// A [Guard] runs every call through one pipeline, in this order:
//
//  1. Identify: the agent's identity comes from an identity.Source, never
//     from what the agent says of itself. A suspended agent ([Guard.Suspend])
//     is refused, and so is a call past one of the task's budgets ([Budget]).
//  2. Check integrity: the tool's definition must match the fingerprint
//     pinned in the guard's [Lock]; a new or changed definition (a rug pull)
//     is blocked and hidden until a review approves it ([Registry.Review]).
//  3. Authorize: a policy.Engine decides on the exact call: tool, canonical
//     arguments, task state (calls, tools used, taint), delegation chain.
//     For a delegated call every agent up the chain must be allowed too, so
//     a sub-agent never gets more than the agents that delegated to it.
//  4. Approve: if the deciding policies carry @approval (or the tool's risk
//     needs it, [WithRiskApproval]), an [Approver] must grant it, with an
//     answer bound to this exact call that arrives before it expires.
//  5. Credential: each credential the tool declares is leased from a
//     [Broker] for the task and put in the tool's context.
//  6. Execute: the tool runs inside a span "execute_tool {tool}".
//  7. Record: the task's state is updated and one audit event written.
//
// A step that cannot complete denies the call with a [*DenyError] (matching
// [ErrDenied] and the step's sentinel, such as [ErrNoIdentity] or
// [ErrCredential]); the tool does not run, and the denial is audited and
// traced all the same. In strict audit mode (the default) a call whose
// audit record cannot be written fails too, and its result is withheld.
//
// Tools are described by [Tool] and called through a [Registry] (by name,
// with a policy-filtered [Registry.List]), through [Guard.Invoke] or a
// handler made by [Guard.Wrap]. Adapters to agent frameworks (nested modules
// under agentguard/adapters) use [Guard.Middleware], which guards the
// framework's own execution, or [Guard.Begin] and [Execution.End] where the
// framework runs the tool between a hook before it and a hook after it.
// They give the model [Explain]'s text for a refused call, so that the run
// goes on, and pause the run in the framework's own way for a call that
// waits for a human (a [*PendingError], from approval.Deferred).
//
// What the model reads is pinned: each tool's fingerprint and the agent's
// prompt ([Guard.Prompt]) are kept in a [Lock], which a team commits and
// reviews like go.sum. A change takes effect only when policy
// (Action::"change_toolset", Action::"change_prompt") and an approver both
// allow it.
//
// Calls belong to a [Task], started with [Guard.StartTask]. Its state is what
// policy sees as context.task; ending it (or cancelling its parent context)
// revokes every credential leased to it. A call made outside any task gets a
// task of its own that ends with the call.
//
// Every call is traced (a span per call, [WithTracerProvider]) and
// measured ([WithMeterProvider]): [MetricToolCalls] counts calls by tool,
// decision, outcome and denying step; [MetricStepDuration] times the
// identify, authorize, approve, credential and execute steps that ran;
// [MetricCredentialLeases] counts leases issued, refreshed, revoked and
// failed; [MetricAuditFailures] counts records the audit sink refused.
// Counts come from the audit events the guard writes, so each is counted
// once whatever path wrote it. otelaudit.Sink (module audit/otelaudit) ships those events as
// OpenTelemetry logs.
//
// Arguments reach policy and tool in one canonical JSON form; an object with
// a repeated key is refused, so policy cannot check one value while the tool
// acts on another.
package agentguard
