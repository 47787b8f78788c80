package main

import (
	"context"
	"fmt"
	"io"

	"github.com/firebase/genkit/go/ai"
	"github.com/firebase/genkit/go/genkit"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

// supportTools are the assistant's genkit tools.
type supportTools struct {
	lookup, refund, closeAccount ai.Tool
}

func (s supportTools) all() []ai.Tool { return []ai.Tool{s.lookup, s.refund, s.closeAccount} }

type orderInput struct {
	Order string `json:"order" jsonschema:"description=The order ID, such as O-1001."`
}

type refundInput struct {
	Order  string `json:"order" jsonschema:"description=The order ID."`
	Amount int    `json:"amount" jsonschema:"description=The amount to refund, in euros."`
}

type accountInput struct {
	Account string `json:"account" jsonschema:"description=The customer's account ID."`
}

// defineTools defines the tools in g. Each one that calls a service uses
// the token the guard leased it for this call's task (credentials.FromContext),
// as the service would, by verifying it; it prints what the token is for,
// never its value.
func defineTools(g *genkit.Genkit, w io.Writer, verifier *local.Verifier) supportTools {
	use := func(ctx context.Context, name, audience, scope string) error {
		cred, ok := credentials.FromContext(ctx, name)
		if !ok {
			return fmt.Errorf("no %s credential", name)
		}
		if _, err := verifier.Verify(ctx, cred.Secret.Reveal(), audience, scope); err != nil {
			return err
		}
		fmt.Fprintf(w, "  tool   presents its %s token (%s), leased to task %s; %s accepts it\n", audience, scope, cred.TaskID, audience)
		return nil
	}
	return supportTools{
		lookup: genkit.DefineTool(g, "lookup_order", "Looks an order up: its status and total.",
			func(tc *ai.ToolContext, in orderInput) (map[string]any, error) {
				if err := use(tc, "orders", "orders-api", "orders:read"); err != nil {
					return nil, err
				}
				return map[string]any{"order": in.Order, "status": "delivered", "total": 250}, nil
			}),
		refund: genkit.DefineTool(g, "issue_refund", "Refunds an order, in part or in full.",
			func(tc *ai.ToolContext, in refundInput) (map[string]any, error) {
				if err := use(tc, "payments", "payments-api", "refunds:write"); err != nil {
					return nil, err
				}
				return map[string]any{"order": in.Order, "refunded": in.Amount}, nil
			}),
		closeAccount: genkit.DefineTool(g, "close_account", "Closes a customer's account for good.",
			func(_ *ai.ToolContext, in accountInput) (map[string]any, error) {
				fmt.Fprintf(w, "  tool   closed account %s\n", in.Account)
				return map[string]any{"closed": in.Account}, nil
			}),
	}
}
