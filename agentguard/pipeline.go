package agentguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
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

// Invoke runs call of tool t through the guard and then t.Handler. An
// invalid tool is a denial (ErrInvalidTool), audited like any other.
func (g *Guard) Invoke(ctx context.Context, t *Tool, call Call) (*Result, error) {
	if err := t.validate(true); err != nil {
		return g.refuseTool(ctx, t, call, err)
	}
	return g.run(ctx, t, call, runHandler)
}

// refuseTool denies and audits a call of a tool whose description is not
// usable.
func (g *Guard) refuseTool(ctx context.Context, t *Tool, call Call, cause error) (*Result, error) {
	desc := &Tool{}
	if t != nil {
		desc = &Tool{Name: t.Name, Toolset: t.Toolset, Description: t.Description}
	}
	ctx, p := g.begin(ctx, desc, call)
	defer p.span.End()
	return p.deny(ctx, StepDefinition, "tool description not usable", nil, fmt.Errorf("%w: %w", ErrInvalidTool, cause))
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
	p.times.on = g.metrics.timing(ctx)
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
	task  *Task // once known
	span  trace.Span
	ev    audit.Event
	start time.Time
	creds []*credentials.Credential
	// userToken is the task's user token, scrubbed like the credentials
	// from anything the call reports.
	userToken credentials.Secret
	// args are the parsed arguments, when the tool's audit records them.
	args any
	// step is the step under way, for a panic's denial.
	step string
	// recorded is set once the audit record was written.
	recorded bool
	// times are the durations of the steps that ran, for the metrics.
	times stepTimes
}

// run is the pipeline. exec runs the tool once every step before it passed.
func (g *Guard) run(ctx context.Context, t *Tool, c Call, exec Next) (res *Result, err error) {
	ctx, p := g.begin(ctx, t, c)
	defer p.span.End()
	defer p.recordSteps(ctx)
	defer func() {
		// A panic in any component (identity source, engine, approver,
		// broker, sink) denies the call and is recorded, never lost.
		if r := recover(); r != nil {
			res, err = p.deny(ctx, p.step, "internal failure", nil, fmt.Errorf("%w: panic: %v", ErrInternal, r))
		}
	}()
	return p.steps(ctx, exec)
}

func (p *call) steps(ctx context.Context, exec Next) (*Result, error) {
	g, t, span := p.g, p.tool, p.span
	p.step = StepGuard
	if g.closed.Load() {
		return p.deny(ctx, StepGuard, "guard closed", nil, ErrClosed)
	}
	if p.c.Name != t.Name {
		return p.deny(ctx, StepLookup, fmt.Sprintf("call names tool %q", p.c.Name), nil, ErrUnknownTool)
	}

	p.step = StepArguments
	args, parsed, err := canonical.JSON(p.c.Args)
	if err != nil {
		return p.deny(ctx, StepArguments, "arguments are not valid JSON", nil, fmt.Errorf("%w: %v", ErrInvalidArguments, err))
	}
	if _, ok := parsed.(map[string]any); !ok {
		return p.deny(ctx, StepArguments, "arguments are not a JSON object", nil, ErrInvalidArguments)
	}
	p.c.Args = args
	p.ev.ArgsDigest = canonical.Digest(args)
	if t.Audit.Record {
		p.args = parsed // recorded by finish, once the values to scrub are known
	}
	span.SetAttributes(AttrArgsDigest.String(p.ev.ArgsDigest))

	p.step = StepTask
	task, ok := TaskFromContext(ctx)
	if ok {
		// Scrubbed from what the call reports even when the task is
		// another guard's and the call is denied for it.
		p.userToken = task.userToken
	}
	switch {
	case !ok && g.cfg.requireTask:
		return p.deny(ctx, StepTask, "call outside any task", nil, ErrNoTask)
	case !ok:
		// A task of its own, which Suspend and Close can end: the call
		// runs with its context, which ending it cancels.
		var err error
		if ctx, task, err = g.startImplicitTask(ctx); err != nil {
			return p.deny(ctx, StepGuard, "guard closed", nil, err)
		}
		defer func() {
			// The call's result stands (the tool has run); a lease left
			// valid is audited by end, and logged here.
			if err := task.end(ctx, "call done"); err != nil {
				g.cfg.logger.LogAttrs(ctx, slog.LevelError, "agentguard: ending the task of a call made outside any task failed",
					slog.String("tool", t.Name), slog.String("call_id", p.c.ID), slog.String("error", p.scrub(err.Error())))
			}
		}()
	case task.g != g:
		return p.deny(ctx, StepTask, "task was started by another guard", nil, ErrForeignTask)
	}
	p.task = task
	p.ev.Task = task.spec.ID
	p.ev.OnBehalfOf = task.spec.OnBehalfOf
	p.userToken = task.userToken // an implicit task's, from a delegation
	span.SetAttributes(AttrTaskID.String(task.spec.ID))
	state, err := task.snapshot(t.Name, p.start)
	if err != nil {
		return p.taskEnded(ctx, err)
	}

	// 1. Identify.
	p.step = StepIdentify
	t0 := p.clock()
	id, reason, err := g.identify(ctx)
	p.took(timeIdentify, t0)
	if err != nil {
		if !id.ID.IsZero() {
			p.ev.Agent = id.ID.String()
		}
		return p.deny(ctx, StepIdentify, reason, nil, err)
	}
	p.ev.Agent = id.ID.String()
	p.ev.Chain = id.ChainStrings()
	span.SetAttributes(semconv.GenAIAgentID(p.ev.Agent))
	if len(p.ev.Chain) > 0 {
		span.SetAttributes(AttrChain.StringSlice(p.ev.Chain))
	}

	// The runtime controls: a suspended agent is refused at once, and a
	// task whose budget is spent before policy or a human is asked.
	task.noteAgent(id)
	p.step = StepSuspend
	if err := g.checkSuspended(id); err != nil {
		return p.deny(ctx, StepSuspend, "agent suspended", nil, err)
	}
	p.step = StepBudget
	if err := task.checkBudget(t.Name, p.start); err != nil {
		return p.deny(ctx, StepBudget, "task budget exhausted", nil, err)
	}

	// 2. Check integrity.
	p.step = StepIntegrity
	if err := g.verifyToolAs(ctx, id, t); err != nil {
		if errors.Is(err, ErrAudit) {
			// Trusting the tool on first use could not be recorded, so it
			// is not trusted (StepAudit would say the tool ran).
			return p.deny(ctx, StepIntegrity, "first use of the tool not audited", nil, fmt.Errorf("%w: %w", ErrIntegrity, err))
		}
		return p.deny(ctx, StepIntegrity, "tool definition not trusted", nil, fmt.Errorf("%w: %w", ErrIntegrity, err))
	}

	// 3. Authorize.
	p.step = StepAuthorize
	req := &policy.Request{
		Agent:  id,
		Tool:   t.policyTool(),
		Args:   args,
		Task:   state,
		CallID: p.c.ID,
		Time:   p.start,
	}
	d, denied, err := p.authorize(ctx, req)
	if denied {
		return nil, err
	}

	// 4. Approve, and fulfil the other obligations.
	p.step = StepApprove
	approval, others := splitObligations(d.Obligations)
	if g.cfg.riskApprovalSet && t.Risk >= g.cfg.riskApproval {
		approval = append(approval, policy.Obligation{Name: policy.ObligationApproval, Value: "risk-" + t.Risk.String()})
	}
	if len(approval) > 0 {
		a, err := p.approve(ctx, id, task, approval, d)
		if err != nil {
			return nil, err
		}
		// Decide again, now: the wait may have been long and the task's
		// state may have changed, and policy may require the approval
		// itself (context.approval).
		p.step = StepAuthorize
		if req.Task, err = task.snapshot(t.Name, g.cfg.now()); err != nil {
			return p.taskEnded(ctx, err)
		}
		req.Approval = policy.Approval{Granted: true, Approvers: a.Approvers}
		d2, denied, err := p.authorize(ctx, req)
		if denied {
			return nil, err
		}
		d = d2
		var again []policy.Obligation
		again, others = splitObligations(d.Obligations)
		// The policies may have changed while the approver was asked (a
		// reload): an approval of a kind not asked for is not had.
		for _, o := range again {
			if !slices.ContainsFunc(approval, func(asked policy.Obligation) bool { return asked.Value == o.Value }) {
				return p.deny(ctx, StepApprove, fmt.Sprintf("policy %s now requires approval %q, which was not asked for", o.PolicyID, o.Value), d.Policies, ErrApprovalRequired)
			}
		}
	}
	p.step = StepObligation
	for _, o := range others {
		f := g.cfg.obligations[o.Name]
		if f == nil {
			return p.deny(ctx, StepObligation, fmt.Sprintf("policy %s sets obligation @%s, which this guard cannot fulfil", o.PolicyID, o.Name), d.Policies, ErrObligation)
		}
		c := p.c
		c.Args = args
		if err := f(ctx, o, c); err != nil {
			return p.deny(ctx, StepObligation, fmt.Sprintf("obligation @%s of policy %s not fulfilled", o.Name, o.PolicyID), d.Policies, fmt.Errorf("%w: %w", ErrObligation, err))
		}
	}

	// 5. Credential. An agent suspended while the call waited (for a
	// human, say) gets none.
	p.step = StepSuspend
	if err := g.checkSuspended(id); err != nil {
		return p.deny(ctx, StepSuspend, "agent suspended", nil, err)
	}
	p.step = StepCredential
	if len(t.Credentials) > 0 {
		if res, err, denied := p.lease(ctx, task); denied {
			return res, err
		}
	}

	// Last checks before the tool runs: a suspension that came while the
	// call waited denies it, and the budget is taken, atomically, so that
	// concurrent calls cannot overrun it.
	p.step = StepSuspend
	if err := g.checkSuspended(id); err != nil {
		return p.deny(ctx, StepSuspend, "agent suspended", nil, err)
	}
	// A call whose context ended while it waited (for a human, a
	// credential) is not run: nobody is left to take its result.
	p.step = StepExecute
	if err := ctx.Err(); err != nil {
		return p.deny(ctx, StepExecute, "the call was cancelled before the tool ran", nil, err)
	}
	p.step = StepBudget
	if err := task.admit(t.Name, g.cfg.now()); err != nil {
		if errors.Is(err, ErrTaskEnded) {
			return p.taskEnded(ctx, err)
		}
		return p.deny(ctx, StepBudget, "task budget exhausted", nil, err)
	}

	// 6. Execute.
	p.step = StepExecute
	p.ev.Decision = audit.Allow
	span.SetAttributes(AttrDecision.String(audit.Allow))
	t0 = p.clock()
	res, err := p.execute(credentials.NewContext(ctx, p.creds...), exec)
	p.took(timeExecute, t0)

	// 7. Record.
	p.step = StepAudit
	var labels []string
	if res != nil {
		labels = res.Labels
	}
	task.record(t.Name, t.OutputLabels, labels)
	if err != nil {
		msg := p.scrub(err.Error())
		p.ev.Outcome = audit.OutcomeError
		p.ev.Step = StepExecute
		// The tool chose the text: the record and the span hold a bounded
		// part of it (the caller gets the whole error).
		p.ev.Error = clip(msg)
		span.SetAttributes(AttrOutcome.String(audit.OutcomeError))
		span.SetStatus(codes.Error, p.ev.Error)
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

// authorize decides req and records the decision in the span and event. It
// reports denied, with the call's error, when the call may not go ahead.
func (p *call) authorize(ctx context.Context, req *policy.Request) (policy.Decision, bool, error) {
	span := p.span
	t0 := p.clock()
	d, err := p.g.decide(ctx, req)
	p.took(timeAuthorize, t0)
	if err != nil {
		span.AddEvent(EventAuthorize, trace.WithAttributes(AttrDecision.String(audit.Deny), AttrReason.String("engine error")))
		_, derr := p.deny(ctx, StepAuthorize, "policy engine could not decide", nil, fmt.Errorf("%w: %w", ErrPolicy, err))
		return d, true, derr
	}
	noteDecision(span, &p.ev, d, AttrApproval.Bool(req.Approval.Granted))
	if d.Allowed {
		return d, false, nil
	}
	var cause error
	if len(d.Errors) > 0 {
		msgs := make([]string, len(d.Errors))
		for i, e := range d.Errors {
			msgs[i] = e.PolicyID + ": " + e.Message
		}
		cause = fmt.Errorf("%w: evaluation errors: %s", ErrPolicy, strings.Join(msgs, "; "))
	}
	_, derr := p.deny(ctx, StepAuthorize, d.Reason, d.Policies, cause)
	return d, true, derr
}

// lease gets every credential the tool declares. It reports denied, with
// the call's return values, when the call may not go ahead. Each lease the
// broker issues, refreshes or fails to get for this call is audited and
// added to the span; a lease event that cannot be audited denies the call.
func (p *call) lease(ctx context.Context, task *Task) (*Result, error, bool) {
	g := p.g
	if g.cfg.broker == nil {
		res, err := p.deny(ctx, StepCredential, "no credential broker configured", nil, ErrCredential)
		return res, err, true
	}
	if err := task.markLeased(); err != nil {
		res, derr := p.taskEnded(ctx, err)
		return res, derr, true
	}
	// Whatever happens below, a task that ended meanwhile may have been
	// revoked before these leases existed: revoke again.
	defer func() {
		if task.checkOpen() != nil {
			task.revokeAgain(ctx)
		}
	}()
	var (
		mu     sync.Mutex
		events []credentials.Event
	)
	lctx := credentials.WithObserverContext(ctx, func(_ context.Context, e credentials.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	jwt, _ := g.cfg.identity.(identity.JWTIssuer)
	var failed error
	var failedReq credentials.Requirement
	t0 := p.clock()
	for _, r := range p.tool.Credentials {
		cred, err := g.cfg.broker.Lease(lctx, credentials.Request{
			Requirement: r, TaskID: task.spec.ID, TaskKey: task.leaseKey, Agent: p.ev.Agent, NotAfter: task.deadline,
			JWTIssuer: jwt, UserToken: task.userToken,
		})
		if err != nil {
			failed, failedReq = err, r
			break
		}
		p.creds = append(p.creds, cred)
		p.ev.Leases = append(p.ev.Leases, cred.LeaseID)
	}
	p.took(timeCredential, t0)
	mu.Lock()
	evs := events
	events = nil
	mu.Unlock()
	kinds, aerr := p.recordLeaseEvents(ctx, task, evs, failed != nil)
	if failed != nil {
		p.span.AddEvent(EventCredential, trace.WithAttributes(AttrCredentialEvent.String(string(credentials.EventFailed)),
			AttrProvider.String(failedReq.Provider), AttrAudience.String(failedReq.Audience), AttrOutcome.String(audit.OutcomeError)))
		res, derr := p.deny(ctx, StepCredential, fmt.Sprintf("credential %q unavailable", failedReq.Name), nil,
			fmt.Errorf("%w: %w", ErrCredential, errors.Join(failed, aerr)))
		return res, derr, true
	}
	// Leases issued for earlier calls whose records could not be written.
	for _, c := range p.creds {
		rec, ok, err := task.takeUnaudited(ctx, c.LeaseID)
		if err != nil {
			aerr = errors.Join(aerr, err)
			continue
		}
		if ok {
			if err := g.rewriteAudit(ctx, rec); err != nil {
				task.setUnaudited(c.LeaseID, rec)
				aerr = errors.Join(aerr, err)
			}
		}
	}
	if aerr != nil {
		res, derr := p.deny(ctx, StepCredential, "credential lease not audited", nil, aerr)
		return res, derr, true
	}
	for _, c := range p.creds {
		kind, ok := kinds[c.LeaseID]
		if !ok {
			kind = "cached"
		}
		p.span.AddEvent(EventCredential, trace.WithAttributes(
			AttrCredentialEvent.String(string(kind)),
			AttrLeaseID.String(c.LeaseID),
			AttrProvider.String(c.Provider),
			AttrAudience.String(c.Audience),
			AttrScopes.StringSlice(c.Scopes),
			AttrExpiresAt.String(c.ExpiresAt.UTC().Format(time.RFC3339)),
			AttrOutcome.String(audit.OutcomeOK),
		))
	}
	if err := task.checkOpen(); err != nil {
		res, derr := p.taskEnded(ctx, err)
		return res, derr, true
	}
	return nil, nil, false
}

// recordLeaseEvents audits the lease events the call caused and adds to the
// span those other than issuance (a failure, when the call did not get its
// credential, is added by the caller). It returns how each lease issued
// for the call came to be, and the audit failures. A lease whose issue
// record failed is noted in the task, to be audited before its next use.
func (p *call) recordLeaseEvents(ctx context.Context, task *Task, evs []credentials.Event, failed bool) (map[string]credentials.EventKind, error) {
	var (
		aerr  error
		kinds map[string]credentials.EventKind
	)
	for _, e := range evs {
		rec := p.credentialEvent(e)
		lease := e.Kind == credentials.EventIssued || e.Kind == credentials.EventRefreshed
		var writing *unauditedLease
		if lease {
			// Noted before the write, so that until it ends the lease,
			// cached for the task, is used by no other call, and kept
			// if the write fails, for the next call to write.
			writing = task.writingLease(e.LeaseID, rec)
		}
		werr := p.g.writeAudit(ctx, rec)
		if writing != nil {
			task.wroteLease(e.LeaseID, writing, werr == nil)
		}
		aerr = errors.Join(aerr, werr)
		switch {
		case lease:
			if kinds == nil {
				kinds = map[string]credentials.EventKind{}
			}
			kinds[e.LeaseID] = e.Kind
		case e.Kind != credentials.EventFailed || !failed:
			p.span.AddEvent(EventCredential, trace.WithAttributes(credentialAttrs(e)...))
		}
	}
	return kinds, aerr
}

// credentialEvent is the audit record of a lease event caused by the call.
func (p *call) credentialEvent(e credentials.Event) audit.Event {
	ev := audit.Event{
		Time: e.Time, Agent: p.ev.Agent, Chain: p.ev.Chain, Task: p.ev.Task, OnBehalfOf: p.ev.OnBehalfOf,
		Tool: p.ev.Tool, Toolset: p.ev.Toolset, CallID: p.ev.CallID, TraceID: p.ev.TraceID, SpanID: p.ev.SpanID,
	}
	ev = leaseRecord(ev, e)
	ev.Error = p.scrub(ev.Error) // a provider's error may quote what it was given
	return ev
}

// leaseRecord fills ev, the frame of an audit record, with lease event e.
func leaseRecord(ev audit.Event, e credentials.Event) audit.Event {
	switch e.Kind {
	case credentials.EventIssued:
		ev.Kind = audit.KindCredentialIssue
	case credentials.EventRefreshed:
		ev.Kind = audit.KindCredentialRefresh
	case credentials.EventFailed:
		ev.Kind = audit.KindCredentialFail
	default:
		ev.Kind = audit.KindCredentialRevoke
	}
	if e.LeaseID != "" {
		ev.Leases = []string{e.LeaseID}
	}
	ev.Credential = &audit.Credential{
		Name: e.Name, Provider: e.Provider, Audience: e.Audience, Resources: e.Resources, Scopes: e.Scopes,
		ExpiresAt: e.ExpiresAt, Replaces: e.Replaces, Attempts: e.Attempts, NotRevocable: e.NotRevocable,
	}
	ev.Outcome = audit.OutcomeOK
	if e.Err != nil {
		ev.Outcome = audit.OutcomeError
		ev.Error = e.Err.Error()
	}
	return ev
}

// credentialAttrs are the span attributes of a lease event.
func credentialAttrs(e credentials.Event) []attribute.KeyValue {
	a := []attribute.KeyValue{
		AttrCredentialEvent.String(string(e.Kind)),
		AttrProvider.String(e.Provider),
		AttrAudience.String(e.Audience),
		AttrScopes.StringSlice(e.Scopes),
	}
	if e.LeaseID != "" {
		a = append(a, AttrLeaseID.String(e.LeaseID), AttrExpiresAt.String(e.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	if e.Err != nil {
		a = append(a, AttrOutcome.String(audit.OutcomeError))
	} else {
		a = append(a, AttrOutcome.String(audit.OutcomeOK))
	}
	return a
}

// splitObligations separates the approval obligations, which the Approver
// fulfils, from the others.
func splitObligations(obs []policy.Obligation) (approval, others []policy.Obligation) {
	for _, o := range obs {
		if o.Name == policy.ObligationApproval {
			approval = append(approval, o)
		} else {
			others = append(others, o)
		}
	}
	return approval, others
}

// noteDecision records decision d in the span and the audit event: the
// decision, its policies and revision, and any shadow decisions.
func noteDecision(span trace.Span, ev *audit.Event, d policy.Decision, extra ...attribute.KeyValue) {
	ev.Policies = d.Policies
	ev.Revision = d.Revision
	ev.Shadow = nil
	decision := decisionString(d.Allowed)
	span.AddEvent(EventAuthorize, trace.WithAttributes(append([]attribute.KeyValue{
		AttrDecision.String(decision),
		AttrPolicies.StringSlice(d.Policies),
		AttrRevision.String(d.Revision),
		AttrReason.String(d.Reason),
	}, extra...)...))
	span.SetAttributes(AttrPolicies.StringSlice(d.Policies), AttrRevision.String(d.Revision))
	for _, sh := range d.Shadow {
		sd := decisionString(sh.Allowed)
		as := audit.Shadow{Mode: sh.Mode, Revision: sh.Revision, Decision: sd, Policies: sh.Policies, Reason: sh.Reason}
		obs := make([]string, 0, len(sh.Obligations))
		for _, o := range sh.Obligations {
			as.Obligations = append(as.Obligations, audit.Obligation{Name: o.Name, Value: o.Value, Policy: o.PolicyID})
			obs = append(obs, o.Name+"="+o.Value)
		}
		ev.Shadow = append(ev.Shadow, as)
		// One event per differing decision, and an attribute per mode so
		// that "calls the shadow set would deny" is a simple query.
		span.AddEvent(EventShadow, trace.WithAttributes(
			AttrShadowMode.String(sh.Mode),
			AttrDecision.String(sd),
			AttrPolicies.StringSlice(sh.Policies),
			AttrRevision.String(sh.Revision),
			AttrReason.String(sh.Reason),
			AttrObligations.StringSlice(obs),
		))
		span.SetAttributes(attribute.String(string(AttrShadowDecision)+"."+sh.Mode, sd))
	}
}

func decisionString(allowed bool) string {
	if allowed {
		return audit.Allow
	}
	return audit.Deny
}

// decide asks the engine about req for the acting agent and then for each
// agent up its delegation chain: a sub-agent never gets more than the agents
// that delegated to it. The first denial decides; when all allow, the acting
// agent's decision stands, with the obligations of every decision.
//
// Shadow decisions (a shadow set, @log_only policies) are combined the same
// way, per mode, so that they say what the whole chain would have decided:
// the parents are asked even when the acting agent is denied if a shadow
// decision might allow it.
func (g *Guard) decide(ctx context.Context, req *policy.Request) (policy.Decision, error) {
	d, err := g.cfg.engine.Decide(ctx, req)
	if err != nil || len(req.Agent.Chain) == 0 || (!d.Allowed && len(d.Shadow) == 0) {
		return d, err
	}
	ds := []policy.Decision{d}
	for i, parent := range req.Agent.Chain {
		preq := *req
		preq.Agent = identity.Identity{ID: parent, Chain: req.Agent.Chain[:i]}
		pd, err := g.cfg.engine.Decide(ctx, &preq)
		if err != nil {
			if !d.Allowed {
				// Denied anyway; what the shadow would say is unknown.
				d.Shadow = nil
				return d, nil
			}
			return pd, fmt.Errorf("delegating agent %s: %w", parent, err)
		}
		ds = append(ds, pd)
		if !pd.Allowed && len(pd.Shadow) == 0 {
			break // denied in every mode: the agents above cannot change that
		}
	}
	return combine(req.Agent.Chain, ds), nil
}

// combine joins the decisions for the acting agent (ds[0]) and the agents
// up its chain (ds[i] for chain[i-1]), and their shadow decisions per mode.
func combine(chain []spiffeid.ID, ds []policy.Decision) policy.Decision {
	out := combineEnforced(chain, ds)
	var modes []string
	for _, d := range ds {
		for _, sh := range d.Shadow {
			if !slices.Contains(modes, sh.Mode) {
				modes = append(modes, sh.Mode)
			}
		}
	}
	for _, m := range modes {
		would := make([]policy.Decision, len(ds))
		revision := ""
		for i, d := range ds {
			would[i] = d
			for _, sh := range d.Shadow {
				if sh.Mode == m {
					would[i] = policy.Decision{Allowed: sh.Allowed, Policies: sh.Policies, Reason: sh.Reason,
						Errors: sh.Errors, Obligations: sh.Obligations, Revision: sh.Revision}
					revision = sh.Revision
				}
			}
		}
		w := combineEnforced(chain, would)
		if w.Allowed != out.Allowed || !slices.Equal(w.Obligations, out.Obligations) {
			out.Shadow = append(out.Shadow, policy.ShadowDecision{Mode: m, Revision: revision, Allowed: w.Allowed,
				Policies: w.Policies, Reason: w.Reason, Errors: w.Errors, Obligations: w.Obligations})
		}
	}
	return out
}

// combineEnforced is the first denial (ds in chain order), or the acting
// agent's permit with every decision's obligations, each once.
func combineEnforced(chain []spiffeid.ID, ds []policy.Decision) policy.Decision {
	for i, d := range ds {
		if !d.Allowed {
			if i > 0 {
				d.Reason = "delegating agent " + chain[i-1].String() + " may not make this call: " + d.Reason
			}
			d.Shadow = nil
			return d
		}
	}
	out := ds[0]
	out.Shadow = nil
	out.Obligations = slices.Clone(out.Obligations)
	for _, pd := range ds[1:] {
		for _, o := range pd.Obligations {
			if !slices.Contains(out.Obligations, o) {
				out.Obligations = append(out.Obligations, o)
			}
		}
	}
	return out
}

// approve asks the approver. A nil error means granted in time, for this
// call; otherwise the call was denied and recorded, and the error is the
// call's.
func (p *call) approve(ctx context.Context, id identity.Identity, task *Task, obs []policy.Obligation, d policy.Decision) (Approval, error) {
	kinds := make([]string, 0, len(obs))
	for _, o := range obs {
		kinds = append(kinds, o.Value)
	}
	kinds = canonical.SortedSet(kinds)
	req, err := p.g.newApprovalRequest(ApprovalRequest{
		Action:      ApproveCall,
		Agent:       id,
		Tool:        p.tool.Name,
		Toolset:     p.tool.Toolset,
		Fingerprint: p.g.pins().fingerprint(p.tool),
		CallID:      p.c.ID,
		Args:        p.c.Args,
		Kind:        strings.Join(kinds, ","),
		Reason:      d.Reason,
		Policies:    d.Policies,
	}, task)
	if err != nil {
		_, derr := p.deny(ctx, StepApprove, "approval request could not be made", d.Policies, fmt.Errorf("%w: %w", ErrApprovalRequired, err))
		return Approval{}, derr
	}
	t0 := p.clock()
	a, reason, cause := p.g.seekApproval(ctx, req, &p.ev, p.span, p.scrub)
	if p.g.cfg.approver != nil {
		p.took(timeApprove, t0) // the time the approver took
	}
	if cause == nil {
		return a, nil
	}
	_, derr := p.deny(ctx, StepApprove, reason, d.Policies, cause)
	return a, derr
}

// approvalDenial says why an approval of the given status does not count.
func approvalDenial(status string, a Approval) string {
	switch status {
	case ApprovalUnavailable:
		return "policy requires approval and no approver is configured"
	case ApprovalTimeout:
		return "approval timed out"
	case ApprovalError:
		return "approver failed"
	case ApprovalExpired:
		return "approval came after the request expired"
	case ApprovalUnbound:
		return "approval answers another request"
	case ApprovalPending:
		return "waiting for a human's approval"
	}
	reason := "approval refused"
	if len(a.Approvers) > 0 {
		reason += " by " + strings.Join(a.Approvers, ", ")
	}
	if a.Reason != "" {
		reason += ": " + a.Reason
	}
	return reason
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
// If the call's record was already written (a panic in the sink or after
// it), it is not written twice.
func (p *call) deny(ctx context.Context, step, reason string, policies []string, cause error) (*Result, error) {
	if p.task != nil && step != StepTask && step != StepSuspend && ctx.Err() != nil {
		// A step cut short because the call's task ended, which cancels
		// its context (Suspend, Close, End): the call is denied for that.
		if err := p.task.checkOpen(); err != nil {
			return p.taskEnded(ctx, err)
		}
	}
	p.ev.Decision = audit.Deny
	p.ev.Outcome = audit.OutcomeDenied
	p.ev.Step = step
	if policies != nil {
		p.ev.Policies = policies
	}
	reason = p.scrub(reason)
	if cause != nil {
		if m := p.scrub(cause.Error()); m != cause.Error() {
			cause = &scrubbedError{msg: m, err: cause}
		}
	}
	derr := &DenyError{Tool: p.tool.Name, CallID: p.c.ID, Step: step, Policies: slices.Clone(p.ev.Policies), Reason: reason, Err: cause}
	msg := derr.Error()
	p.ev.Reason = reason
	p.ev.Error = msg
	p.span.SetAttributes(AttrDecision.String(audit.Deny), AttrStep.String(step), AttrReason.String(reason),
		attribute.String(string(semconv.ErrorTypeKey), "agentguard.denied"))
	p.span.SetStatus(codes.Error, msg)
	if p.recorded {
		return nil, derr
	}
	if aerr := p.finish(ctx); aerr != nil {
		return nil, errors.Join(derr, aerr)
	}
	return nil, derr
}

// taskEnded denies a call whose task, or a task it works for, has ended
// (err wraps ErrTaskEnded): at step StepSuspend when a suspension ended it,
// so that a call under way when its agent was suspended is denied as
// suspended.
func (p *call) taskEnded(ctx context.Context, err error) (*Result, error) {
	if errors.Is(err, ErrSuspended) {
		return p.deny(ctx, StepSuspend, "task ended: agent suspended", nil, err)
	}
	return p.deny(ctx, StepTask, "task has ended", nil, err)
}

// maxRecordedError bounds the text of a tool's error that goes into its
// audit record and span.
const maxRecordedError = 8 << 10

// clip returns s, or its first maxRecordedError bytes (cut at a rune
// boundary) and how much was cut.
func clip(s string) string {
	if len(s) <= maxRecordedError {
		return s
	}
	cut := maxRecordedError
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… [%d bytes cut]", len(s)-cut)
}

// scrubbedError shows a cause with the call's credential values removed;
// errors.Is and errors.As still see the cause.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// finish writes the call's audit record, once.
func (p *call) finish(ctx context.Context) error {
	p.recorded = true
	if p.task != nil && len(p.creds) > 0 {
		p.task.noteLeased(p.creds)
	}
	if p.args != nil {
		p.ev.Args = p.tool.recordedArgs(p.args, p.argsScrubber())
	}
	p.ev.Duration = p.g.cfg.now().Sub(p.start)
	return p.g.writeAudit(ctx, p.ev)
}

// argsScrubber returns the scrubber of the call's recorded arguments (see
// ArgsAudit): the values of the call's credentials, of those its task's
// calls used and of the user token of the task in ctx. The task keeps it
// from call to call; it is built here only for a call with more
// credentials than the task keeps, or denied before its task was known.
func (p *call) argsScrubber() *credentials.Scrubber {
	if p.task != nil {
		if sc := p.task.argsScrubber(p.creds); sc != nil {
			return sc
		}
	}
	creds := slices.Clone(p.creds)
	if p.task != nil {
		creds = append(creds, p.task.leasedCredentials()...)
	}
	if !p.userToken.IsZero() {
		creds = append(creds, &credentials.Credential{Secret: p.userToken})
	}
	return credentials.NewScrubber(creds...)
}

// scrub removes from s the values of the call's credentials, of those its
// task leased before (a denial comes before the call's own lease, and may
// quote the task's: an approver's comment does) and of the task's user
// token: the scrubber the call's audit record is cleaned with.
func (p *call) scrub(s string) string {
	return p.argsScrubber().Scrub(s)
}
