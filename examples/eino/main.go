// Command eino runs the tool calls of an eino agent through AgentGuard,
// with no network and no API key: the chat model is scripted.
//
// The agent is an eino graph (a chat model node and a ToolsNode, looping
// until the model answers) whose ToolsNode holds AgentGuard's middleware
// (agentguard/adapters/eino). Its identity is a development SPIFFE SVID,
// its policy the Cedar file policies/shop.cedar, its credentials short-lived
// tokens from the local issuer. The run shows the tools policy lets the
// model see, an allowed call that gets a task token the shop API verifies,
// a denied call whose denial the model reads as the tool's result, and a
// refund that waits for a manager: the run pauses with an eino interrupt,
// the manager grants it, and the run resumes from its checkpoint. Every
// tool call's audit record is printed as it is written.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"

	"github.com/agentguard/go-sdk/agentguard"
	einoguard "github.com/agentguard/go-sdk/agentguard/adapters/eino"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
	"github.com/agentguard/go-sdk/identity"
)

func main() {
	if err := run(context.Background(), os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "eino example:", err)
		os.Exit(1)
	}
}

// run runs the example, writing its transcript to out. onToken, if not nil,
// is told each token a tool was given (tests check none is printed).
func run(ctx context.Context, out io.Writer, onToken func(string)) error {
	// Identity: a development SPIFFE CA in memory (NOT FOR PRODUCTION;
	// SPIRE's Workload API in production).
	dev, err := identity.NewDevIssuer("example.org")
	if err != nil {
		return err
	}
	bot, err := dev.Agent("/agent/shop-bot")
	if err != nil {
		return err
	}
	// Credentials: the local issuer signs short-lived tokens for one task,
	// audience and scope (for development); the shop API verifies them.
	issuer, err := local.NewIssuer()
	if err != nil {
		return err
	}
	broker := credentials.NewBroker(credentials.WithProvider("shop", issuer))

	tools, err := shopTools(&shopAPI{verifier: issuer.Verifier(), out: out, onToken: onToken})
	if err != nil {
		return err
	}
	specs := []einoguard.Option{
		einoguard.WithSpec("lookup_order", einoguard.Spec{
			Annotations: agentguard.Annotations{ReadOnly: true}, Credentials: shopToken("orders:read"),
		}),
		einoguard.WithSpec("refund", einoguard.Spec{Risk: agentguard.RiskHigh, Credentials: shopToken("refunds:write")}),
		einoguard.WithSpec("close_account", einoguard.Spec{Annotations: agentguard.Annotations{Destructive: true}}),
	}
	// Policy: Cedar, validated against the schema of these very tools.
	described, err := einoguard.Describe(ctx, "shop", tools, specs...)
	if err != nil {
		return err
	}
	engine, err := newEngine(described)
	if err != nil {
		return err
	}
	// Approvals: eino pauses and resumes runs, so the guard's approver
	// defers to the human who resumes the run.
	deferred := approval.NewDeferred()
	guard, err := agentguard.New(
		agentguard.WithIdentity(bot),
		agentguard.WithPolicy(engine),
		agentguard.WithBroker(broker),
		agentguard.WithApprover(deferred),
		agentguard.WithAudit(transcript{out}),
	)
	if err != nil {
		return err
	}
	defer guard.Close(ctx)
	shop, err := einoguard.New(ctx, guard, "shop", tools, append(specs, einoguard.WithApprovals(deferred))...)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "eino agent %s (development SVID)\n", bot.ID())
	taskCtx, task, err := guard.StartTask(ctx, agentguard.TaskSpec{
		ID: "task-T-1001", Purpose: "help a customer with order O-1", OnBehalfOf: "user:carol",
	})
	if err != nil {
		return err
	}
	infos, err := shop.ToolInfos(taskCtx)
	if err != nil {
		return err
	}
	names := make([]string, len(infos))
	for i, info := range infos {
		names[i] = info.Name
	}
	fmt.Fprintf(out, "tools the model sees: %s\n\n", strings.Join(names, ", "))

	chat, err := newScriptedModel(out).WithTools(infos)
	if err != nil {
		return err
	}
	agent, err := newAgent(ctx, chat, shop.NodeConfig())
	if err != nil {
		return err
	}
	input := []*schema.Message{schema.UserMessage("Where is my order O-1? Please refund the 40 I was overcharged, and close my account.")}
	fmt.Fprintf(out, "user: %s\n", input[0].Content)
	checkpoint := compose.WithCheckPointID("T-1001")

	_, err = agent.Invoke(taskCtx, input, checkpoint)
	waiting := einoguard.Interrupts(err)
	if len(waiting) == 0 {
		return fmt.Errorf("the run should have paused for a manager: %w", err)
	}
	resume := taskCtx
	for _, w := range waiting {
		r := w.Request
		fmt.Fprintf(out, "\nrun paused: %s %s needs approval (%s): %s\n", r.Tool, r.Args, r.Kind, r.Reason)
		fmt.Fprintf(out, "manager alice grants request %s\n\n", r.RequestID)
		// The approver's name comes from who is signed in to the
		// application, never from the model.
		// The decision names the request alice was shown.
		resume = einoguard.Resume(resume, w.ID, einoguard.Decision{
			RequestID: r.RequestID, Granted: true, Approvers: []string{"alice"}, Reason: "overcharge confirmed"})
	}
	answer, err := agent.Invoke(resume, input, checkpoint)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "assistant: %s\n\n", answer.Content)

	if err := task.End(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "task ended: %d task tokens revoked\n", len(issuer.Revoked()))
	return nil
}

func shopToken(scope string) []credentials.Requirement {
	return []credentials.Requirement{{Name: "shop-api", Provider: "shop", Audience: "shop", Scopes: []string{scope}}}
}

// transcript is an audit sink that prints each tool call's record as one
// line.
type transcript struct{ w io.Writer }

func (t transcript) Write(_ context.Context, e audit.Event) error {
	if e.Kind != audit.KindToolCall {
		return nil
	}
	line := fmt.Sprintf("  audit: %s %s %s %s", e.Tool, e.CallID, e.Decision, e.Outcome)
	if len(e.Policies) > 0 {
		line += " policies=" + strings.Join(e.Policies, ",")
	}
	if a := e.Approval; a != nil && a.Status != "" {
		line += " approval=" + a.Status
		if len(a.Approvers) > 0 {
			line += "(" + strings.Join(a.Approvers, ",") + ")"
		}
	}
	_, err := fmt.Fprintln(t.w, line)
	return err
}
