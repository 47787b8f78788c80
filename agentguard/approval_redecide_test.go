package agentguard_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/policy"
)

// TestApprovalKindAddedAtRedecideDenies: the guard decides again after an
// approval (the wait may be long; a reload may swap the set). Here the
// policies in force when the call runs require @approval("two-person");
// only a "manager" approval was asked for, so the call is denied.
func TestApprovalKindAddedAtRedecideDenies(t *testing.T) {
	e := mustCedar(t, policy.MustParseSet("v1.cedar", `
@id("refund") @approval("manager") permit(principal, action == Action::"refund", resource);
`))
	v2 := policy.MustParseSet("v2.cedar", `
@id("refund") @approval("two-person") permit(principal, action == Action::"refund", resource);
`)
	var kinds []string
	env := newRolloutEnv(t, e, agentguard.WithApprover(agentguard.ApproverFunc(
		func(_ context.Context, r *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			kinds = append(kinds, r.Kind)
			if len(kinds) == 1 {
				// A reload lands while the manager is deciding.
				if _, err := e.Swap(v2); err != nil {
					t.Error(err)
				}
			}
			return r.Grant("bob"), nil
		})))
	var runs atomic.Int64
	_, err := env.Guard.Invoke(context.Background(), counted("refund", &runs), agentguard.Call{Args: json.RawMessage(`{}`)})
	if err == nil && runs.Load() == 1 {
		t.Fatalf("refund ran with approvals %v under a set (%s) that requires a two-person approval", kinds, v2.Digest())
	}
}
