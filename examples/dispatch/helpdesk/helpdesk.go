// Package helpdesk is what the dispatch examples share: a help-desk
// agent's guard, Cedar policy, tools and credentials, a scripted model
// served on a loopback port, and the frame of a run (the task, the
// supervisor's approvals, the check that the model never saw a
// credential). The programs ../anthropic and ../openai each drive it
// through their SDK's real client and their adapter.
package helpdesk

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

//go:embed policies/*.cedar
var policyFiles embed.FS

// Helpdesk is the example's guarded agent: its identity, its tools and
// the guard around them.
type Helpdesk struct {
	// Guard guards every call of Registry's tools.
	Guard *agentguard.Guard
	// Registry holds the agent's tools: lookup_order, issue_refund and
	// export_customers (which policy keeps for the data team).
	Registry *agentguard.Registry
	// Deferred is the guard's approver: a call that needs a supervisor
	// waits until Approve records the decision.
	Deferred *approval.Deferred
	// Agent is the agent's SPIFFE ID.
	Agent string

	// tokens are the credential values the tools received, to check that
	// none of them reached the model.
	mu     sync.Mutex
	tokens []string
}

// New builds the agent: a development SPIFFE identity, Cedar policy, the
// local credential issuer, a Deferred approver (the model APIs have no
// human-in-the-loop of their own), and every audit record printed to out.
// Close its Guard when done.
func New(out io.Writer) (*Helpdesk, error) {
	// NOT FOR PRODUCTION: an in-memory CA minting real X.509-SVIDs.
	dev, err := identity.NewDevIssuer("example.org")
	if err != nil {
		return nil, err
	}
	agent, err := dev.Agent("/agent/support")
	if err != nil {
		return nil, err
	}
	me, err := agent.Identity(context.Background())
	if err != nil {
		return nil, err
	}
	// NOT FOR PRODUCTION: the local issuer signs short-lived tokens for one
	// task, audience and scope; the tools verify them.
	issuer, err := local.NewIssuer()
	if err != nil {
		return nil, err
	}
	h := &Helpdesk{Deferred: approval.NewDeferred(), Agent: me.ID.String()}
	tools := h.tools(issuer.Verifier())

	sub, _ := fs.Sub(policyFiles, "policies")
	set, err := policy.LoadFS(sub)
	if err != nil {
		return nil, err
	}
	schema, err := agentguard.PolicySchema(tools...)
	if err != nil {
		return nil, err
	}
	engine, err := policy.NewCedarEngine(set,
		policy.WithAgentGroups(map[string][]string{me.ID.String(): {"support"}}),
		policy.WithSchema(schema))
	if err != nil {
		return nil, err
	}
	h.Guard, err = agentguard.New(
		agentguard.WithIdentity(agent),
		agentguard.WithPolicy(engine),
		agentguard.WithBroker(credentials.NewBroker(credentials.WithProvider("local", issuer))),
		agentguard.WithApprover(h.Deferred),
		agentguard.WithAudit(auditLine{out}),
	)
	if err != nil {
		return nil, err
	}
	h.Registry = h.Guard.NewRegistry("helpdesk")
	if err := h.Registry.Register(tools...); err != nil {
		return nil, errors.Join(err, h.Guard.Close(context.Background()))
	}
	return h, nil
}

// tools are the agent's tools. Each gets a token for its own audience and
// scope through its context, never its arguments, and verifies it as the
// service behind it would.
func (h *Helpdesk) tools(verifier *local.Verifier) []*agentguard.Tool {
	token := func(ctx context.Context, name, audience, scope string) (string, error) {
		c, ok := credentials.FromContext(ctx, name)
		if !ok {
			return "", errors.New("no credential")
		}
		claims, err := verifier.Verify(ctx, c.Secret.Reveal(), audience, scope)
		if err != nil {
			return "", err
		}
		h.mu.Lock()
		h.tokens = append(h.tokens, c.Secret.Reveal())
		h.mu.Unlock()
		return fmt.Sprintf("%s token for task %s, valid %s", audience, claims.TaskID, time.Until(c.ExpiresAt).Round(time.Minute)), nil
	}
	return []*agentguard.Tool{
		{
			Name: "lookup_order", Description: "Look an order up by its ID.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"order":{"type":"string"}},"required":["order"]}`),
			Annotations: agentguard.Annotations{ReadOnly: true, Idempotent: true},
			Credentials: []credentials.Requirement{{Name: "orders", Provider: "local", Audience: "orders-api", Scopes: []string{"orders:read"}, TTL: 5 * time.Minute}},
			Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
				var a struct{ Order string }
				if err := json.Unmarshal(args, &a); err != nil {
					return nil, err
				}
				how, err := token(ctx, "orders", "orders-api", "orders:read")
				if err != nil {
					return nil, err
				}
				return &agentguard.Result{Output: map[string]any{"order": a.Order, "status": "delivered", "total": 250, "checked_with": how}}, nil
			},
		},
		{
			Name: "issue_refund", Description: "Refund an order.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"order":{"type":"string"},"amount":{"type":"integer"}},"required":["order","amount"]}`),
			Annotations: agentguard.Annotations{Destructive: true},
			Credentials: []credentials.Requirement{{Name: "payments", Provider: "local", Audience: "payments-api", Scopes: []string{"refunds:write"}, TTL: 5 * time.Minute}},
			Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
				var a struct {
					Order  string
					Amount int
				}
				if err := json.Unmarshal(args, &a); err != nil {
					return nil, err
				}
				if _, err := token(ctx, "payments", "payments-api", "refunds:write"); err != nil {
					return nil, err
				}
				return &agentguard.Result{Output: fmt.Sprintf("refunded %d on %s", a.Amount, a.Order)}, nil
			},
		},
		{
			Name: "export_customers", Description: "Export every customer record.",
			Annotations: agentguard.Annotations{ReadOnly: true},
			Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
				return &agentguard.Result{Output: "every customer"}, nil
			},
		},
	}
}

// sawToken reports whether s holds a credential value a tool received.
func (h *Helpdesk) sawToken(s []byte) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.tokens {
		if strings.Contains(string(s), t) {
			return true
		}
	}
	return false
}

// auditLine prints each audit record of a tool call as one line.
type auditLine struct{ w io.Writer }

func (a auditLine) Write(_ context.Context, e audit.Event) error {
	if e.Kind != audit.KindToolCall {
		return nil
	}
	line := fmt.Sprintf("      audit: %s call=%s decision=%s", e.Tool, e.CallID, e.Decision)
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
		line += fmt.Sprintf(" credentials=%d", len(e.Leases))
	}
	_, err := fmt.Fprintln(a.w, line+" outcome="+e.Outcome)
	return err
}
