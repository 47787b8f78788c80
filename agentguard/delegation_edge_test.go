package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// reviewPolicies: the planner may delegate to the researcher; everybody may
// call "search", "read_customer" and "send_email", except that nobody may
// send e-mail once the task holds personal data, and only public or
// internal tasks may call "export" or be handed to the fetcher; only
// tasks for alice may "export_customer".
const reviewPolicies = `
@id("planner-delegates") permit(principal == Agent::"spiffe://example.org/agent/planner", action == Action::"delegate", resource) when { [Agent::"spiffe://example.org/agent/researcher", Agent::"spiffe://example.org/agent/fetcher"].contains(resource) };
@id("researcher-delegates") permit(principal == Agent::"spiffe://example.org/agent/researcher", action == Action::"delegate", resource == Agent::"spiffe://example.org/agent/fetcher");
@id("delegate-low-only") forbid(principal, action == Action::"delegate", resource == Agent::"spiffe://example.org/agent/fetcher") when { context.task.sensitivity > 1 };
@id("tools") permit(principal, action in [Action::"search", Action::"read_customer", Action::"send_email", Action::"export"], resource);
@id("no-email-after-pii") forbid(principal, action == Action::"send_email", resource) when { context.task.taint.contains("pii") };
@id("export-low-only") forbid(principal, action == Action::"export", resource) when { context.task.sensitivity > 1 };
@id("alice-only") forbid(principal, action == Action::"export_customer", resource) when { context.delegation.on_behalf_of != "alice" };
@id("export-customer") permit(principal, action == Action::"export_customer", resource);
`

// A sub-agent that calls tools on the delegated context without starting a
// task gets an implicit task that inherits neither the sensitivity nor the
// user of the delegating task: the Confidential task's sub-agent may
// "export", which the delegating task itself may not.
func TestSubAgentImplicitTaskInherits(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", reviewPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", reviewPolicies)
	ctx := context.Background()

	pctx, _, err := planner.guard.StartTask(ctx, agentguard.TaskSpec{OnBehalfOf: "alice", Sensitivity: agentguard.Confidential})
	if err != nil {
		t.Fatal(err)
	}
	if err := call(pctx, planner.guard, "export"); !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("planner export on a confidential task: err = %v, want denied", err)
	}
	dctx, err := planner.guard.Delegate(pctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	// With StartTask the sub-agent's task is confidential: denied (correct).
	sctx, _, err := researcher.guard.StartTask(dctx, agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if err := call(sctx, researcher.guard, "export"); !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("sub-agent export in its own task: err = %v, want denied", err)
	}
	// Without StartTask: the implicit task is Public and serves nobody.
	if err := call(dctx, researcher.guard, "export"); !errors.Is(err, agentguard.ErrDenied) {
		last, _ := researcher.audit.Last()
		t.Errorf("sub-agent export on the delegated context without a task was allowed (task %q, on behalf of %q): "+
			"the implicit task does not inherit the delegating task's sensitivity", last.Task, last.OnBehalfOf)
	}
	// Likewise a further handoff decided without a task sees sensitivity 0.
	if _, err := researcher.guard.Delegate(dctx, mustSPIFFE(t, "spiffe://example.org/agent/fetcher")); !errors.Is(err, agentguard.ErrDenied) {
		t.Errorf("sub-agent re-delegated a confidential task without a task of its own: err = %v, want denied", err)
	}
}

// The sub-agent's task inherits OnBehalfOf only when its spec leaves it
// empty: a sub-agent may claim to serve another user than the task it was
// handed serves.
func TestSubAgentTaskCannotSwitchUser(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", reviewPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", reviewPolicies)
	ctx := context.Background()

	pctx, _, err := planner.guard.StartTask(ctx, agentguard.TaskSpec{OnBehalfOf: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if err := call(pctx, planner.guard, "export_customer"); !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("planner export for bob: err = %v, want denied", err)
	}
	dctx, err := planner.guard.Delegate(pctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	sctx, stask, err := researcher.guard.StartTask(dctx, agentguard.TaskSpec{OnBehalfOf: "alice"})
	if err != nil {
		// Refusing the spec is an acceptable fix.
		return
	}
	if got := stask.Spec().OnBehalfOf; got != "bob" {
		t.Errorf("sub-agent task on behalf of %q, want the delegating task's user %q", got, "bob")
	}
	if err := call(sctx, researcher.guard, "export_customer"); err == nil {
		t.Errorf("sub-agent of bob's task exported as alice, which the planner itself may not")
	}
}

// The delegating task's taint does not reach the sub-agent's task, and the
// delegating agent's attenuation check is made against the sub-agent's
// (clean) task: after the planner read personal data it may not send
// e-mail, but its sub-agent may, on the planner's behalf.
func TestTaintFollowsDelegation(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", reviewPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", reviewPolicies)
	ctx := context.Background()

	pctx, _, err := planner.guard.StartTask(ctx, agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	read := echoTool("read_customer")
	read.OutputLabels = []string{"pii"}
	if _, err := planner.guard.Invoke(pctx, read, agentguard.Call{Args: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := call(pctx, planner.guard, "send_email"); !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("planner send_email after pii: err = %v, want denied", err)
	}
	dctx, err := planner.guard.Delegate(pctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	sctx, _, err := researcher.guard.StartTask(dctx, agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if err := call(sctx, researcher.guard, "send_email"); !errors.Is(err, agentguard.ErrDenied) {
		t.Errorf("sub-agent sent e-mail for a task whose delegating task holds pii: err = %v, want denied", err)
	}
}

// WithMaxDelegationDepth(0) "forbids delegation altogether", but
// AcceptHandoff passes 0 to Handoff.Verify, where it means "no limit": the
// handoff is accepted and audited as allowed.
func TestAcceptHandoffZeroMaxDepth(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", reviewPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", reviewPolicies, agentguard.WithMaxDelegationDepth(0))
	ctx := context.Background()

	h, err := planner.guard.Handoff(ctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := researcher.guard.AcceptHandoff(ctx, h); err == nil {
		acc := researcher.audit.Kind(audit.KindHandoffAccept)
		t.Errorf("handoff accepted by a guard with WithMaxDelegationDepth(0); audit = %+v", acc)
	}
}

// A panic in the identity source during AcceptHandoff escapes the guard
// (identify runs before the deferred recover), instead of being a denial
// that is audited, as the README promises for every component.
func TestAcceptHandoffPanicInIdentitySourceAudited(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", reviewPolicies)
	rec := devAgent(t, iss, "/agent/researcher", reviewPolicies) // for the audit recorder type only
	boom := identity.SourceFunc(func(context.Context) (identity.Identity, error) { panic("identity source exploded") })
	g, err := agentguard.New(agentguard.WithIdentity(boom), agentguard.WithPolicy(mustEngine(t, reviewPolicies)),
		agentguard.WithAudit(rec.audit), agentguard.WithTrustBundles(iss))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	h, err := planner.guard.Handoff(context.Background(), rec.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	var panicked any
	func() {
		defer func() { panicked = recover() }()
		_, err = g.AcceptHandoff(context.Background(), h)
	}()
	if panicked != nil {
		t.Fatalf("AcceptHandoff panicked: %v (want a denial)", panicked)
	}
	if !errors.Is(err, agentguard.ErrDenied) && !errors.Is(err, agentguard.ErrDelegation) && !errors.Is(err, agentguard.ErrInternal) {
		t.Errorf("err = %v, want a denial", err)
	}
	if len(rec.audit.Kind(audit.KindHandoffAccept)) != 1 {
		t.Errorf("refusal not audited")
	}
}

// Pins: a nil handoff is refused, not a panic, and the refusal is audited.
func TestAcceptNilHandoff(t *testing.T) {
	iss := newIssuer(t, "example.org")
	researcher := devAgent(t, iss, "/agent/researcher", reviewPolicies)
	if _, err := researcher.guard.AcceptHandoff(context.Background(), nil); !errors.Is(err, agentguard.ErrDelegation) {
		t.Errorf("nil handoff: err = %v, want ErrDelegation", err)
	}
	if acc := researcher.audit.Kind(audit.KindHandoffAccept); len(acc) != 1 || acc[0].Decision != audit.Deny {
		t.Errorf("nil handoff audit = %+v", acc)
	}
}

// Pins: a handoff addressed to the researcher is useless to the fetcher
// (replay to another agent), and the delegated context of one agent is
// refused to another agent and to the delegating agent itself.
func TestHandoffNotReplayableToAnotherAgent(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", reviewPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", reviewPolicies)
	fetcher := devAgent(t, iss, "/agent/fetcher", `@id("all") permit(principal, action, resource);`)
	ctx := context.Background()
	h, err := planner.guard.Handoff(ctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fetcher.guard.AcceptHandoff(ctx, h); !errors.Is(err, agentguard.ErrDelegation) {
		t.Errorf("handoff to the researcher accepted by the fetcher: err = %v", err)
	}
	if acc := fetcher.audit.Kind(audit.KindHandoffAccept); len(acc) != 1 || acc[0].Decision != audit.Deny {
		t.Errorf("refusal audit = %+v", acc)
	}
	rctx, err := researcher.guard.AcceptHandoff(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	for name, g := range map[string]*agentguard.Guard{"fetcher": fetcher.guard, "planner": planner.guard} {
		if err := call(rctx, g, "search"); !errors.Is(err, agentguard.ErrDelegation) {
			t.Errorf("%s used the researcher's delegated context: err = %v", name, err)
		}
	}
}

func mustEngine(t *testing.T, policies string) *policy.CedarEngine {
	t.Helper()
	eng, err := policy.NewCedarEngine(policy.MustParseSet("review.cedar", policies))
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func mustSPIFFE(t *testing.T, s string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A handoff hop is an ordinary JWT-SVID addressed to the next agent's
// SPIFFE ID, with nothing marking it as a handoff: a JWT-SVID the planner
// minted for any other purpose with the researcher as audience (ordinary
// service-to-service authentication) is accepted as a handoff from the
// planner, so the researcher can claim a delegation it was never given.
func TestOrdinaryJWTSVIDNotAHandoff(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", reviewPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", reviewPolicies)
	ctx := context.Background()
	// The planner authenticates an API request to the researcher's service.
	auth, err := planner.agent.JWTSVID(ctx, researcher.agent.ID().String())
	if err != nil {
		t.Fatal(err)
	}
	h, err := identity.ParseHandoff(auth.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := researcher.guard.AcceptHandoff(ctx, h); err == nil {
		t.Errorf("a JWT-SVID minted for request authentication was accepted as a handoff from the planner")
	}
}
