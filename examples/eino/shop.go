package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/components/tool/utils"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

// shopAPI stands for the shop's API: it accepts a call only with a task
// token from the local issuer, for its audience and the scope the call
// needs.
type shopAPI struct {
	verifier *local.Verifier
	out      io.Writer
	onToken  func(string)
}

// authorize checks the token the tool was given for scope, as the shop's
// API would, and prints what it saw (never the token).
func (s *shopAPI) authorize(ctx context.Context, scope string) error {
	cred, ok := credentials.FromContext(ctx, "shop-api")
	if !ok {
		return errors.New("no shop token")
	}
	token := cred.Secret.Reveal()
	if s.onToken != nil {
		s.onToken(token)
	}
	claims, err := s.verifier.Verify(ctx, token, "shop", scope)
	if err != nil {
		return fmt.Errorf("shop API: %w", err)
	}
	fmt.Fprintf(s.out, "  shop API: token for %s accepted (task %s, scope %s, lease %s)\n",
		claims.Subject, claims.TaskID, strings.Join(claims.Scopes, " "), cred.LeaseID)
	return nil
}

type orderArgs struct {
	Order string `json:"order" jsonschema:"description=the order ID"`
}

type refundArgs struct {
	Order  string `json:"order" jsonschema:"description=the order ID"`
	Amount int    `json:"amount" jsonschema:"description=the amount to refund"`
}

// shopTools are the agent's eino tools.
func shopTools(api *shopAPI) ([]tool.BaseTool, error) {
	lookup, err := utils.InferTool("lookup_order", "Look an order up.", func(ctx context.Context, a orderArgs) (string, error) {
		if err := api.authorize(ctx, "orders:read"); err != nil {
			return "", err
		}
		return fmt.Sprintf("order %s: shipped on 2 March, arriving Thursday", a.Order), nil
	})
	if err != nil {
		return nil, err
	}
	refund, err := utils.InferTool("refund", "Refund an amount on an order.", func(ctx context.Context, a refundArgs) (string, error) {
		if err := api.authorize(ctx, "refunds:write"); err != nil {
			return "", err
		}
		return fmt.Sprintf("refunded %d on order %s", a.Amount, a.Order), nil
	})
	if err != nil {
		return nil, err
	}
	closeAccount, err := utils.InferTool("close_account", "Close the customer's account.", func(context.Context, orderArgs) (string, error) {
		return "account closed", nil
	})
	if err != nil {
		return nil, err
	}
	return []tool.BaseTool{lookup, refund, closeAccount}, nil
}
