package agentguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/internal/canonical"
	"github.com/agentguard/go-sdk/policy"
)

// Invoke runs call of tool t through the guard and then t.Handler.
func (g *Guard) Invoke(ctx context.Context, t *Tool, call Call) (*Result, error) {
	if err := t.validate(true); err != nil {
		return nil, err
	}
	return g.run(ctx, t, call, runHandler)
}

// runHandler executes a tool through its own Handler.
func runHandler(ctx context.Context, t *Tool, c Call) (*Result, error) {
	return t.Handler(ctx, c.Args)
}

// Wrap returns a handler that runs every call of t through the guard. Each
// call gets a new call ID; use Invoke to pass the model's.
func (g *Guard) Wrap(t *Tool) (Handler, error) {
	if err := t.validate(true); err != nil {
		return nil, err
	}
	return func(ctx context.Context, args json.RawMessage) (*Result, error) {
		return g.Invoke(ctx, t, Call{Name: t.Name, Args: args})
	}, nil
}

// begin starts the span and the audit event of a call.
func (g *Guard) begin(ctx context.Context, t *Tool, c Call) (context.Context, *call) {
	if c.ID == "" {
		c.ID = newID("call-")
	}
	if c.Name == "" {
		c.Name = t.Name
	}
	start := g.cfg.now()
	ctx, span := g.tracer.Start(ctx, "execute_tool "+t.Name,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			semconv.GenAIOperationNameExecuteTool,
			semconv.GenAIToolName(t.Name),
			semconv.GenAIToolCallID(c.ID),
			semconv.GenAIToolDescription(t.Description),
			semconv.GenAIToolType("function"),
			AttrToolset.String(t.Toolset),
		))
	p := &call{g: g, tool: t, c: c, span: span, start: start, ev: audit.Event{
		Time:    start,
		Kind:    audit.KindToolCall,
		Tool:    t.Name,
		Toolset: t.Toolset,
		CallID:  c.ID,
	}}
	sc := span.SpanContext()
	if sc.HasTraceID() {
		p.ev.TraceID = sc.TraceID().String()
	}
	if sc.HasSpanID() {
		p.ev.SpanID = sc.SpanID().String()
	}
	return ctx, p
}

// call is the state of one call as it moves through the pipeline.
type call struct {
	g     *Guard
	tool  *Tool
	c     Call
	span  trace.Span
	ev    audit.Event
	start time.Time
	creds []*credentials.Credential
}

// run is the pipeline. exec runs the tool once every step before it passed.
func (g *Guard) run(ctx context.Context, t *Tool, c Call, exec Next) (*Result, error) {
	ctx, p := g.begin(ctx, t, c)
	defer p.span.End()
	span := p.span
	start := p.start

	if g.closed.Load() {
		return p.deny(ctx, StepGuard, "guard closed", nil, ErrClosed)
	}
	if p.c.Name != t.Name {
		return p.deny(ctx, StepLookup, fmt.Sprintf("call names tool %q", p.c.Name), nil, ErrUnknownTool)
	}

	args, parsed, err := canonical.JSON(p.c.Args)
	if err != nil {
		return p.deny(ctx, StepArguments, "arguments are not valid JSON", nil, fmt.Errorf("%w: %v", ErrInvalidArguments, err))
	}
	if _, ok := parsed.(map[string]any); !ok {
		return p.deny(ctx, StepArguments, "arguments are not a JSON object", nil, ErrInvalidArguments)
	}
	p.c.Args = args
	p.ev.ArgsDigest = canonical.Digest(args)
	span.SetAttributes(AttrArgsDigest.String(p.ev.ArgsDigest))

	task, ok := TaskFromContext(ctx)
	if !ok {
		task = newImplicitTask(ctx, g, p.c.ID)
		defer func() { _ = task.end(context.WithoutCancel(ctx), "call done") }()
	}
	p.ev.Task = task.spec.ID
	p.ev.OnBehalfOf = task.spec.OnBehalfOf
	span.SetAttributes(AttrTaskID.String(task.spec.ID))
	state, err := task.snapshot()
	if err != nil {
		return p.deny(ctx, StepTask, "task has ended", nil, err)
	}

	// 1. Identify.
	id, err := g.cfg.identity.Identity(ctx)
	if err == nil && id.IsZero() {
		err = identity.ErrNoIdentity
	}
	if err != nil {
		return p.deny(ctx, StepIdentify, "agent identity unavailable", nil, fmt.Errorf("%w: %w", ErrNoIdentity, err))
	}
	p.ev.Agent = id.ID.String()
	p.ev.Chain = id.ChainStrings()
	span.SetAttributes(semconv.GenAIAgentID(p.ev.Agent))
	if len(p.ev.Chain) > 0 {
		span.SetAttributes(AttrChain.StringSlice(p.ev.Chain))
	}

	// 2. Check integrity.
	if g.cfg.integrity != nil {
		if err := g.cfg.integrity.Verify(ctx, t); err != nil {
			return p.deny(ctx, StepIntegrity, "tool definition not trusted", nil, fmt.Errorf("%w: %w", ErrIntegrity, err))
		}
	}

	// 3. Authorize.
	req := &policy.Request{
		Agent:  id,
		Tool:   t.policyTool(),
		Args:   args,
		Task:   state,
		CallID: p.c.ID,
		Time:   start,
	}
	d, err := g.decide(ctx, req)
	if err != nil {
		span.AddEvent(EventAuthorize, trace.WithAttributes(AttrDecision.String(audit.Deny), AttrReason.String("engine error")))
		return p.deny(ctx, StepAuthorize, "policy engine could not decide", nil, fmt.Errorf("%w: %w", ErrPolicy, err))
	}
	p.ev.Policies = d.Policies
	decision := audit.Deny
	if d.Allowed {
		decision = audit.Allow
	}
	span.AddEvent(EventAuthorize, trace.WithAttributes(
		AttrDecision.String(decision),
		AttrPolicies.StringSlice(d.Policies),
		AttrRevision.String(d.Revision),
		AttrReason.String(d.Reason),
	))
	span.SetAttributes(AttrPolicies.StringSlice(d.Policies), AttrRevision.String(d.Revision))
	if !d.Allowed {
		var cause error
		if len(d.Errors) > 0 {
			msgs := make([]string, len(d.Errors))
			for i, e := range d.Errors {
				msgs[i] = e.PolicyID + ": " + e.Message
			}
			cause = fmt.Errorf("%w: evaluation errors: %s", ErrPolicy, strings.Join(msgs, "; "))
		}
		return p.deny(ctx, StepAuthorize, d.Reason, d.Policies, cause)
	}

	// 4. Approve.
	var approval []policy.Obligation
	for _, o := range d.Obligations {
		switch o.Name {
		case policy.ObligationApproval:
			approval = append(approval, o)
		default:
			return p.deny(ctx, StepAuthorize, fmt.Sprintf("policy %s sets obligation @%s, which this guard cannot fulfil", o.PolicyID, o.Name), d.Policies, ErrPolicy)
		}
	}
	if len(approval) > 0 {
		if res, err, denied := p.approve(ctx, id, task, approval, d.Policies); denied {
			return res, err
		}
	}

	// 5. Credential.
	if len(t.Credentials) > 0 {
		if g.cfg.broker == nil {
			return p.deny(ctx, StepCredential, "no credential broker configured", nil, ErrCredential)
		}
		if err := task.markLeased(); err != nil {
			return p.deny(ctx, StepTask, "task has ended", nil, err)
		}
		for _, r := range t.Credentials {
			cred, err := g.cfg.broker.Lease(ctx, credentials.Request{
				Requirement: r, TaskID: task.spec.ID, Agent: p.ev.Agent, NotAfter: task.deadline,
			})
			if err != nil {
				span.AddEvent(EventCredential, trace.WithAttributes(AttrProvider.String(r.Provider), AttrAudience.String(r.Audience), AttrOutcome.String(audit.OutcomeError)))
				return p.deny(ctx, StepCredential, fmt.Sprintf("credential %q unavailable", r.Name), nil, fmt.Errorf("%w: %w", ErrCredential, err))
			}
			p.creds = append(p.creds, cred)
			p.ev.Leases = append(p.ev.Leases, cred.LeaseID)
			span.AddEvent(EventCredential, trace.WithAttributes(
				AttrLeaseID.String(cred.LeaseID),
				AttrProvider.String(cred.Provider),
				AttrAudience.String(cred.Audience),
				AttrScopes.StringSlice(cred.Scopes),
				AttrExpiresAt.String(cred.ExpiresAt.UTC().Format(time.RFC3339)),
				AttrOutcome.String(audit.OutcomeOK),
			))
		}
		if _, err := task.snapshot(); err != nil {
			// The task ended while leasing: its revocation may have run
			// before these leases existed, so revoke again.
			_, _ = g.cfg.broker.Revoke(context.WithoutCancel(ctx), task.spec.ID)
			return p.deny(ctx, StepTask, "task has ended", nil, err)
		}
	}

	// 6. Execute.
	p.ev.Decision = audit.Allow
	span.SetAttributes(AttrDecision.String(audit.Allow))
	res, err := p.execute(credentials.NewContext(ctx, p.creds...), exec)

	// 7. Record.
	var labels []string
	if res != nil {
		labels = res.Labels
	}
	task.record(t.Name, t.OutputLabels, labels)
	if err != nil {
		msg := p.scrub(err.Error())
		p.ev.Outcome = audit.OutcomeError
		p.ev.Step = StepExecute
		p.ev.Error = msg
		span.SetAttributes(AttrOutcome.String(audit.OutcomeError))
		span.SetStatus(codes.Error, msg)
		err = &ToolError{Tool: t.Name, CallID: p.c.ID, msg: msg, err: err}
		if aerr := p.finish(ctx); aerr != nil {
			return nil, errors.Join(err, aerr)
		}
		return nil, err
	}
	p.ev.Outcome = audit.OutcomeOK
	span.SetAttributes(AttrOutcome.String(audit.OutcomeOK))
	if aerr := p.finish(ctx); aerr != nil {
		// Strict mode: no unaudited access, so the result is withheld.
		span.SetStatus(codes.Error, "audit record not written")
		return nil, &DenyError{Tool: t.Name, CallID: p.c.ID, Step: StepAudit, Reason: "audit record not written; result withheld", Err: aerr}
	}
	return res, nil
}

// decide asks the engine about req for the acting agent and then for each
// agent up its delegation chain: a sub-agent never gets more than the agents
// that delegated to it. The first denial decides; when all allow, the acting
// agent's decision stands, with the obligations of every decision.
func (g *Guard) decide(ctx context.Context, req *policy.Request) (policy.Decision, error) {
	d, err := g.cfg.engine.Decide(ctx, req)
	if err != nil || !d.Allowed || len(req.Agent.Chain) == 0 {
		return d, err
	}
	for i, parent := range req.Agent.Chain {
		preq := *req
		preq.Agent = identity.Identity{ID: parent, Chain: req.Agent.Chain[:i]}
		pd, err := g.cfg.engine.Decide(ctx, &preq)
		if err != nil {
			return pd, fmt.Errorf("delegating agent %s: %w", parent, err)
		}
		if !pd.Allowed {
			pd.Reason = "delegating agent " + parent.String() + " may not make this call: " + pd.Reason
			return pd, nil
		}
		d.Obligations = append(d.Obligations, pd.Obligations...)
	}
	return d, nil
}

// approve asks the approver. It reports denied and the call's return values
// when the call may not go ahead.
func (p *call) approve(ctx context.Context, id identity.Identity, task *Task, obs []policy.Obligation, policies []string) (*Result, error, bool) {
	kinds := make([]string, 0, len(obs))
	for _, o := range obs {
		kinds = append(kinds, o.Value)
	}
	kinds = canonical.SortedSet(kinds)
	p.ev.Approval = &audit.Approval{Required: true}
	if p.g.cfg.approver == nil {
		res, err := p.deny(ctx, StepApprove, "policy requires approval and no approver is configured", policies, ErrApprovalRequired)
		return res, err, true
	}
	bound, _ := canonical.Marshal(map[string]any{
		"tool": p.tool.Name, "args": json.RawMessage(p.c.Args), "task": task.spec.ID, "agent": id.String(),
	})
	req := &ApprovalRequest{
		Agent:     id,
		TaskID:    task.spec.ID,
		Tool:      p.tool.Name,
		CallID:    p.c.ID,
		Args:      p.c.Args,
		Digest:    canonical.Digest(bound),
		Kind:      strings.Join(kinds, ","),
		Policies:  policies,
		ExpiresAt: p.g.cfg.now().Add(5 * time.Minute),
	}
	a, err := p.g.cfg.approver.Approve(ctx, req)
	p.ev.Approval.Granted = err == nil && a.Granted
	p.ev.Approval.Approvers = a.Approvers
	p.span.AddEvent(EventApprove, trace.WithAttributes(AttrApproval.Bool(p.ev.Approval.Granted), AttrApprovers.StringSlice(a.Approvers)))
	if err != nil {
		res, derr := p.deny(ctx, StepApprove, "approver failed", policies, fmt.Errorf("%w: %w", ErrApprovalRequired, err))
		return res, derr, true
	}
	if !a.Granted {
		reason := "approval refused"
		if a.Reason != "" {
			reason += ": " + a.Reason
		}
		res, derr := p.deny(ctx, StepApprove, reason, policies, ErrApprovalRequired)
		return res, derr, true
	}
	return nil, nil, false
}

// execute runs the tool, turning a panic into an error so that the call is
// still recorded.
func (p *call) execute(ctx context.Context, exec Next) (res *Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("tool panicked: %v", r)
		}
	}()
	return exec(ctx, p.tool, p.c)
}

// deny ends a refused call: it records the denial and returns a *DenyError.
func (p *call) deny(ctx context.Context, step, reason string, policies []string, cause error) (*Result, error) {
	p.ev.Decision = audit.Deny
	p.ev.Outcome = audit.OutcomeDenied
	p.ev.Step = step
	p.ev.Reason = reason
	if policies != nil {
		p.ev.Policies = policies
	}
	derr := &DenyError{Tool: p.tool.Name, CallID: p.c.ID, Step: step, Policies: slices.Clone(p.ev.Policies), Reason: reason, Err: cause}
	msg := p.scrub(derr.Error())
	p.ev.Error = msg
	p.span.SetAttributes(AttrDecision.String(audit.Deny), AttrStep.String(step), AttrReason.String(reason),
		attribute.String(string(semconv.ErrorTypeKey), "agentguard.denied"))
	p.span.SetStatus(codes.Error, msg)
	if aerr := p.finish(ctx); aerr != nil {
		return nil, errors.Join(derr, aerr)
	}
	return nil, derr
}

// finish writes the call's audit record.
func (p *call) finish(ctx context.Context) error {
	p.ev.Duration = p.g.cfg.now().Sub(p.start)
	return p.g.writeAudit(ctx, p.ev)
}

// scrub removes the values of the call's credentials from s.
func (p *call) scrub(s string) string {
	for _, c := range p.creds {
		if v := c.Secret.Reveal(); len(v) >= 4 {
			s = strings.ReplaceAll(s, v, credentials.Redacted)
		}
	}
	return s
}
