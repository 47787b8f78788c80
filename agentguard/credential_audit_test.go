package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/credentialstest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

const leaseCanary = "CANARY-lease-7f3a9c"

type leaseEnv struct {
	g     *agentguard.Guard
	rec   *audittest.Recorder
	prov  *credentialstest.Provider
	spans *tracetest.SpanRecorder
	logs  *syncBuffer
	tool  *agentguard.Tool
	agent *identity.DevAgent
}

func newLeaseEnv(t *testing.T, opts ...credentials.BrokerOption) *leaseEnv {
	t.Helper()
	dev, err := identity.NewDevIssuer("example.org")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := dev.Agent("/agent/billing")
	if err != nil {
		t.Fatal(err)
	}
	e := &leaseEnv{
		rec:   audittest.NewRecorder(),
		prov:  credentialstest.NewProvider(credentialstest.WithTokenPrefix(leaseCanary)),
		spans: tracetest.NewSpanRecorder(),
		logs:  &syncBuffer{},
		agent: agent,
	}
	b := credentials.NewBroker(append([]credentials.BrokerOption{
		credentials.WithProvider("idp", e.prov), credentials.WithRetry(3, time.Millisecond)}, opts...)...)
	e.g, err = agentguard.New(
		agentguard.WithIdentity(agent),
		agentguard.WithPolicy(policytest.AllowAll()),
		agentguard.WithBroker(b),
		agentguard.WithAudit(e.rec),
		agentguard.WithLogger(e.logs.logger()),
		agentguard.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans))),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.g.Close(context.Background()) })
	e.tool = &agentguard.Tool{
		Name: "invoice",
		Credentials: []credentials.Requirement{{
			Name: "billing", Provider: "idp", Audience: "https://billing.example",
			Resources: []string{"https://billing.example/api"}, Scopes: []string{"invoice:write", "invoice:read"},
		}},
		Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
			c, ok := credentials.FromContext(ctx, "billing")
			if !ok || !strings.HasPrefix(c.Secret.Reveal(), leaseCanary) {
				return nil, errors.New("no billing credential")
			}
			return &agentguard.Result{Output: "ok"}, nil
		},
	}
	return e
}

// noCanary checks that the token appears in no audit record, log line,
// span attribute or event.
func (e *leaseEnv) noCanary(t *testing.T, errs ...error) {
	t.Helper()
	j, _ := json.Marshal(e.rec.Events())
	if strings.Contains(string(j), leaseCanary) || strings.Contains(fmt.Sprintf("%+v", e.rec.Events()), leaseCanary) {
		t.Error("a token reached the audit records")
	}
	if strings.Contains(e.logs.String(), leaseCanary) {
		t.Error("a token reached the logs")
	}
	for _, s := range e.spans.Ended() {
		if strings.Contains(fmt.Sprint(s.Attributes(), s.Events(), s.Status()), leaseCanary) {
			t.Errorf("a token reached span %q", s.Name())
		}
	}
	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), leaseCanary) {
			t.Errorf("a token reached an error: %v", err)
		}
	}
}

// TestLeaseLifecycleAudited: the first call's lease is issued and audited
// with its metadata, the second call reuses it without a new record, and
// ending the task revokes it and audits that.
func TestLeaseLifecycleAudited(t *testing.T) {
	e := newLeaseEnv(t)
	ctx, task, err := e.g.StartTask(context.Background(), agentguard.TaskSpec{OnBehalfOf: "alice", UserToken: credentials.NewSecret(leaseCanary + "-user")})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := e.g.Invoke(ctx, e.tool, agentguard.Call{ID: fmt.Sprint("call-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	issued := e.rec.Kind(audit.KindCredentialIssue)
	if len(issued) != 1 || e.prov.Issued() != 1 {
		t.Fatalf("%d issue records, %d issuances; want 1 and 1", len(issued), e.prov.Issued())
	}
	is := issued[0]
	c := is.Credential
	if c == nil || c.Provider != "idp" || c.Audience != "https://billing.example" || strings.Join(c.Scopes, " ") != "invoice:read invoice:write" ||
		strings.Join(c.Resources, " ") != "https://billing.example/api" || c.ExpiresAt.IsZero() || c.Attempts != 1 {
		t.Errorf("issue record credential = %+v", c)
	}
	if is.Agent != e.agent.ID().String() || is.Task != task.ID() || is.CallID != "call-0" || is.Tool != "invoice" || len(is.Leases) != 1 || is.OnBehalfOf != "alice" {
		t.Errorf("issue record = %+v", is)
	}
	lease := is.Leases[0]
	for _, call := range e.rec.Kind(audit.KindToolCall) {
		if len(call.Leases) != 1 || call.Leases[0] != lease {
			t.Errorf("tool call %s leases = %v, want [%s]", call.CallID, call.Leases, lease)
		}
	}
	// The provider was asked with the agent's JWT-SVID source and the
	// task's user token.
	req := e.prov.Requests()[0]
	if req.JWTIssuer == nil || req.UserToken.Reveal() != leaseCanary+"-user" || req.Agent != is.Agent || req.TaskID != task.ID() {
		t.Errorf("provider request: issuer %v, agent %s, task %s", req.JWTIssuer, req.Agent, req.TaskID)
	}

	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !e.prov.Revoked(lease) {
		t.Error("lease not revoked at task end")
	}
	rv := e.rec.Kind(audit.KindCredentialRevoke)
	if len(rv) != 1 || rv[0].Outcome != audit.OutcomeOK || rv[0].Leases[0] != lease || rv[0].Credential == nil ||
		rv[0].Credential.Provider != "idp" || rv[0].Agent != is.Agent || rv[0].Credential.Attempts != 1 {
		t.Errorf("revoke records = %+v", rv)
	}
	// The span of each call says whether its lease was issued or cached.
	var kinds []string
	for _, s := range e.spans.Ended() {
		for _, ev := range s.Events() {
			if ev.Name != agentguard.EventCredential {
				continue
			}
			for _, a := range ev.Attributes {
				if a.Key == agentguard.AttrCredentialEvent {
					kinds = append(kinds, a.Value.AsString())
				}
			}
		}
	}
	if strings.Join(kinds, ",") != "issued,cached" {
		t.Errorf("credential span events = %v, want issued,cached", kinds)
	}
	e.noCanary(t)
}

// TestLeaseFailureAudited: a provider that keeps failing denies the call
// with ErrCredential after the broker's retries, and the failure is
// audited with the number of attempts.
func TestLeaseFailureAudited(t *testing.T) {
	e := newLeaseEnv(t)
	tmp := fmt.Errorf("%w: 503", credentials.ErrUnavailable)
	e.prov.FailIssue(tmp, tmp, tmp)
	ctx, task, err := e.g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	_, err = e.g.Invoke(ctx, e.tool, agentguard.Call{ID: "c1"})
	if !errors.Is(err, agentguard.ErrCredential) || !errors.Is(err, credentials.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrCredential wrapping ErrUnavailable", err)
	}
	if n := len(e.prov.Requests()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	f := e.rec.Kind(audit.KindCredentialFail)
	if len(f) != 1 || f[0].Outcome != audit.OutcomeError || f[0].Credential.Attempts != 3 || f[0].CallID != "c1" || f[0].Credential.Provider != "idp" {
		t.Fatalf("fail records = %+v", f)
	}
	calls := e.rec.Kind(audit.KindToolCall)
	if len(calls) != 1 || calls[0].Outcome != audit.OutcomeDenied || calls[0].Step != agentguard.StepCredential {
		t.Errorf("tool call record = %+v", calls)
	}
	if e.prov.Issued() != 0 {
		t.Error("issued despite failures")
	}
}

// TestRevokeFailureReported: a revocation that keeps failing is retried,
// then reported by End and audited, without the token.
func TestRevokeFailureReported(t *testing.T) {
	e := newLeaseEnv(t)
	ctx, task, err := e.g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.g.Invoke(ctx, e.tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	tok := e.prov.Tokens()[0]
	tmp := fmt.Errorf("%w: revocation endpoint down while revoking %s", credentials.ErrUnavailable, tok)
	e.prov.FailRevoke(tmp, tmp, tmp)
	err = task.End(context.Background())
	if err == nil || !strings.Contains(err.Error(), e.rec.Kind(audit.KindCredentialIssue)[0].Leases[0]) {
		t.Fatalf("End error = %v, want one naming the lease", err)
	}
	if n := e.prov.RevokeAttempts(); n != 3 {
		t.Errorf("%d revocation attempts, want 3", n)
	}
	rv := e.rec.Kind(audit.KindCredentialRevoke)
	if len(rv) != 1 || rv[0].Outcome != audit.OutcomeError || rv[0].Credential.Attempts != 3 || rv[0].Error == "" {
		t.Fatalf("revoke records = %+v", rv)
	}
	end := e.rec.Kind(audit.KindTaskEnd)
	if len(end) != 1 || end[0].Outcome != audit.OutcomeError {
		t.Errorf("task end record = %+v", end)
	}
	e.noCanary(t, err)
}

// TestLeaseNotAuditedDeniesCall: in strict mode, an issuance that cannot
// be audited denies the call; the lease is still revoked at the end.
func TestLeaseNotAuditedDeniesCall(t *testing.T) {
	e := newLeaseEnv(t)
	ctx, task, err := e.g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	e.rec.Fail(errors.New("disk full"))
	_, err = e.g.Invoke(ctx, e.tool, agentguard.Call{})
	if !errors.Is(err, agentguard.ErrDenied) || !errors.Is(err, agentguard.ErrAudit) {
		t.Fatalf("err = %v, want a denial for the audit failure", err)
	}
	e.rec.Recover()
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(e.prov.Active()) != 0 {
		t.Errorf("leases still active: %v", e.prov.Active())
	}
}

// TestCancelledTaskRevokesLeases: cancelling the task's parent context
// ends the task, which revokes its leases.
func TestCancelledTaskRevokesLeases(t *testing.T) {
	e := newLeaseEnv(t)
	parent, cancel := context.WithCancel(context.Background())
	ctx, task, err := e.g.StartTask(parent, agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.g.Invoke(ctx, e.tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-task.Done()
	if len(e.prov.Active()) != 0 || e.prov.Issued() != 1 {
		t.Errorf("after cancel: %d issued, active %v", e.prov.Issued(), e.prov.Active())
	}
	if rv := e.rec.Kind(audit.KindCredentialRevoke); len(rv) != 1 || rv[0].Outcome != audit.OutcomeOK {
		t.Errorf("revoke records = %+v", rv)
	}
}

// TestSubAgentInheritsUserToken: a sub-agent's task in the same process
// acts for the same user with the same token, which reaches its credential
// providers, and neither task's Spec shows it.
func TestSubAgentInheritsUserToken(t *testing.T) {
	e := newLeaseEnv(t)
	ctx, task, err := e.g.StartTask(context.Background(), agentguard.TaskSpec{OnBehalfOf: "alice", UserToken: credentials.NewSecret("user-token-1")})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	sub := identity.MustParse("spiffe://example.org/agent/sub")
	dctx, err := e.g.Delegate(ctx, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	prov := credentialstest.NewProvider(credentialstest.WithTokenPrefix(leaseCanary))
	g2, err := agentguard.New(agentguard.WithIdentity(identity.NewStaticSource(sub)), agentguard.WithPolicy(policytest.AllowAll()),
		agentguard.WithAudit(audittest.NewRecorder()), agentguard.WithBroker(credentials.NewBroker(credentials.WithProvider("idp", prov))))
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close(context.Background())
	sctx, subTask, err := g2.StartTask(dctx, agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer subTask.End(context.Background())
	if _, err := g2.Invoke(sctx, e.tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	reqs := prov.Requests()
	if len(reqs) != 1 || reqs[0].UserToken.Reveal() != "user-token-1" || reqs[0].Agent != sub.ID.String() {
		t.Fatalf("sub-agent's provider requests = %d, user token passed: %v", len(reqs), len(reqs) == 1 && reqs[0].UserToken.Reveal() == "user-token-1")
	}
	if subTask.Spec().OnBehalfOf != "alice" || !subTask.Spec().UserToken.IsZero() || !task.Spec().UserToken.IsZero() {
		t.Error("a task's Spec shows its user token, or the sub-task serves another user")
	}
}
