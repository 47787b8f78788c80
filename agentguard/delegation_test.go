package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// delegationPolicies: the planner may hand tasks to the researcher, the
// researcher or the fetcher, the researcher to the fetcher or the
// archivist; the researcher may call search and refund, the planner only
// search; the fetcher may call search. "depth" is allowed to the planner at
// the root and to its direct delegatees.
const delegationPolicies = `
@id("planner-delegates") permit(principal == Agent::"spiffe://example.org/agent/planner", action == Action::"delegate", resource) when { [Agent::"spiffe://example.org/agent/researcher", Agent::"spiffe://example.org/agent/fetcher"].contains(resource) };
@id("researcher-delegates") permit(principal == Agent::"spiffe://example.org/agent/researcher", action == Action::"delegate", resource) when { [Agent::"spiffe://example.org/agent/fetcher", Agent::"spiffe://example.org/agent/archivist"].contains(resource) };
@id("search") permit(principal, action == Action::"search", resource);
@id("researcher-refund") permit(principal == Agent::"spiffe://example.org/agent/researcher", action == Action::"refund", resource);
@id("depth-visible") permit(principal, action == Action::"depth", resource) when { (context.delegation.depth == 1 && context.delegation.chain.contains(Agent::"spiffe://example.org/agent/planner")) || (principal == Agent::"spiffe://example.org/agent/planner" && context.delegation.depth == 0) };
`

type agentEnv struct {
	agent *identity.DevAgent
	guard *agentguard.Guard
	audit *audittest.Recorder
}

func devAgent(t *testing.T, iss *identity.DevIssuer, path string, policies string, opts ...agentguard.Option) *agentEnv {
	t.Helper()
	a, err := iss.Agent(path)
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.ParseSet("test.cedar", policies)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.NewCedarEngine(set)
	if err != nil {
		t.Fatal(err)
	}
	rec := audittest.NewRecorder()
	g, err := agentguard.New(append([]agentguard.Option{agentguard.WithIdentity(a), agentguard.WithPolicy(eng), agentguard.WithAudit(rec)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	return &agentEnv{agent: a, guard: g, audit: rec}
}

func echoTool(name string) *agentguard.Tool {
	return &agentguard.Tool{
		Name:        name,
		Description: "echo " + name,
		Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
			return &agentguard.Result{Output: args}, nil
		},
	}
}

func newIssuer(t *testing.T, td string, opts ...identity.DevOption) *identity.DevIssuer {
	t.Helper()
	iss, err := identity.NewDevIssuer(td, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func call(ctx context.Context, g *agentguard.Guard, tool string) error {
	_, err := g.Invoke(ctx, echoTool(tool), agentguard.Call{Args: json.RawMessage(`{}`)})
	return err
}

func TestDelegateInProcess(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
	ctx := context.Background()

	pctx, ptask, err := planner.guard.StartTask(ctx, agentguard.TaskSpec{ID: "plan-1", OnBehalfOf: "alice", Sensitivity: agentguard.Confidential})
	if err != nil {
		t.Fatal(err)
	}
	dctx, err := planner.guard.Delegate(pctx, researcher.agent.ID())
	if err != nil {
		t.Fatalf("Delegate: %v", err)
	}
	ev := planner.audit.Kind(audit.KindDelegate)
	if len(ev) != 1 || ev[0].Decision != audit.Allow || ev[0].Agent != "spiffe://example.org/agent/planner" ||
		ev[0].Delegatee != "spiffe://example.org/agent/researcher" || ev[0].Task != "plan-1" || ev[0].OnBehalfOf != "alice" ||
		strings.Join(ev[0].Policies, ",") != "planner-delegates" {
		t.Fatalf("delegate events = %+v", ev)
	}

	sctx, stask, err := researcher.guard.StartTask(dctx, agentguard.TaskSpec{ID: "research-1"})
	if err != nil {
		t.Fatalf("sub-agent StartTask: %v", err)
	}
	if spec := stask.Spec(); spec.OnBehalfOf != "alice" || spec.Sensitivity != agentguard.Confidential {
		t.Errorf("sub-task spec = %+v, want on behalf of alice, confidential", spec)
	}
	// Policy sees the chain.
	if err := call(sctx, researcher.guard, "depth"); err != nil {
		t.Fatalf("depth call: %v", err)
	}
	last, _ := researcher.audit.Last()
	if last.Agent != "spiffe://example.org/agent/researcher" || strings.Join(last.Chain, ",") != "spiffe://example.org/agent/planner" || last.Task != "research-1" {
		t.Errorf("sub-agent call event = %+v", last)
	}
	// The planner's own calls are not delegated.
	if err := call(pctx, planner.guard, "depth"); err != nil {
		t.Errorf("planner depth call: %v", err)
	}
	if last, _ := planner.audit.Last(); last.Agent != "spiffe://example.org/agent/planner" || len(last.Chain) != 0 {
		t.Errorf("planner call event = %+v, want no chain", last)
	}
	// Ending the delegating task ends the sub-agent's.
	if err := ptask.End(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stask.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("sub-agent task not ended with the delegating task")
	}
	if err := call(sctx, researcher.guard, "search"); !errors.Is(err, agentguard.ErrTaskEnded) {
		t.Errorf("call after the delegating task ended: err = %v, want ErrTaskEnded", err)
	}
}

func TestDelegateRefusedByPolicy(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
	fetcher, _ := iss.ID("/agent/archivist")
	ctx := context.Background()
	_, err := planner.guard.Delegate(ctx, fetcher)
	var de *agentguard.DelegationError
	if !errors.As(err, &de) || !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("Delegate to fetcher: err = %v, want a DelegationError", err)
	}
	if de.Step != agentguard.StepAuthorize || de.To != fetcher.String() || !strings.Contains(de.Reason, "no policy permits this handoff") {
		t.Errorf("DelegationError = %+v", de)
	}
	ev := planner.audit.Kind(audit.KindDelegate)
	if len(ev) != 1 || ev[0].Decision != audit.Deny || ev[0].Outcome != audit.OutcomeDenied || ev[0].Step != agentguard.StepAuthorize {
		t.Errorf("delegate events = %+v", ev)
	}
}

func TestDelegateAttenuation(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
	ctx := context.Background()

	// Alone, the researcher may refund.
	if err := call(ctx, researcher.guard, "refund"); err != nil {
		t.Fatalf("researcher alone: refund: %v", err)
	}
	// Working for the planner, who may not refund, it may not.
	dctx, err := planner.guard.Delegate(ctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	err = call(dctx, researcher.guard, "refund")
	var de *agentguard.DenyError
	if !errors.As(err, &de) || de.Step != agentguard.StepAuthorize || !strings.Contains(de.Reason, "delegating agent spiffe://example.org/agent/planner") {
		t.Fatalf("delegated refund: err = %v, want denied for the planner", err)
	}
	// What both may do passes.
	if err := call(dctx, researcher.guard, "search"); err != nil {
		t.Errorf("delegated search: %v", err)
	}
}

func TestDelegationDepthAndCycles(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies, agentguard.WithMaxDelegationDepth(1))
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies, agentguard.WithMaxDelegationDepth(1))
	fetcherID, _ := iss.ID("/agent/fetcher")
	ctx := context.Background()
	dctx, err := planner.guard.Delegate(ctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	// Policy would allow researcher -> fetcher, the depth limit does not.
	_, err = researcher.guard.Delegate(dctx, fetcherID)
	var de *agentguard.DelegationError
	if !errors.As(err, &de) || de.Step != agentguard.StepDelegate || !errors.Is(err, agentguard.ErrDelegation) || !strings.Contains(err.Error(), "limit is 1") {
		t.Fatalf("second hop: err = %v, want the depth limit", err)
	}
	// Handing the task back up the chain is a cycle.
	_ = fetcherID
	_, err = researcher.guard.Delegate(dctx, planner.agent.ID())
	if !errors.Is(err, agentguard.ErrDelegation) || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("hand back to planner: err = %v, want a cycle refusal", err)
	}
	// Zero forbids delegation.
	none := devAgent(t, iss, "/agent/planner", delegationPolicies, agentguard.WithMaxDelegationDepth(0))
	if _, err := none.guard.Delegate(ctx, researcher.agent.ID()); !errors.Is(err, agentguard.ErrDelegation) {
		t.Errorf("depth 0: err = %v, want ErrDelegation", err)
	}
	// A guard with a lower limit refuses calls from a deeper chain.
	deep := devAgent(t, iss, "/agent/researcher", delegationPolicies, agentguard.WithMaxDelegationDepth(0))
	if err := call(dctx, deep.guard, "search"); !errors.Is(err, agentguard.ErrDelegation) {
		t.Errorf("call at depth 1 with limit 0: err = %v, want ErrDelegation", err)
	}
}

func TestDelegatedContextIsForTheDelegateeOnly(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
	fetcher := devAgent(t, iss, "/agent/fetcher", delegationPolicies)
	dctx, err := planner.guard.Delegate(context.Background(), researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	err = call(dctx, fetcher.guard, "search")
	var de *agentguard.DenyError
	if !errors.As(err, &de) || de.Step != agentguard.StepIdentify || !errors.Is(err, agentguard.ErrDelegation) {
		t.Fatalf("fetcher using the researcher's context: err = %v", err)
	}
	if last, _ := fetcher.audit.Last(); last.Decision != audit.Deny || last.Agent != "spiffe://example.org/agent/fetcher" {
		t.Errorf("audit = %+v", last)
	}
	// The planner's task does not leak into the sub-agent's context.
	pctx, _, err := planner.guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	dctx, err = planner.guard.Delegate(pctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := agentguard.TaskFromContext(dctx); ok {
		t.Error("delegated context still carries the planner's task")
	}
	if err := call(dctx, researcher.guard, "search"); err != nil {
		t.Errorf("researcher call in delegated context without own task: %v", err)
	}
}

func TestHandoffAcrossProcesses(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
	fetcher := devAgent(t, iss, "/agent/fetcher", delegationPolicies)
	ctx := context.Background()

	h, err := planner.guard.Handoff(ctx, researcher.agent.ID())
	if err != nil {
		t.Fatalf("Handoff: %v", err)
	}
	wire := h.Marshal()
	// The header value travels; the receiver parses and verifies it.
	got, err := identity.ParseHandoff(wire)
	if err != nil {
		t.Fatal(err)
	}
	rctx, err := researcher.guard.AcceptHandoff(ctx, got)
	if err != nil {
		t.Fatalf("AcceptHandoff: %v", err)
	}
	if err := call(rctx, researcher.guard, "depth"); err != nil {
		t.Errorf("call after accepted handoff: %v", err)
	}
	if err := call(rctx, researcher.guard, "refund"); !errors.Is(err, agentguard.ErrDenied) {
		t.Errorf("attenuation across processes: refund err = %v, want denied", err)
	}
	acc := researcher.audit.Kind(audit.KindHandoffAccept)
	if len(acc) != 1 || acc[0].Decision != audit.Allow || acc[0].Agent != planner.agent.ID().String() || acc[0].Delegatee != researcher.agent.ID().String() {
		t.Errorf("accept events = %+v", acc)
	}

	// The researcher hands on to the fetcher in a third process: two hops.
	h2, err := researcher.guard.Handoff(rctx, fetcher.agent.ID())
	if err != nil {
		t.Fatalf("second Handoff: %v", err)
	}
	if h2.Hops() != 2 {
		t.Errorf("Hops = %d, want 2", h2.Hops())
	}
	fctx, err := fetcher.guard.AcceptHandoff(ctx, h2)
	if err != nil {
		t.Fatalf("fetcher AcceptHandoff: %v", err)
	}
	if err := call(fctx, fetcher.guard, "search"); err != nil {
		t.Fatal(err)
	}
	last, _ := fetcher.audit.Last()
	if strings.Join(last.Chain, ",") != "spiffe://example.org/agent/planner,spiffe://example.org/agent/researcher" {
		t.Errorf("fetcher chain = %q", last.Chain)
	}

	// No token reaches an audit record, error or log value.
	for _, rec := range []*audittest.Recorder{planner.audit, researcher.audit, fetcher.audit} {
		for _, e := range rec.Events() {
			b, _ := json.Marshal(e)
			for _, tok := range strings.Split(h2.Marshal(), ",") {
				if strings.Contains(string(b), tok) || strings.Contains(fmt.Sprint(e), tok) {
					t.Fatalf("token in audit event %s", b)
				}
			}
		}
	}
	if s := fmt.Sprintf("%v %+v %#v %s", h2, h2, h2, h2); strings.Contains(s, ".") {
		t.Errorf("handoff formats as %q", s)
	}
}

func TestAcceptHandoffRefusals(t *testing.T) {
	var offset atomic.Int64
	iss := newIssuer(t, "example.org", identity.WithDevClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }))
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
	fetcher := devAgent(t, iss, "/agent/fetcher", delegationPolicies)
	archivist := devAgent(t, iss, "/agent/archivist", delegationPolicies)
	ctx := context.Background()

	// Minted by the right issuer an hour ago: expired by now.
	offset.Store(int64(-time.Hour))
	expired, err := identity.NewHandoff(ctx, planner.agent, nil, researcher.agent.ID())
	offset.Store(0)
	if err != nil {
		t.Fatal(err)
	}
	// Another trust domain, whose bundle the researcher does not have.
	other := newIssuer(t, "other.org")
	otherPlanner, _ := other.Agent("/agent/planner")
	foreign, err := identity.NewHandoff(ctx, otherPlanner, nil, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	// Same trust domain name, another issuer's keys: forged.
	forger := newIssuer(t, "example.org")
	forgedPlanner, _ := forger.Agent("/agent/planner")
	forged, err := identity.NewHandoff(ctx, forgedPlanner, nil, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	toFetcher, err := planner.guard.Handoff(ctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	// The planner may not hand tasks to the archivist.
	notPermitted, err := identity.NewHandoff(ctx, planner.agent, nil, archivist.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	tampered, _ := identity.ParseHandoff(tamper(toFetcher.Marshal()))

	tests := []struct {
		name  string
		guard *agentEnv
		h     *identity.Handoff
		want  string
		step  string
	}{
		{name: "wrong audience", guard: fetcher, h: toFetcher, want: "audience", step: agentguard.StepDelegate},
		{name: "expired", guard: researcher, h: expired, want: "expired", step: agentguard.StepDelegate},
		{name: "foreign trust domain", guard: researcher, h: foreign, want: `"other.org"`, step: agentguard.StepDelegate},
		{name: "forged signature", guard: researcher, h: forged, want: "JWT authority", step: agentguard.StepDelegate},
		{name: "tampered payload", guard: researcher, h: tampered, want: "hop 0", step: agentguard.StepDelegate},
		{name: "no handoff", guard: researcher, h: nil, want: "no handoff", step: agentguard.StepDelegate},
		{name: "policy refuses the delegating agent", guard: archivist, h: notPermitted, want: "no policy permits", step: agentguard.StepAuthorize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := len(tc.guard.audit.Kind(audit.KindHandoffAccept))
			rctx, err := tc.guard.guard.AcceptHandoff(ctx, tc.h)
			var de *agentguard.DelegationError
			if !errors.As(err, &de) || !errors.Is(err, agentguard.ErrDenied) {
				t.Fatalf("err = %v, want a DelegationError", err)
			}
			if de.Step != tc.step || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v (step %s), want %q at %s", err, de.Step, tc.want, tc.step)
			}
			if rctx != ctx {
				t.Error("refused handoff returned a new context")
			}
			ev := tc.guard.audit.Kind(audit.KindHandoffAccept)
			if len(ev) != n+1 || ev[n].Decision != audit.Deny {
				t.Errorf("accept events = %+v, want one more denial", ev[n:])
			}
			for _, tok := range strings.Split(tc.h.Marshal(), ",") {
				if tok != "" && strings.Contains(err.Error(), tok) {
					t.Error("error contains the token")
				}
			}
		})
	}
}

// tamper changes the first token's payload, keeping its signature.
func tamper(h string) string {
	tok := strings.Split(h, ",")[0]
	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	if p[5] == 'A' {
		p[5] = 'B'
	} else {
		p[5] = 'A'
	}
	parts[1] = string(p)
	return strings.Join(parts, ".")
}

func TestHandoffNeedsJWTIssuer(t *testing.T) {
	set := policy.MustParseSet("p.cedar", `@id("d") permit(principal, action == Action::"delegate", resource);`)
	eng, _ := policy.NewCedarEngine(set)
	rec := audittest.NewRecorder()
	g, err := agentguard.New(agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/static"))),
		agentguard.WithPolicy(eng), agentguard.WithAudit(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	to := spiffeid.RequireFromString("spiffe://example.org/agent/sub")
	if _, err := g.Handoff(context.Background(), to); !errors.Is(err, agentguard.ErrDelegation) || !strings.Contains(err.Error(), "JWT-SVID") {
		t.Errorf("Handoff from a static identity: err = %v", err)
	}
	// In-process delegation works without JWT-SVIDs...
	dctx, err := g.Delegate(context.Background(), to)
	if err != nil {
		t.Fatalf("Delegate from a static identity: %v", err)
	}
	// ...but the chain cannot then be carried to another process.
	iss := newIssuer(t, "example.org")
	sub := devAgent(t, iss, "/agent/sub", `@id("d") permit(principal, action == Action::"delegate", resource);`)
	if _, err := sub.guard.Handoff(dctx, spiffeid.RequireFromString("spiffe://example.org/agent/next")); !errors.Is(err, agentguard.ErrDelegation) || !strings.Contains(err.Error(), "chain cannot be proved") {
		t.Errorf("onward Handoff of an unprovable chain: err = %v", err)
	}
}

func TestAcceptHandoffWithoutBundles(t *testing.T) {
	set := policy.MustParseSet("p.cedar", `@id("d") permit(principal, action == Action::"delegate", resource);`)
	eng, _ := policy.NewCedarEngine(set)
	g, err := agentguard.New(agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/sub"))),
		agentguard.WithPolicy(eng), agentguard.WithAudit(audittest.NewRecorder()))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	iss := newIssuer(t, "example.org")
	parent, _ := iss.Agent("/agent/parent")
	h, err := identity.NewHandoff(context.Background(), parent, nil, spiffeid.RequireFromString("spiffe://example.org/agent/sub"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.AcceptHandoff(context.Background(), h); !errors.Is(err, agentguard.ErrDelegation) || !strings.Contains(err.Error(), "trust bundles") {
		t.Errorf("err = %v, want no trust bundles", err)
	}
	// With the bundles configured, it verifies.
	g2, err := agentguard.New(agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/sub"))),
		agentguard.WithPolicy(eng), agentguard.WithAudit(audittest.NewRecorder()), agentguard.WithTrustBundles(iss))
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close(context.Background())
	if _, err := g2.AcceptHandoff(context.Background(), h); err != nil {
		t.Errorf("with bundles: %v", err)
	}
}

func TestDelegationOfDelegationIsAttenuated(t *testing.T) {
	iss := newIssuer(t, "example.org")
	planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
	researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
	archivist, _ := iss.ID("/agent/archivist")
	fetcher, _ := iss.ID("/agent/fetcher")
	ctx := context.Background()
	// Alone, the researcher may hand work to the archivist.
	if _, err := researcher.guard.Delegate(ctx, archivist); err != nil {
		t.Fatalf("researcher alone -> archivist: %v", err)
	}
	dctx, err := planner.guard.Delegate(ctx, researcher.agent.ID())
	if err != nil {
		t.Fatal(err)
	}
	// Working for the planner, who may not, it may not.
	_, err = researcher.guard.Delegate(dctx, archivist)
	var de *agentguard.DelegationError
	if !errors.As(err, &de) || de.Step != agentguard.StepAuthorize || !strings.Contains(de.Reason, "delegating agent spiffe://example.org/agent/planner") {
		t.Fatalf("delegated researcher -> archivist: err = %v", err)
	}
	if !strings.Contains(de.From, "planner > spiffe://example.org/agent/researcher") {
		t.Errorf("From = %q, want the chain", de.From)
	}
	// Both may hand work to the fetcher.
	if _, err := researcher.guard.Delegate(dctx, fetcher); err != nil {
		t.Errorf("delegated researcher -> fetcher: %v", err)
	}
}
