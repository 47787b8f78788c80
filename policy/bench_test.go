package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/identity"
)

// tenantPolicies returns n policies (n a multiple of 5) of n/5 tenants: each
// tenant's agent group owns five permits and forbids over its own tools.
func tenantPolicies(n int) string {
	var b strings.Builder
	for k := range n / 5 {
		fmt.Fprintf(&b, `
@id("t%[1]d-read")
permit (principal in AgentGroup::"tenant-%[1]d", action == Action::"t%[1]d_read", resource in Toolset::"t%[1]d");
@id("t%[1]d-pay")
permit (principal in AgentGroup::"tenant-%[1]d", action == Action::"t%[1]d_pay", resource in Toolset::"t%[1]d")
when { context.args.currency == "EUR" && context.args.amount <= 1000 };
@id("t%[1]d-pay-limit") @reason("payments over %[2]d need a human")
forbid (principal, action == Action::"t%[1]d_pay", resource in Toolset::"t%[1]d")
when { context.args.amount > %[2]d };
@id("t%[1]d-taint") @reason("the task has read untrusted data")
forbid (principal in AgentGroup::"tenant-%[1]d", action in [Action::"t%[1]d_pay", Action::"t%[1]d_send"], resource)
when { context.task.taint.contains("untrusted") };
@id("t%[1]d-sensitive") @reason("restricted tasks need clearance")
forbid (principal in AgentGroup::"tenant-%[1]d", action, resource in Toolset::"t%[1]d")
when { context.task.sensitivity >= 3 && !context.task.labels.contains("cleared") };
`, k, 500+k%7*100)
	}
	return b.String()
}

// tenantGroups puts tenant k's agent in its group.
func tenantGroups(k int) CedarOption {
	return WithAgentGroups(map[string][]string{
		fmt.Sprintf("spiffe://example.org/tenant-%d/agent", k): {fmt.Sprintf("tenant-%d", k)},
	})
}

// tenantRequest is a payment by tenant k's agent that t<k>-pay allows.
func tenantRequest(k int) *Request {
	return &Request{
		Agent: identity.MustParse(fmt.Sprintf("spiffe://example.org/tenant-%d/agent", k)),
		Tool: Tool{
			Name:    fmt.Sprintf("t%d_pay", k),
			Toolset: fmt.Sprintf("t%d", k),
			Risk:    RiskHigh,
			Labels:  []string{"payments"},
		},
		Args: json.RawMessage(`{"amount":250,"currency":"EUR"}`),
		Task: Task{
			ID:          "task-1",
			Purpose:     "pay an invoice",
			Sensitivity: Internal,
			Labels:      []string{"finance"},
			Calls:       3,
			ToolsUsed:   []string{fmt.Sprintf("t%d_read", k)},
			Taint:       []string{"pii"},
		},
		CallID: "call-1",
		Time:   time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
	}
}

func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			set := MustParseSet("tenants.cedar", tenantPolicies(n))
			k := n / 10 // a tenant in the middle
			for _, naive := range []bool{false, true} {
				name := "indexed"
				if naive {
					name = "naive"
				}
				b.Run(name, func(b *testing.B) {
					e, err := NewCedarEngine(set, tenantGroups(k))
					if err != nil {
						b.Fatal(err)
					}
					e.naive = naive
					ctx := context.Background()
					req := tenantRequest(k)
					d, err := e.Decide(ctx, req)
					if want := fmt.Sprintf("t%d-pay", k); err != nil || !d.Allowed || !slices.Equal(d.Policies, []string{want}) {
						b.Fatalf("Decide = %+v, %v; want allowed by %s", d, err, want)
					}
					b.ReportAllocs()
					for b.Loop() {
						if _, err := e.Decide(ctx, req); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
