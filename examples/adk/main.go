// Command adk runs an agent built with Google's Agent Development Kit
// (ADK) whose tool calls pass through AgentGuard: a scripted model (no
// network, no API key) asks for an order, a refund policy forbids, and a
// refund that needs a supervisor, who confirms it through ADK's tool
// confirmation. It prints the conversation and the guard's audit records.
package main

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/runner"
	"google.golang.org/adk/session"
	"google.golang.org/adk/tool"
	"google.golang.org/adk/tool/functiontool"
	"google.golang.org/genai"

	"github.com/agentguard/go-sdk/agentguard"
	adkguard "github.com/agentguard/go-sdk/agentguard/adapters/adk"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

//go:embed policies/*.cedar
var policyFiles embed.FS

const (
	appName = "shop"
	userID  = "alice"
)

// approverKey is where the application puts who signed in to answer a
// confirmation: the guard records that name, never one the model or the
// answer's payload gives.
type approverKey struct{}

// approver is the signed-in approver of the run of ctx, "" for none.
func approver(ctx tool.Context) string {
	name, _ := ctx.Value(approverKey{}).(string)
	return name
}

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "adk example:", err)
		os.Exit(1)
	}
}

// auditLines is an audit sink that prints each tool call's record.
type auditLines struct{ w io.Writer }

func (a auditLines) Write(_ context.Context, e audit.Event) error {
	if e.Kind != audit.KindToolCall {
		return nil
	}
	line := fmt.Sprintf("    audit: %s call=%s decision=%s outcome=%s", e.Tool, e.CallID, e.Decision, e.Outcome)
	if len(e.Policies) > 0 {
		line += " policies=" + strings.Join(e.Policies, ",")
	}
	if e.Approval != nil {
		line += " approval=" + e.Approval.Status
		if len(e.Approval.Approvers) > 0 {
			line += "(" + strings.Join(e.Approval.Approvers, ",") + ")"
		}
	}
	if len(e.Leases) > 0 {
		line += fmt.Sprintf(" leases=%d", len(e.Leases))
	}
	_, err := fmt.Fprintln(a.w, line)
	return err
}

type orderArgs struct {
	Order string `json:"order"`
}

type refundArgs struct {
	Order  string `json:"order"`
	Amount int    `json:"amount"`
}

// tools are the shop's ADK function tools. Each finds the task's payments
// token in its context; it never prints it.
func tools(w io.Writer) ([]tool.Tool, error) {
	lookup, err := functiontool.New(functiontool.Config{Name: "lookup_order", Description: "Look up an order's status."},
		func(ctx tool.Context, a orderArgs) (map[string]any, error) {
			cred, ok := credentials.FromContext(ctx, "payments")
			fmt.Fprintf(w, "    tool lookup_order(%s) runs with a task token: %v\n", a.Order, ok && !cred.Secret.IsZero())
			return map[string]any{"order": a.Order, "status": "shipped"}, nil
		})
	if err != nil {
		return nil, err
	}
	refund, err := functiontool.New(functiontool.Config{Name: "refund", Description: "Refund an order."},
		func(ctx tool.Context, a refundArgs) (map[string]any, error) {
			cred, ok := credentials.FromContext(ctx, "payments")
			fmt.Fprintf(w, "    tool refund(%s, %d) runs with a task token: %v\n", a.Order, a.Amount, ok && !cred.Secret.IsZero())
			return map[string]any{"order": a.Order, "refunded": a.Amount}, nil
		})
	if err != nil {
		return nil, err
	}
	del, err := functiontool.New(functiontool.Config{Name: "delete_account", Description: "Delete the customer's account."},
		func(tool.Context, orderArgs) (map[string]any, error) {
			fmt.Fprintln(w, "    tool delete_account runs (it never should)")
			return map[string]any{"deleted": true}, nil
		})
	if err != nil {
		return nil, err
	}
	return []tool.Tool{lookup, refund, del}, nil
}

func run(ctx context.Context, w io.Writer) error {
	// Identity: NOT FOR PRODUCTION, an in-memory SPIFFE CA (in production,
	// SPIRE's Workload API through identity.NewSPIFFESource).
	dev, err := identity.NewDevIssuer("example.org")
	if err != nil {
		return err
	}
	me, err := dev.Agent("/agent/shop-assistant")
	if err != nil {
		return err
	}
	// Credentials: the local issuer (for development) signs a short-lived
	// token for each task.
	issuer, err := local.NewIssuer()
	if err != nil {
		return err
	}
	broker := credentials.NewBroker(credentials.WithProvider("payments", issuer))
	d := approval.NewDeferred()

	shopTools, err := tools(w)
	if err != nil {
		return err
	}
	payments := adkguard.Spec{Toolset: "shop", Credentials: []credentials.Requirement{
		{Name: "payments", Provider: "payments", Audience: "payments", Scopes: []string{"orders:read"}}}}
	refunds := payments
	refunds.Credentials = []credentials.Requirement{{Name: "payments", Provider: "payments", Audience: "payments", Scopes: []string{"refunds:write"}}}
	refunds.Annotations.Destructive = true

	// Policy: the Cedar policies embedded in the binary.
	engine, err := newEngine(ctx, me)
	if err != nil {
		return err
	}
	guard, err := agentguard.New(
		agentguard.WithIdentity(me),
		agentguard.WithPolicy(engine),
		agentguard.WithBroker(broker),
		agentguard.WithApprover(d),
		agentguard.WithAudit(auditLines{w}),
	)
	if err != nil {
		return err
	}
	defer guard.Close(context.Background())
	ag, err := adkguard.New(guard,
		adkguard.WithToolset("shop"),
		adkguard.WithSpec("lookup_order", payments),
		adkguard.WithSpec("refund", refunds),
		adkguard.WithSpec("delete_account", adkguard.Spec{Toolset: "shop", Annotations: agentguard.Annotations{Destructive: true}}),
		adkguard.WithApprovals(d),
		adkguard.WithApproverName(approver),
	)
	if err != nil {
		return err
	}

	m := &scriptedModel{w: w}
	// Agent builds the agent with the guard's callbacks and wrapped tools.
	a, err := ag.Agent(llmagent.Config{Name: "shop_assistant", Model: m, Instruction: "Help the customer with orders.", Tools: shopTools})
	if err != nil {
		return err
	}
	sessions := session.InMemoryService()
	r, err := runner.New(runner.Config{AppName: appName, Agent: a, SessionService: sessions})
	if err != nil {
		return err
	}
	created, err := sessions.Create(ctx, &session.CreateRequest{AppName: appName, UserID: userID})
	if err != nil {
		return err
	}
	sid := created.Session.ID()

	// One task for the conversation: the confirmation is answered in it.
	tctx, task, err := guard.StartTask(ctx, agentguard.TaskSpec{Purpose: "help a customer", OnBehalfOf: "user:" + userID})
	if err != nil {
		return err
	}
	defer task.End(context.Background())

	turn := func(ctx context.Context, msg *genai.Content) ([]adkguard.Confirmation, error) {
		var confs []adkguard.Confirmation
		for ev, err := range r.Run(ctx, userID, sid, msg, agent.RunConfig{}) {
			if err != nil {
				return nil, err
			}
			printEvent(w, ev)
			confs = append(confs, ag.Confirmations(ev)...)
		}
		return confs, nil
	}
	say := func(text string) ([]adkguard.Confirmation, error) {
		fmt.Fprintf(w, "\nuser: %s\n", text)
		return turn(tctx, genai.NewContentFromText(text, genai.RoleUser))
	}

	if _, err := say("Where is my order A-1?"); err != nil {
		return err
	}
	if _, err := say("Refund 5000 on A-1."); err != nil {
		return err
	}
	confs, err := say("Refund 250 on A-1.")
	if err != nil {
		return err
	}
	if len(confs) != 1 || confs[0].Approval == nil {
		return fmt.Errorf("expected one confirmation of the guard, got %d", len(confs))
	}
	// The shop's console shows the guard's request (never what the model
	// says of it) to a supervisor, who signs in as bob and confirms: the
	// answer runs in bob's context, in the same task.
	c := confs[0]
	fmt.Fprintf(w, "\nbob signs in as supervisor and is asked to confirm %s %s (approval %q: %s)\n", c.Approval.Tool, c.Approval.Args, c.Approval.Kind, c.Approval.Reason)
	fmt.Fprintln(w, "bob: yes")
	if _, err := turn(context.WithValue(tctx, approverKey{}, "bob"), adkguard.Answer(c.ID, true)); err != nil {
		return err
	}
	return nil
}

// newEngine is the Cedar engine over the embedded policies, with the
// agent in the group "shop".
func newEngine(ctx context.Context, me identity.Source) (*policy.CedarEngine, error) {
	sub, err := fs.Sub(policyFiles, "policies")
	if err != nil {
		return nil, err
	}
	set, err := policy.LoadFS(sub)
	if err != nil {
		return nil, err
	}
	id, err := me.Identity(ctx)
	if err != nil {
		return nil, err
	}
	return policy.NewCedarEngine(set, policy.WithAgentGroups(map[string][]string{id.ID.String(): {"shop"}}))
}

// printEvent prints what an event says: the model's calls and answers,
// the tools' results and the confirmations asked for.
func printEvent(w io.Writer, ev *session.Event) {
	if ev.Content == nil {
		return
	}
	for _, p := range ev.Content.Parts {
		switch {
		case p.FunctionCall != nil && p.FunctionCall.Name == "adk_request_confirmation":
			fmt.Fprintln(w, "  adk: asks for a confirmation")
		case p.FunctionCall != nil:
			args, _ := json.Marshal(p.FunctionCall.Args)
			fmt.Fprintf(w, "  model calls %s %s [%s]\n", p.FunctionCall.Name, args, p.FunctionCall.ID)
		case p.FunctionResponse != nil:
			resp, _ := json.Marshal(p.FunctionResponse.Response)
			fmt.Fprintf(w, "  result [%s]: %s\n", p.FunctionResponse.ID, resp)
		case p.Text != "":
			fmt.Fprintf(w, "  model: %s\n", p.Text)
		}
	}
}

// offered lists the function declarations of a request, sorted.
func offered(cfg *genai.GenerateContentConfig) []string {
	var names []string
	if cfg != nil {
		for _, t := range cfg.Tools {
			for _, d := range t.FunctionDeclarations {
				names = append(names, d.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}
