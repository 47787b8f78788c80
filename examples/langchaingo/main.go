// Command langchaingo runs a langchaingo agent whose tools are guarded by
// AgentGuard through the langchainguard adapter. The agent is langchaingo's
// own one-shot (MRKL) agent and executor; the model is scripted, so the
// program needs no network and no API key.
//
// It shows the tools the model is shown (a tool no policy permits is left
// out), an allowed call that runs with the agent's SPIFFE identity and a
// credential leased to the task, a call that waits for a supervisor's
// approval (langchaingo has no human-in-the-loop of its own, so the guard's
// approval queue holds the call until the supervisor decides), a call
// denied by Cedar policy, which the model reads as its observation while
// the run goes on, a call of the tool the model was not shown, which the
// guard denies and audits all the same, and the credential's revocation
// when the task ends.
//
//	cd examples/langchaingo && go run .
package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/tmc/langchaingo/agents"
	"github.com/tmc/langchaingo/chains"
	"github.com/tmc/langchaingo/tools"

	"github.com/agentguard/go-sdk/agentguard"
	langchainguard "github.com/agentguard/go-sdk/agentguard/adapters/langchaingo"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

//go:embed support.cedar
var policyText string

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "langchaingo example:", err)
		os.Exit(1)
	}
}

// run runs the example, printing its transcript to w.
func run(w io.Writer) error {
	_, err := runDemo(context.Background(), w)
	return err
}

// report is what a run leaves for its test to check.
type report struct {
	// tokens are the credential values the lookup tool was given: they
	// must never appear in the transcript.
	tokens []string
}

func runDemo(ctx context.Context, out io.Writer) (*report, error) {
	w := &lockedWriter{w: out}
	rep := &report{}

	// Identity: a verified X.509-SVID from the development issuer (an
	// in-memory SPIFFE CA, not for production; SPIRE in production).
	dev, err := identity.NewDevIssuer("example.org")
	if err != nil {
		return nil, err
	}
	bot, err := dev.Agent("/agent/support-bot")
	if err != nil {
		return nil, err
	}

	// Credentials: the local issuer signs short-lived tokens for one task,
	// audience and scope (for development; an OAuth 2.0 server in
	// production). The orders API verifies them.
	issuer, err := local.NewIssuer()
	if err != nil {
		return nil, err
	}
	broker := credentials.NewBroker(credentials.WithProvider("local", issuer))

	// The agent's langchaingo tools, as they are, and what policy must know
	// of them that a langchaingo tool cannot say.
	ts := []tools.Tool{
		lookupOrder{verifier: issuer.Verifier(), seen: func(tok string) { rep.tokens = append(rep.tokens, tok) }},
		refund{},
		deleteCustomer{},
	}
	opts := []langchainguard.Option{
		langchainguard.WithSpec("lookup_order", langchainguard.Spec{
			Annotations: agentguard.Annotations{ReadOnly: true},
			Credentials: []credentials.Requirement{{Name: "orders", Provider: "local", Audience: "orders-api", Scopes: []string{"orders:read"}}},
		}),
		langchainguard.WithSpec("refund", langchainguard.Spec{Risk: agentguard.RiskHigh}),
		langchainguard.WithSpec("delete_customer", langchainguard.Spec{Risk: agentguard.RiskCritical, Annotations: agentguard.Annotations{Destructive: true}}),
	}

	// Policy: Cedar, validated against the schema of these tools.
	defs, err := langchainguard.Definitions("support", ts, opts...)
	if err != nil {
		return nil, err
	}
	schema, err := agentguard.PolicySchema(defs...)
	if err != nil {
		return nil, err
	}
	set, err := policy.ParseSet("support.cedar", policyText)
	if err != nil {
		return nil, err
	}
	engine, err := policy.NewCedarEngine(set, policy.WithSchema(schema))
	if err != nil {
		return nil, err
	}

	// Approvals: a queue that a supervisor works through.
	queue := approval.NewQueue()
	defer queue.Close()
	stopSupervisor := superviseQueue(ctx, queue, w)
	defer stopSupervisor()

	guard, err := agentguard.New(
		agentguard.WithIdentity(bot),
		agentguard.WithPolicy(engine),
		agentguard.WithBroker(broker),
		agentguard.WithApprover(queue),
		agentguard.WithAudit(transcript{w}),
	)
	if err != nil {
		return nil, err
	}
	defer guard.Close(ctx)

	toolset, err := langchainguard.New(guard, "support", ts, opts...)
	if err != nil {
		return nil, err
	}
	me, err := bot.Identity(ctx)
	if err != nil {
		return nil, err
	}
	w.printf("AgentGuard + langchaingo: agent %s\n", me.ID)

	tctx, task, err := guard.StartTask(ctx, agentguard.TaskSpec{ID: "task-T-7", Purpose: "resolve ticket T-7", OnBehalfOf: "user:carol"})
	if err != nil {
		return nil, err
	}
	allowed, err := toolset.Allowed(tctx)
	if err != nil {
		return nil, err
	}
	w.printf("tools the model is shown: %s\n\n", names(allowed))

	model := &scriptedModel{w: w, script: []string{
		"Thought: I need the order first.\nAction: lookup_order\nAction Input: O-1001",
		"Thought: It was delivered and paid; refund it.\nAction: refund\nAction Input: O-1001",
		"Thought: Now the customer's other orders.\nAction: refund\nAction Input: all other orders of customer C-7",
		"Thought: Maybe I can close the account instead.\nAction: delete_customer\nAction Input: C-7",
		"Thought: I now know the final answer\nFinal Answer: Order O-1001 is refunded. Other orders need their IDs, one refund each.",
	}}
	executor := agents.NewExecutor(
		toolset.Agent(agents.NewOneShotAgent(model, allowed)),
		agents.WithCallbacksHandler(toolset.Callbacks()),
		agents.WithMaxIterations(6),
	)
	answer, err := chains.Run(tctx, executor, "Customer C-7 wants order O-1001 refunded, and all their other orders too.")
	if err != nil {
		return nil, err
	}
	w.printf("\nfinal answer: %s\n\n", answer)

	if err := task.End(ctx); err != nil {
		return nil, err
	}
	w.printf("task ended: its credentials are revoked\n")
	return rep, nil
}

// superviseQueue decides each approval request as the supervisor alice
// would, after checking it, until stop is called.
func superviseQueue(ctx context.Context, q *approval.Queue, w *lockedWriter) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			req, err := q.Next(ctx)
			if err != nil {
				return
			}
			w.printf("   supervisor alice approves %s %s (%s: %s)\n", req.Tool, req.Args, req.Kind, req.Reason)
			if err := q.Grant(req.ID, "alice", "order checked"); err != nil {
				w.printf("   supervisor: %v\n", err)
			}
		}
	}()
	return func() { cancel(); <-done }
}

func names(ts []tools.Tool) string {
	n := make([]string, len(ts))
	for i, t := range ts {
		n[i] = t.Name()
	}
	return strings.Join(n, ", ")
}

// lockedWriter serialises the transcript: the supervisor writes from its
// own goroutine.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}
