package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/policy"
)

// delegate hands part of the task to the order-lookup sub-agent, which runs
// its own guard with its own identity. Its calls carry the chain of agents
// that delegated to it, and each is authorized for the sub-agent and for the
// support bot: the sub-agent never gets more than its parent.
func delegate(ctx context.Context, out io.Writer, guard *agentguard.Guard, engine policy.Engine, ids *identities, payments *paymentsAPI, events audit.Sink) error {
	fmt.Fprintln(out, "handing work to a sub-agent:")
	if ids.sub == nil {
		fmt.Fprintln(out, "  skipped: the Workload API serves no SVID with hint \"order-lookup\"")
		return nil
	}
	me, err := ids.agent.Identity(ctx)
	if err != nil {
		return err
	}
	sub, err := ids.sub.Identity(ctx)
	if err != nil {
		return err
	}
	lock, err := loadLock() // the sub-agent trusts the same tool definitions
	if err != nil {
		return err
	}
	subGuard, err := agentguard.New(
		agentguard.WithIdentity(ids.sub),
		agentguard.WithPolicy(engine),
		agentguard.WithLock(lock),
		agentguard.WithAudit(events), // the same audit file: one chain for the process
	)
	if err != nil {
		return err
	}
	defer subGuard.Close(ctx)
	subTools := subGuard.NewRegistry("helpdesk")
	if err := subTools.Register(supportTools(payments)...); err != nil {
		return err
	}

	shell, err := spiffeid.FromPath(me.ID.TrustDomain(), "/agent/shell-runner")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "9. hand the task to %s\n", shell)
	if _, err := guard.Delegate(ctx, shell); err != nil {
		var de *agentguard.DelegationError
		if !errors.As(err, &de) {
			return err
		}
		fmt.Fprintf(out, "  DENIED %s\n\n", de.Reason)
	}

	fmt.Fprintf(out, "10. hand the order look-up to %s\n", sub.ID)
	dctx, err := guard.Delegate(ctx, sub.ID)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "  ALLOWED")
	fmt.Fprintln(out)
	sctx, subTask, err := subGuard.StartTask(dctx, agentguard.TaskSpec{ID: "task-lookup-O-77", Purpose: "look up order O-77"})
	if err != nil {
		return err
	}
	runSteps(sctx, out, subTools, "sub-call-", []step{
		{"11. sub-agent reads the ticket", "read_ticket", `{"id":"T-1001"}`},
		{"12. sub-agent exports customers (it may; its parent may not)", "export_customers", `{}`},
	})
	return subTask.End(ctx)
}
