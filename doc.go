// Package sdk is the map of AgentGuard, a Go SDK that guards every tool call
// of an autonomous AI agent, in-process.
//
// Each call passes one pipeline: the guard learns which agent is calling from
// a verified workload identity, asks Cedar policy whether this exact call is
// allowed given the tool, its arguments and the task's state, asks a human
// where policy says so, gives the tool a short-lived credential scoped to the
// task, runs it inside an OpenTelemetry span, and writes an audit record.
// Anything that cannot complete denies the call.
//
// # Packages
//
//   - [github.com/agentguard/go-sdk/agentguard]: the Guard, tools, registries,
//     tasks, the pipeline, its errors and spans; approvals, pinned tool and
//     prompt fingerprints (the lock file), budgets and the kill switch.
//     [github.com/agentguard/go-sdk/agentguard/approval] holds the
//     built-in approvers: a queue, an HMAC-signed webhook, and Deferred for
//     frameworks that pause a run for a human.
//   - [github.com/agentguard/go-sdk/identity]: who the agent is (SPIFFE IDs,
//     delegation chains) and where that comes from.
//   - [github.com/agentguard/go-sdk/policy]: the decision; the Cedar engine
//     and its entity model.
//   - [github.com/agentguard/go-sdk/credentials]: just-in-time credentials,
//     secrets that cannot leak, the broker and providers;
//     [github.com/agentguard/go-sdk/credentials/oauth] for an OAuth 2.0
//     server, [github.com/agentguard/go-sdk/credentials/local] for
//     development.
//   - [github.com/agentguard/go-sdk/audit]: audit events and sinks: a
//     hash-chained file with signed checkpoints that cannot be edited
//     unnoticed (and its verifier), slog. The nested module audit/otelaudit
//     ships them as OpenTelemetry log records.
//   - agentguard/adapters/...: one nested module per agent framework (MCP
//     go-sdk, mcp-go, langchaingo, eino, genkit, ADK, the Anthropic and
//     OpenAI SDKs), so that this module never requires a framework; each
//     has a runnable example under examples/.
//   - cmd/agentguard-audit: makes the checkpoint signing key and verifies
//     an audit log, for auditors.
//
// Fakes for unit tests sit beside what they fake: agentguard/agentguardtest,
// identity/identitytest, policy/policytest, credentials/credentialstest and
// audit/audittest.
//
// # Walkthrough
//
//	engine, _ := policy.NewCedarEngine(policy.MustParseSet("p.cedar", policies))
//	guard, _ := agentguard.New(
//		agentguard.WithIdentity(identitySource), // who is calling
//		agentguard.WithPolicy(engine),           // what it may do
//		agentguard.WithBroker(broker),           // credentials per task
//		agentguard.WithAudit(sink),              // what it did
//	)
//	tools := guard.NewRegistry("helpdesk")
//	_ = tools.Register(&agentguard.Tool{Name: "refund", Handler: refund})
//	ctx, task, _ := guard.StartTask(ctx, agentguard.TaskSpec{Purpose: "ticket T-1"})
//	defer task.End(ctx) // revokes the task's credentials
//	visible, _ := tools.List(ctx) // only what policy could allow
//	res, err := tools.Call(ctx, agentguard.Call{Name: "refund", Args: args})
//	if errors.Is(err, agentguard.ErrDenied) { /* tell the model, don't crash */ }
package sdk
