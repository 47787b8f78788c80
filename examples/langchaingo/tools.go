package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

// lookupOrder is a langchaingo tool that reads an order from the orders
// API with the credential leased to the task.
type lookupOrder struct {
	verifier *local.Verifier
	seen     func(token string)
}

func (lookupOrder) Name() string { return "lookup_order" }
func (lookupOrder) Description() string {
	return "Looks up an order. Input: the order ID, such as O-1001."
}

func (t lookupOrder) Call(ctx context.Context, input string) (string, error) {
	cred, ok := credentials.FromContext(ctx, "orders")
	if !ok {
		return "", errors.New("lookup_order: no credential for the orders API")
	}
	token := cred.Secret.Reveal()
	t.seen(token)
	// The orders API's side: it accepts only a token for itself, with the
	// scope it needs, from a task that has not ended.
	claims, err := t.verifier.Verify(ctx, token, "orders-api", "orders:read")
	if err != nil {
		return "", fmt.Errorf("lookup_order: orders API: %w", err)
	}
	return fmt.Sprintf("order %s: headphones, delivered, paid 120.00 EUR (the orders API accepted a token for task %s, scope orders:read)",
		input, claims.TaskID), nil
}

// refund is a langchaingo tool that refunds an order.
type refund struct{}

func (refund) Name() string        { return "refund" }
func (refund) Description() string { return "Refunds an order in full. Input: the order ID." }
func (refund) Call(_ context.Context, input string) (string, error) {
	return "refunded order " + input, nil
}

// deleteCustomer is a langchaingo tool that no policy permits.
type deleteCustomer struct{}

func (deleteCustomer) Name() string { return "delete_customer" }
func (deleteCustomer) Description() string {
	return "Deletes a customer's account. Input: the customer ID."
}
func (deleteCustomer) Call(_ context.Context, input string) (string, error) {
	return "deleted customer " + input, nil
}
