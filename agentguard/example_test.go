package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// Wrap a tool so that every call is identified, authorized by Cedar policy,
// and audited.
func ExampleGuard_Wrap() {
	policies := policy.MustParseSet("refunds.cedar", `
@id("refunds-up-to-100")
permit (principal, action == Action::"refund", resource)
when { context.args.amount <= 100 };
`)
	engine, _ := policy.NewCedarEngine(policies)
	rec := audittest.NewRecorder()
	g, _ := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/support"))),
		agentguard.WithPolicy(engine),
		agentguard.WithAudit(rec),
	)
	defer g.Close(context.Background())

	refund, _ := g.Wrap(&agentguard.Tool{
		Name: "refund",
		Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
			return &agentguard.Result{Output: "refunded " + string(args)}, nil
		},
	})

	res, err := refund(context.Background(), json.RawMessage(`{"amount": 40}`))
	fmt.Println(res.Output, err)

	_, err = refund(context.Background(), json.RawMessage(`{"amount": 4000}`))
	fmt.Println(errors.Is(err, agentguard.ErrDenied))
	fmt.Println(err)

	for _, e := range rec.Events() {
		fmt.Println(e.Kind, e.Tool, e.Decision, e.Policies, e.Outcome)
	}
	// Output:
	// refunded {"amount":40} <nil>
	// true
	// agentguard: call to tool "refund" denied at authorize: no policy permits this call
	// identity_change   [] ok
	// toolset_change refund allow [] ok
	// tool_call refund allow [refunds-up-to-100] ok
	// tool_call refund deny [] denied
}

// Unit-test an agent's tool use with a fake policy: no Cedar, no server.
// The rule table says what the test's policy allows; the recorders show
// what the agent asked and what was audited.
func Example_unitTestWithPolicytest() {
	engine := policytest.NewRules(
		policytest.Rule{ID: "read", Tool: "read_ticket"},
		policytest.Rule{ID: "no-external-mail", Effect: policytest.Deny, Tool: "send_email",
			Reason: "external mail is not allowed",
			When: func(r *policy.Request) bool {
				var a struct{ To string }
				_ = json.Unmarshal(r.Args, &a)
				return a.To != "team@example.com"
			}},
		policytest.Rule{ID: "mail", Tool: "send_email"},
	)
	rec := audittest.NewRecorder()
	g, _ := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/under-test"))),
		agentguard.WithPolicy(engine),
		agentguard.WithAudit(rec),
	)
	defer g.Close(context.Background())

	reg := g.NewRegistry("helpdesk")
	ok := func(context.Context, json.RawMessage) (*agentguard.Result, error) {
		return &agentguard.Result{Output: "ok"}, nil
	}
	_ = reg.Register(
		&agentguard.Tool{Name: "read_ticket", Handler: ok},
		&agentguard.Tool{Name: "send_email", Handler: ok},
		&agentguard.Tool{Name: "close_account", Handler: ok},
	)

	// The agent under test would make these calls.
	ctx := context.Background()
	_, err1 := reg.Call(ctx, agentguard.Call{Name: "read_ticket", Args: json.RawMessage(`{"id":"T-1"}`)})
	_, err2 := reg.Call(ctx, agentguard.Call{Name: "send_email", Args: json.RawMessage(`{"to":"team@example.com"}`)})
	_, err3 := reg.Call(ctx, agentguard.Call{Name: "send_email", Args: json.RawMessage(`{"to":"someone@elsewhere.example"}`)})
	fmt.Println(err1, err2)
	fmt.Println(err3)

	visible, _ := reg.List(ctx)
	for _, t := range visible {
		fmt.Println("visible:", t.Name)
	}
	fmt.Println("policy asked about", len(engine.Calls()), "calls; audit has", len(rec.Kind(audit.KindToolCall)), "call records")
	// Output:
	// <nil> <nil>
	// agentguard: call to tool "send_email" denied at authorize: external mail is not allowed (policies: no-external-mail)
	// visible: read_ticket
	// visible: send_email
	// policy asked about 3 calls; audit has 3 call records
}
