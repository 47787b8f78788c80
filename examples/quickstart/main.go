// Command quickstart runs a customer-support agent's tool calls through
// AgentGuard, on embedded defaults: no server is needed.
//
// It shows the agent's verified SPIFFE identity, an allowed call, a call
// that waits for a supervisor's approval (a scripted approver grants it,
// bound to the call's exact arguments), a call denied because of its
// arguments, a call denied because of what the task has seen, a tool hidden
// from the agent's tool list, a rug pull (the tool server changes a tool's
// description; the tool is hidden and blocked, and the supervisor refuses
// the change), a task-scoped credential and its revocation when the task
// ends, and a task handed to a sub-agent that gets no more than its parent.
// It prints each decision and each audit event. The tools it trusts are
// pinned in agentguard.lock. Every audit event also goes to a hash-chained
// audit file whose checkpoints are signed with an Ed25519 key; at the end
// the quickstart verifies the file, and shows that an edited copy fails
// and that a copy cut short fails against the checkpoints kept aside.
//
// Credentials come from the local issuer (credentials/local, for
// development): a short-lived access token for the task, the payments
// audience and the refunds:write scope, which a payments API on a loopback
// port verifies. Once the task has ended, the same token is refused.
//
// Identity comes from the development issuer, an in-memory SPIFFE CA that is
// not for production, unless SPIFFE_ENDPOINT_SOCKET names a SPIFFE Workload
// API (a SPIRE agent): then the agent's X.509-SVID comes from there. Set
// AGENTGUARD_SPIFFE_ID to pick one of several SVIDs, and register a second
// entry with hint "order-lookup" for the sub-agent.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// transcript is an audit sink that prints each event as one readable line.
type transcript struct{ w io.Writer }

func (t transcript) Write(_ context.Context, e audit.Event) error {
	line := fmt.Sprintf("  audit  %-17s", e.Kind)
	add := func(k, v string) {
		if v != "" {
			line += " " + k + "=" + v
		}
	}
	add("tool", e.Tool)
	if id := e.Identity; id != nil {
		add("agent", e.Agent)
		add("serial", id.Serial)
		add("reason", strconv.Quote(id.Reason))
	}
	if e.Kind == audit.KindDelegate || len(e.Chain) > 0 {
		add("agent", e.Agent)
		if len(e.Chain) > 0 {
			add("chain", strings.Join(e.Chain, ">"))
		}
	}
	add("to", e.Delegatee)
	add("decision", e.Decision)
	if len(e.Policies) > 0 {
		add("policies", strings.Join(e.Policies, ","))
	}
	if a := e.Approval; a != nil {
		v := a.Status
		if len(a.Approvers) > 0 {
			v += "(" + strings.Join(a.Approvers, ",") + ")"
		}
		add("approval", v)
	}
	add("outcome", e.Outcome)
	add("task", e.Task)
	if len(e.Leases) > 0 {
		add("leases", strings.Join(e.Leases, ","))
	}
	if c := e.Credential; c != nil {
		add("aud", c.Audience)
		add("scopes", strings.Join(c.Scopes, ","))
		if !c.ExpiresAt.IsZero() {
			add("expires_in", c.ExpiresAt.Sub(e.Time).Round(time.Second).String())
		}
	}
	if len(e.Args) > 0 {
		add("args", string(e.Args))
	} else if e.ArgsDigest != "" {
		add("args", e.ArgsDigest[:19]+"…")
	}
	_, err := fmt.Fprintln(t.w, line)
	return err
}

func run(ctx context.Context, out io.Writer) error {
	// Policy: Cedar files embedded in the binary.
	set, err := loadPolicies()
	if err != nil {
		return err
	}
	// Credentials: the local issuer signs short-lived access tokens for
	// one task, audience and scope; the payments API verifies them. (For
	// development: in production, an OAuth 2.0 server through
	// credentials/oauth.) The tool gets its token through its context,
	// never its arguments.
	issuer, err := local.NewIssuer()
	if err != nil {
		return err
	}
	payments, err := startPayments(issuer.Verifier())
	if err != nil {
		return err
	}
	defer payments.close()
	var issued atomic.Int64
	broker := credentials.NewBroker(credentials.WithProvider("payments", issuer),
		credentials.WithObserver(func(_ context.Context, e credentials.Event) {
			if e.Kind == credentials.EventIssued {
				issued.Add(1)
			}
		}))

	// Identity: an X.509-SVID, verified against its trust bundle, from
	// SPIRE's Workload API when SPIFFE_ENDPOINT_SOCKET is set, else from the
	// development issuer.
	ids, err := newIdentities(ctx, out)
	if err != nil {
		return err
	}
	defer ids.close()
	id := ids.agent
	me, err := id.Identity(ctx)
	if err != nil {
		return err
	}
	engine, err := newEngine(set, agentGroups(me.ID), supportTools(payments))
	if err != nil {
		return err
	}

	// Approvals: a scripted supervisor decides what policy sends to a
	// human. Tool definitions: pinned in agentguard.lock, reviewed like code.
	sup := startSupervisor(ctx, out)
	defer sup.close()
	lock, err := loadLock()
	if err != nil {
		return err
	}

	// Audit: every event is printed, and written to a hash-chained file
	// whose checkpoints are signed (durable mode: a call's record is on
	// disk before its result is returned).
	alog, err := openAuditLog()
	if err != nil {
		return err
	}
	defer alog.sink.Shutdown(ctx)
	events := audit.Tee(transcript{out}, alog.sink)

	guard, err := agentguard.New(
		agentguard.WithIdentity(id),
		agentguard.WithPolicy(engine),
		agentguard.WithBroker(broker),
		agentguard.WithApprover(sup.queue),
		agentguard.WithLock(lock),
		agentguard.WithAudit(events),
	)
	if err != nil {
		return err
	}
	defer guard.Close(ctx)

	tools := guard.NewRegistry("helpdesk")
	if err := tools.Register(supportTools(payments)...); err != nil {
		return err
	}

	fmt.Fprintf(out, "AgentGuard quickstart: agent %s\n", me.ID)
	fmt.Fprintf(out, "policy set %s (%d policies, validated against the schema of the %d tools)\n\n", set.Digest()[:19]+"…", set.Len(), len(tools.Tools()))

	root := ctx // the task's context is cancelled when the task ends
	ctx, task, err := guard.StartTask(ctx, agentguard.TaskSpec{
		ID: "task-refund-T-1001", Purpose: "resolve ticket T-1001",
		Sensitivity: agentguard.Internal, OnBehalfOf: "user:alice",
	})
	if err != nil {
		return err
	}

	visible, err := visibleTools(ctx, tools)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "tools the agent may see: %s\n", visible)
	fmt.Fprintf(out, "  (export_customers is registered but hidden: only the data team may call it)\n\n")

	runSteps(ctx, out, tools, "call-", []step{
		{"1. read the ticket", "read_ticket", `{"id":"T-1001"}`},
		{"2. refund 40 (within the limit)", "issue_refund", `{"order":"O-77","amount":40}`},
		{"3. refund 250 (needs a supervisor's approval)", "issue_refund", `{"order":"O-78","amount":250}`},
		{"4. refund 5000 (over the hard limit)", "issue_refund", `{"order":"O-79","amount":5000}`},
		{"5. email the customer at an outside address", "send_email", `{"to":"bob@customer.example","body":"Refund sent"}`},
		{"6. email the support team", "send_email", `{"to":"team@example.com","body":"Ticket T-1001 refunded"}`},
		{"7. call the hidden export tool anyway", "export_customers", `{}`},
	})
	fmt.Fprintf(out, "task taint: %v\n\n", task.Taint())

	if err := rugPull(ctx, out, tools, payments); err != nil {
		return err
	}

	if err := delegate(ctx, out, guard, engine, ids, payments, events); err != nil {
		return err
	}

	fmt.Fprintln(out, "ending the task revokes its credentials:")
	if err := task.End(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "\npayments tokens issued: %d, for the whole task; on the issuer's revocation list: %d\n", issued.Load(), len(issuer.Revoked()))
	_, err = payments.replay(context.Background())
	fmt.Fprintf(out, "the refund tool's token, replayed after the task ended: %v\n", err)
	if err == nil {
		return errors.New("a revoked token was accepted")
	}

	// Close the guard and the audit file, then prove the file intact.
	if err := guard.Close(root); err != nil {
		return err
	}
	return alog.verify(root, out)
}

func supportTools(payments *paymentsAPI) []*agentguard.Tool {
	return []*agentguard.Tool{
		{
			Name:         "read_ticket",
			Description:  "Read a support ticket by ID.",
			InputSchema:  json.RawMessage(`{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}`),
			Annotations:  agentguard.Annotations{ReadOnly: true, Idempotent: true},
			OutputLabels: []string{"pii"}, // tickets hold customers' names and addresses
			Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
				var a struct{ ID string }
				if err := json.Unmarshal(args, &a); err != nil {
					return nil, err
				}
				return &agentguard.Result{Output: fmt.Sprintf("ticket %s: Bob Doe <bob@customer.example> asks for a refund of order O-77", a.ID)}, nil
			},
		},
		{
			Name:        "issue_refund",
			Description: "Refund an order.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"order":{"type":"string"},"amount":{"type":"integer"}},"required":["order","amount"]}`),
			Annotations: agentguard.Annotations{Destructive: true},
			Risk:        agentguard.RiskHigh,
			Credentials: []credentials.Requirement{{
				Name: "payments", Provider: "payments", Audience: paymentsAudience,
				Resources: []string{payments.URL}, Scopes: []string{"refunds:write"}, TTL: 5 * time.Minute,
			}},
			Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
				var a struct {
					Order  string
					Amount int
				}
				if err := json.Unmarshal(args, &a); err != nil {
					return nil, err
				}
				out, err := payments.refund(ctx, a.Order, a.Amount)
				if err != nil {
					return nil, err
				}
				return &agentguard.Result{Output: out}, nil
			},
		},
		{
			Name:        "send_email",
			Description: "Send an email.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"to":{"type":"string"},"body":{"type":"string"}},"required":["to","body"]}`),
			Annotations: agentguard.Annotations{OpenWorld: true},
			// Its audit records hold the arguments, the message body
			// redacted, rather than only their digest.
			Audit: agentguard.ArgsAudit{Record: true, Redact: []string{"/body"}},
			Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
				var a struct{ To string }
				if err := json.Unmarshal(args, &a); err != nil {
					return nil, err
				}
				return &agentguard.Result{Output: "sent to " + a.To}, nil
			},
		},
		{
			Name:        "export_customers",
			Description: "Export every customer record.",
			Annotations: agentguard.Annotations{ReadOnly: true, OpenWorld: true},
			Risk:        agentguard.RiskCritical,
			Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
				return &agentguard.Result{Output: "…every customer…"}, nil
			},
		},
	}
}

// step is one tool call the quickstart's agent makes.
type step struct{ say, tool, args string }

// runSteps makes each call through tools and prints what the guard said.
func runSteps(ctx context.Context, out io.Writer, tools *agentguard.Registry, idPrefix string, steps []step) {
	for i, s := range steps {
		fmt.Fprintf(out, "%s: %s %s\n", s.say, s.tool, s.args)
		res, err := tools.Call(ctx, agentguard.Call{ID: fmt.Sprintf("%s%d", idPrefix, i+1), Name: s.tool, Args: json.RawMessage(s.args)})
		var deny *agentguard.DenyError
		switch {
		case errors.As(err, &deny):
			fmt.Fprintf(out, "  DENIED %s\n", deny.Reason)
		case err != nil:
			fmt.Fprintf(out, "  FAILED %v\n", err)
		default:
			fmt.Fprintf(out, "  ALLOWED → %v\n", res.Output)
		}
		fmt.Fprintln(out)
	}
}

// visibleTools names the tools the agent is shown, in order.
func visibleTools(ctx context.Context, tools *agentguard.Registry) (string, error) {
	visible, err := tools.List(ctx)
	if err != nil {
		return "", err
	}
	names := make([]string, len(visible))
	for i, t := range visible {
		names[i] = t.Name
	}
	return strings.Join(names, ", "), nil
}
