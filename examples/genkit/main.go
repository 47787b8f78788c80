// Command genkit runs a genkit support assistant whose every tool call
// passes AgentGuard, through the genkitguard middleware. Nothing leaves
// the process: the model is scripted, the agent's SPIFFE identity comes
// from the development issuer and its credentials from the local issuer
// (both in memory, not for production), and policy is the Cedar file
// embedded from policies/.
//
// The transcript shows the tools policy lets the model see, an allowed
// call that runs with a task credential, a call of a tool the model was
// never offered that the guard denies (the model reads why and goes on),
// and a refund that waits for a supervisor through genkit's tool
// interrupts: the generation pauses, the supervisor grants that exact
// call, and the generation resumes with the tool request restarted.
package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/firebase/genkit/go/ai"
	"github.com/firebase/genkit/go/core/logger"
	"github.com/firebase/genkit/go/genkit"

	"github.com/agentguard/go-sdk/agentguard"
	genkitguard "github.com/agentguard/go-sdk/agentguard/adapters/genkit"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "genkit example:", err)
		os.Exit(1)
	}
}

//go:embed policies/*.cedar
var policyFiles embed.FS

// run runs the assistant on one ticket and writes the transcript to w.
func run(ctx context.Context, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops what genkit.Init started
	logger.SetLevel(slog.LevelWarn)
	g := genkit.Init(ctx)

	// Credentials: short-lived tokens for one task, audience and scope.
	issuer, err := local.NewIssuer()
	if err != nil {
		return err
	}
	tools := defineTools(g, w, issuer.Verifier())
	model := defineModel(g, w)

	// Identity: a verified X.509-SVID from the development issuer.
	dev, err := identity.NewDevIssuer("example.org")
	if err != nil {
		return err
	}
	agent, err := dev.Agent("/agent/support-assistant")
	if err != nil {
		return err
	}

	// Policy: the embedded Cedar file, validated against the tools'
	// schemas (genkit's input schemas type context.args).
	engine, err := newEngine(agent.ID().String(), tools.all()...)
	if err != nil {
		return err
	}

	// Approvals: genkit pauses the generation (a tool interrupt) and a
	// person decides later, so the approver is a Deferred.
	deferred := approval.NewDeferred()
	guard, err := agentguard.New(
		agentguard.WithIdentity(agent),
		agentguard.WithPolicy(engine),
		agentguard.WithBroker(credentials.NewBroker(credentials.WithProvider("local", issuer))),
		agentguard.WithApprover(deferred),
		agentguard.WithAudit(transcript{w}),
	)
	if err != nil {
		return err
	}
	defer guard.Close(ctx)

	mw, err := genkitguard.New(guard,
		genkitguard.Describe(
			&agentguard.Tool{Name: "lookup_order", Annotations: agentguard.Annotations{ReadOnly: true},
				Credentials: []credentials.Requirement{{Name: "orders", Provider: "local", Audience: "orders-api", Scopes: []string{"orders:read"}}}},
			&agentguard.Tool{Name: "issue_refund", Risk: agentguard.RiskHigh,
				Credentials: []credentials.Requirement{{Name: "payments", Provider: "local", Audience: "payments-api", Scopes: []string{"refunds:write"}}}},
			&agentguard.Tool{Name: "close_account", Annotations: agentguard.Annotations{Destructive: true}},
		),
		genkitguard.WithApprovals(deferred),
	)
	if err != nil {
		return err
	}

	fmt.Fprintf(w, "genkit support assistant, agent %s\n", agent.ID())
	taskCtx, task, err := guard.StartTask(ctx, agentguard.TaskSpec{ID: "task-ticket-T-7", Purpose: "resolve ticket T-7", OnBehalfOf: "user:carol"})
	if err != nil {
		return err
	}

	// The model is offered only what policy lets this agent call.
	offered, err := mw.Tools(taskCtx, tools.all()...)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "tools offered to the model: %s\n\n", names(offered))

	resp, err := mw.Generate(taskCtx, g,
		ai.WithModel(model),
		ai.WithSystem("You resolve support tickets with the tools you have."),
		ai.WithPrompt("Ticket T-7: order O-1001 arrived broken. Refund it and close my account."),
		ai.WithTools(offered...),
	)
	for round := 0; err == nil && resp.FinishReason == ai.FinishReasonInterrupted; round++ {
		if round == 5 {
			return errors.New("the generation keeps pausing for approvals")
		}
		var restarts []*ai.Part
		for _, p := range resp.Interrupts() {
			req, ok := mw.Pending(p)
			if !ok {
				return errors.New("the generation paused for something other than an approval")
			}
			fmt.Fprintf(w, "\npaused: %s %s waits for a %s approval (%s)\n", req.Tool, req.Args, req.Kind, req.Reason)
			decision := supervise(req)
			fmt.Fprintf(w, "supervisor %s: granted=%t (%s)\n\n", decision.Approvers[0], decision.Granted, decision.Reason)
			restart, err := mw.Restart(p, decision)
			if err != nil {
				return err
			}
			restarts = append(restarts, restart)
		}
		// Resume in the same task: the decision is bound to it.
		resp, err = mw.Generate(taskCtx, g,
			ai.WithModel(model),
			ai.WithMessages(resp.History()...),
			ai.WithTools(offered...),
			ai.WithToolRestarts(restarts...),
		)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nassistant: %s\n", resp.Text())

	if err := task.End(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "task ended: %d credential leases revoked\n", len(issuer.Revoked()))
	return nil
}

// supervise is the scripted supervisor: it grants refunds up to 500. The
// approver's name is the signed-in person's, never the model's word.
func supervise(req *agentguard.ApprovalRequest) approval.Decision {
	var args struct{ Amount int }
	if err := json.Unmarshal(req.Args, &args); err != nil || args.Amount > 500 {
		return approval.Decision{Granted: false, Approvers: []string{"alice"}, Reason: "too large for a broken item"}
	}
	return approval.Decision{Granted: true, Approvers: []string{"alice"}, Reason: "photo of the damage checked"}
}

// newEngine is the Cedar engine of the embedded policies, with the agent
// in group "support" and every policy validated against the tools' schema.
func newEngine(agentID string, tools ...ai.Tool) (*policy.CedarEngine, error) {
	sub, err := fs.Sub(policyFiles, "policies")
	if err != nil {
		return nil, err
	}
	set, err := policy.LoadFS(sub)
	if err != nil {
		return nil, err
	}
	described := make([]*agentguard.Tool, 0, len(tools))
	for _, t := range tools {
		def := t.Definition()
		s, err := json.Marshal(def.InputSchema)
		if err != nil {
			return nil, err
		}
		described = append(described, &agentguard.Tool{Name: def.Name, InputSchema: s})
	}
	schema, err := agentguard.PolicySchema(described...)
	if err != nil {
		return nil, err
	}
	return policy.NewCedarEngine(set,
		policy.WithAgentGroups(map[string][]string{agentID: {"support"}}),
		policy.WithSchema(schema))
}

// names lists tools by name.
func names(tools []ai.ToolRef) string {
	var out []string
	for _, t := range tools {
		out = append(out, t.Name())
	}
	return strings.Join(out, ", ")
}

// transcript is an audit sink that prints each tool call's record.
type transcript struct{ w io.Writer }

func (t transcript) Write(_ context.Context, e audit.Event) error {
	if e.Kind != audit.KindToolCall {
		return nil
	}
	line := fmt.Sprintf("  audit  %s decision=%s", e.Tool, e.Decision)
	if e.Step != "" {
		line += " step=" + e.Step
	}
	if a := e.Approval; a != nil {
		line += " approval=" + a.Status
		if len(a.Approvers) > 0 {
			line += "(" + strings.Join(a.Approvers, ",") + ")"
		}
	}
	line += " outcome=" + e.Outcome
	if len(e.Leases) > 0 {
		line += fmt.Sprintf(" leases=%d", len(e.Leases))
	}
	_, err := fmt.Fprintln(t.w, line)
	return err
}
