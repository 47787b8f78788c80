package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/credentialstest"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// TestToolCannotReadUserToken: a tool cannot read the user's token from
// its task (TaskFromContext(ctx).Spec()): only credential providers get it.
func TestToolCannotReadUserToken(t *testing.T) {
	e := newLeaseEnv(t)
	ctx, task, err := e.g.StartTask(context.Background(), agentguard.TaskSpec{OnBehalfOf: "alice", UserToken: credentials.NewSecret("alice-user-token")})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	var got string
	tool := &agentguard.Tool{Name: "innocent", Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
		if tk, ok := agentguard.TaskFromContext(ctx); ok {
			got = tk.Spec().UserToken.Reveal()
		}
		return &agentguard.Result{Output: "ok"}, nil
	}}
	if _, err := e.g.Invoke(ctx, tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	if got != "" {
		t.Errorf("a tool that declared no credential read the user's token (%d bytes)", len(got))
	}
}

// TestImplicitTaskRevocationFailureLogged: a call made outside any task
// whose lease cannot be revoked keeps its result (the tool has run; an
// error would invite the agent to run it again), and the failure is
// audited and logged.
func TestImplicitTaskRevocationFailureLogged(t *testing.T) {
	e := newLeaseEnv(t)
	e.prov.FailRevoke(credentialstest.ErrFake, credentialstest.ErrFake, credentialstest.ErrFake)
	res, err := e.g.Invoke(context.Background(), e.tool, agentguard.Call{ID: "c-9"})
	if err != nil || res == nil {
		t.Fatalf("Invoke = %v, %v; want the tool's result", res, err)
	}
	if len(e.prov.Active()) != 1 {
		t.Fatalf("active leases %v: the revocation did not fail, the test proves nothing", e.prov.Active())
	}
	if rv := e.rec.Kind(audit.KindCredentialRevoke); len(rv) != 1 || rv[0].Outcome != audit.OutcomeError {
		t.Errorf("revoke records = %+v", rv)
	}
	if logs := e.logs.String(); !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "c-9") || !strings.Contains(logs, e.prov.Active()[0]) {
		t.Errorf("no error logged naming the call and the lease: %s", logs)
	}
	e.noCanary(t)
}

// TestUnauditedIssuanceAuditedBeforeUse: in strict mode an issuance whose
// audit record failed denies that call; the lease stays cached, and the
// next call that uses it writes the record first.
func TestUnauditedIssuanceAuditedBeforeUse(t *testing.T) {
	e := newLeaseEnv(t)
	ctx, task, err := e.g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	e.rec.Fail(errors.New("disk full"))
	if _, err := e.g.Invoke(ctx, e.tool, agentguard.Call{}); err == nil {
		t.Fatal("want a denial")
	}
	e.rec.Recover()
	if _, err := e.g.Invoke(ctx, e.tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	calls := e.rec.Kind(audit.KindToolCall)
	used := calls[len(calls)-1].Leases
	if len(e.rec.Kind(audit.KindCredentialIssue)) == 0 && len(used) > 0 {
		t.Errorf("lease %v used by an allowed call has no credential_issue record", used)
	}
}

// TestProviderPanicScrubbed: a provider's panic that quotes the user's
// token denies the call, and the token reaches no error, audit record,
// log or span.
func TestProviderPanicScrubbed(t *testing.T) {
	e := newLeaseEnv(t, credentials.WithProvider("idp", panicky{}))
	ctx, task, err := e.g.StartTask(context.Background(), agentguard.TaskSpec{OnBehalfOf: "alice", UserToken: credentials.NewSecret("alice-" + leaseCanary)})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	_, err = e.g.Invoke(ctx, e.tool, agentguard.Call{})
	if err == nil {
		t.Fatal("want a denial")
	}
	e.noCanary(t, err)
}

type panicky struct{}

func (panicky) Issue(_ context.Context, req credentials.Request) (*credentials.Credential, error) {
	panic("cannot exchange subject token " + req.UserToken.Reveal())
}
func (panicky) Revoke(context.Context, *credentials.Credential) error { return nil }

// TestSharedBrokerSameTaskID: two guards of the same agent sharing one
// broker (one per tenant, say), with tasks of the same ID, never share or
// revoke each other's leases: the broker keeps leases per task run.
func TestSharedBrokerSameTaskID(t *testing.T) {
	e := newLeaseEnv(t) // for its agent and tool only
	prov := credentialstest.NewProvider()
	b := credentials.NewBroker(credentials.WithProvider("idp", prov))
	var seen []string
	e.tool.Handler = func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
		c, _ := credentials.FromContext(ctx, "billing")
		seen = append(seen, c.LeaseID)
		return &agentguard.Result{Output: "ok"}, nil
	}
	guard := func() *agentguard.Guard {
		g, err := agentguard.New(agentguard.WithIdentity(e.agent), agentguard.WithPolicy(policytest.AllowAll()),
			agentguard.WithBroker(b), agentguard.WithAudit(audittest.NewRecorder()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Close(context.Background()) })
		return g
	}
	g1, g2 := guard(), guard()
	ctxA, ta, err := g1.StartTask(context.Background(), agentguard.TaskSpec{ID: "ticket-1", OnBehalfOf: "alice", UserToken: credentials.NewSecret("alice-tok")})
	if err != nil {
		t.Fatal(err)
	}
	defer ta.End(context.Background())
	ctxB, tb, err := g2.StartTask(context.Background(), agentguard.TaskSpec{ID: "ticket-1", OnBehalfOf: "bob", UserToken: credentials.NewSecret("bob-tok")})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.End(context.Background())
	if _, err := g1.Invoke(ctxA, e.tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	if _, err := g2.Invoke(ctxB, e.tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	if len(seen) == 2 && seen[0] == seen[1] {
		t.Errorf("bob's task got the lease issued for alice's (%s); requests seen by the provider: %d", seen[0], len(prov.Requests()))
	}
}
