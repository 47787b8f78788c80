package agentguard_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// Record a tool's arguments in its audit records, with the card number
// and every item's token redacted. Other tools' records hold only the
// digest of their arguments.
func ExampleArgsAudit() {
	rec := audittest.NewRecorder()
	g, _ := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/shop"))),
		agentguard.WithPolicy(policytest.AllowAll()),
		agentguard.WithAudit(rec),
	)
	defer g.Close(context.Background())

	pay := &agentguard.Tool{
		Name: "pay",
		Audit: agentguard.ArgsAudit{
			Record: true,
			Redact: []string{"/card/number", "/items/*/token"},
		},
		Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
			return &agentguard.Result{Output: "paid"}, nil
		},
	}
	_, err := g.Invoke(context.Background(), pay, agentguard.Call{Args: json.RawMessage(`{
		"amount": 40,
		"card": {"holder": "Ada", "number": "4111111111111111"},
		"items": [{"sku": "A1", "token": "tok_1"}]
	}`)})
	fmt.Println(err)
	for _, e := range rec.Kind(audit.KindToolCall) {
		fmt.Println(string(e.Args))
	}
	// Output:
	// <nil>
	// {"amount":40,"card":{"holder":"Ada","number":"[REDACTED]"},"items":[{"sku":"A1","token":"[REDACTED]"}]}
}
