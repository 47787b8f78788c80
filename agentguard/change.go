package agentguard

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/internal/canonical"
	"github.com/agentguard/go-sdk/policy"
)

// What happened to a tool or prompt (ToolChange.Change, and policy's
// context.args.change).
const (
	// ChangeAdded: the tool or prompt is new; nothing was pinned for it.
	ChangeAdded = "added"
	// ChangeChanged: its definition or text differs from the one pinned.
	ChangeChanged = "changed"
	// ChangeRemoved: the tool server no longer lists the tool (Sync only).
	ChangeRemoved = "removed"
)

// Span attributes of a review of a change (spans "change_toolset <tool>"
// and "change_prompt <name>").
const (
	// AttrChange is ChangeAdded or ChangeChanged.
	AttrChange = attribute.Key("agentguard.change")
	// AttrChangeName is the tool's or the prompt's name.
	AttrChangeName = attribute.Key("agentguard.change.name")
	// AttrChangeFingerprint is the new definition's or prompt's digest,
	// AttrChangePrevious the one pinned before (empty for a new one).
	AttrChangeFingerprint = attribute.Key("agentguard.change.fingerprint")
	AttrChangePrevious    = attribute.Key("agentguard.change.previous")
)

// ToolChange is a tool definition that is new, changed or gone.
type ToolChange struct {
	Toolset, Name string
	// Change is ChangeAdded, ChangeChanged or ChangeRemoved.
	Change string
	// Fingerprint is the definition's now (for ChangeRemoved, the one
	// removed).
	Fingerprint string
	// Previous is the fingerprint it replaces: for Pending and Review the
	// one pinned, for Sync the one registered before; empty for none.
	Previous string
	// Approved is set by Review when the change was approved and pinned.
	Approved bool
}

// ReviewTool reviews t's definition if it is not pinned as it is: for a
// tool called outside any registry (Invoke, Wrap, Middleware), keyed by
// t.Toolset as it is. Policy must permit Action::"change_toolset" on t and
// an approver must grant the change; then t's fingerprint is pinned, and
// calls of t as it is now go ahead. A refusal is a *ChangeError, and the
// definition pinned before, if any, stays in force. Each review is audited
// (audit.KindToolsetChange) and traced. A tool pinned as it is needs no
// review: ReviewTool returns nil.
func (g *Guard) ReviewTool(ctx context.Context, t *Tool) error {
	if err := t.validate(false); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTool, err)
	}
	t = t.clone()
	_, _, err := g.reviewTool(ctx, t, t.Fingerprint())
	return err
}

// reviewTool reviews t, whose fingerprint is fp, unless it is pinned so. It
// reports the change and whether there was one to review.
func (g *Guard) reviewTool(ctx context.Context, t *Tool, fp string) (ToolChange, bool, error) {
	l := g.pins().lock
	prev, pinned := l.Tool(t.Toolset, t.Name)
	if pinned && prev == fp {
		return ToolChange{}, false, nil
	}
	tc := ToolChange{Toolset: t.Toolset, Name: t.Name, Change: ChangeAdded, Fingerprint: fp, Previous: prev}
	if pinned {
		tc.Change = ChangeChanged
	}
	err := g.review(ctx, &change{
		action: ApproveToolChange, name: t.Name, toolset: t.Toolset, tool: t,
		change: tc.Change, fingerprint: fp, previous: prev,
		policyArgs: map[string]any{"toolset": t.Toolset},
		shown:      shownTool(t),
		swap:       func(record func() error) error { return l.swapTool(t.Toolset, t.Name, prev, fp, record) },
	})
	tc.Approved = err == nil
	return tc, true, err
}

// change is a new or changed tool definition or prompt under review.
type change struct {
	// action is ApproveToolChange or ApprovePromptChange, policy's action.
	action        string
	name, toolset string
	// tool is the new definition, the resource of Action::"change_toolset".
	tool                  *Tool
	change                string
	fingerprint, previous string
	policyArgs, shown     map[string]any // beside change, fingerprint and previous
	// swap pins the change, approved, if the pin is still previous; it
	// runs record first, and pins only if it succeeds (Lock.swapTool).
	swap func(record func() error) error
}

// resourceTool names the tool whose calls policy counts in
// context.task.tool_calls: the tool changed, none for a prompt.
func (c *change) resourceTool() string {
	if c.tool == nil {
		return ""
	}
	return c.name
}

// args returns the canonical JSON of extra with the change's kind and
// fingerprints. Only values of validated tools and strings reach here, so
// it does not fail; if it did, the change is denied.
func (c *change) args(extra map[string]any) (json.RawMessage, error) {
	m := map[string]any{"change": c.change, "fingerprint": c.fingerprint, "previous": c.previous}
	for k, v := range extra {
		m[k] = v
	}
	b, err := canonical.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: change arguments: %w", ErrInvalidTool, err)
	}
	return b, nil
}

// reviewing is the state of one review as it moves through its steps.
type reviewing struct {
	g        *Guard
	c        *change
	span     trace.Span
	ev       audit.Event
	step     string
	recorded bool
}

// review asks policy and then an approver whether c may be trusted, and
// pins it if so. It writes one audit record and one span either way; in
// strict audit mode a change whose record cannot be written is not pinned.
func (g *Guard) review(ctx context.Context, c *change) (err error) {
	kind := audit.KindToolsetChange
	attrs := []attribute.KeyValue{AttrChange.String(c.change), AttrChangeName.String(c.name),
		AttrChangeFingerprint.String(c.fingerprint), AttrChangePrevious.String(c.previous)}
	if c.action == ApprovePromptChange {
		kind = audit.KindPromptChange
	} else {
		attrs = append(attrs, semconv.GenAIToolName(c.name), AttrToolset.String(c.toolset))
	}
	start := g.cfg.now()
	ctx, span := g.tracer.Start(ctx, c.action+" "+c.name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	defer span.End()
	r := &reviewing{g: g, c: c, span: span, ev: audit.Event{
		Time: start, Kind: kind, Toolset: c.toolset,
		Change: &audit.Change{Action: c.action, Name: c.name, Toolset: c.toolset, Fingerprint: c.fingerprint, Previous: c.previous},
	}}
	if c.tool != nil {
		r.ev.Tool = c.name
	}
	if sc := span.SpanContext(); sc.HasTraceID() {
		r.ev.TraceID, r.ev.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	defer func() {
		if v := recover(); v != nil {
			err = r.deny(ctx, r.step, "internal failure", nil, fmt.Errorf("%w: panic: %v", ErrInternal, v))
		}
	}()
	return r.steps(ctx)
}

func (r *reviewing) steps(ctx context.Context) error {
	g, c := r.g, r.c
	r.step = StepGuard
	if g.closed.Load() {
		return r.deny(ctx, StepGuard, "guard closed", nil, ErrClosed)
	}
	r.step = StepTask
	task, inTask := TaskFromContext(ctx)
	var state policy.Task
	if inTask {
		if task.g != g {
			return r.deny(ctx, StepTask, "task was started by another guard", nil, ErrForeignTask)
		}
		r.ev.Task, r.ev.OnBehalfOf = task.spec.ID, task.spec.OnBehalfOf
		r.span.SetAttributes(AttrTaskID.String(task.spec.ID))
		var err error
		if state, err = task.snapshot(c.resourceTool(), r.ev.Time); err != nil {
			return r.deny(ctx, StepTask, "task has ended", nil, err)
		}
	}

	r.step = StepIdentify
	id, reason, err := g.identify(ctx)
	if !id.ID.IsZero() {
		r.setAgent(id)
	}
	if err != nil {
		return r.deny(ctx, StepIdentify, reason, nil, err)
	}
	r.step = StepSuspend
	if err := g.checkSuspended(id); err != nil {
		return r.deny(ctx, StepSuspend, "agent suspended", nil, err)
	}

	r.step = StepAuthorize
	args, err := c.args(c.policyArgs)
	if err != nil {
		return r.deny(ctx, StepAuthorize, "change not describable", nil, err)
	}
	shown, err := c.args(c.shown)
	if err != nil {
		return r.deny(ctx, StepAuthorize, "change not describable", nil, err)
	}
	req := &policy.Request{
		Agent: id, Action: c.action, Args: args, Task: state,
		CallID: newID("change-"), Time: r.ev.Time,
	}
	if c.tool != nil {
		req.Tool = c.tool.policyTool()
	}
	if c.action == ApprovePromptChange {
		// The agents up a delegation chain are asked about this agent's
		// prompt, not their own.
		req.Subject = id.ID
	}
	d, err := r.authorize(ctx, req)
	if err != nil {
		return err
	}

	// Policy and an approver: every change is shown to a human.
	r.step = StepApprove
	asked, _ := splitObligations(d.Obligations)
	kinds := make([]string, 0, len(asked))
	for _, o := range asked {
		kinds = append(kinds, o.Value)
	}
	areq, err := g.newApprovalRequest(ApprovalRequest{
		Action: c.action, Agent: id, Tool: c.name, Toolset: c.toolset, Fingerprint: c.fingerprint, CallID: req.CallID,
		Args: shown, Kind: cmp.Or(strings.Join(canonical.SortedSet(kinds), ","), c.action),
		Reason: d.Reason, Policies: d.Policies,
	}, task) // nil outside any task
	if err != nil {
		return r.deny(ctx, StepApprove, "approval request could not be made", d.Policies, fmt.Errorf("%w: %w", ErrApprovalRequired, err))
	}
	a, reason, cause := g.seekApproval(ctx, areq, &r.ev, r.span, nil)
	if cause != nil {
		return r.deny(ctx, StepApprove, reason, d.Policies, cause)
	}

	// Decide again, now, with the approval: the wait may have been long,
	// and policy may require the approval itself (context.approval).
	r.step = StepAuthorize
	req.Time = g.cfg.now()
	if inTask {
		if req.Task, err = task.snapshot(c.resourceTool(), req.Time); err != nil {
			return r.deny(ctx, StepTask, "task has ended", nil, err)
		}
	}
	req.Approval = policy.Approval{Granted: true, Approvers: a.Approvers}
	if d, err = r.authorize(ctx, req); err != nil {
		return err
	}
	again, _ := splitObligations(d.Obligations)
	for _, o := range again {
		if !slices.Contains(kinds, o.Value) {
			return r.deny(ctx, StepApprove, fmt.Sprintf("policy %s now requires approval %q, which was not asked for", o.PolicyID, o.Value), d.Policies, ErrApprovalRequired)
		}
	}
	r.step = StepSuspend
	if err := g.checkSuspended(id); err != nil {
		return r.deny(ctx, StepSuspend, "agent suspended", nil, err)
	}
	if g.closed.Load() {
		return r.deny(ctx, StepGuard, "guard closed", nil, ErrClosed)
	}

	// Pinned only if the pin is still the one reviewed, so that a review
	// that ends late never puts an older change back; and recorded first,
	// so that in strict mode there is no pin without its record, and no
	// record of a pin that was not made.
	r.step = StepAudit
	err = c.swap(func() error {
		r.ev.Decision, r.ev.Outcome = audit.Allow, audit.OutcomeOK
		r.span.SetAttributes(AttrDecision.String(audit.Allow), AttrOutcome.String(audit.OutcomeOK))
		return r.finish(ctx)
	})
	switch {
	case errors.Is(err, ErrPinChanged):
		return r.deny(ctx, StepIntegrity, "the pin changed during review", d.Policies, err)
	case err != nil:
		r.span.SetStatus(codes.Error, "audit record not written")
		return r.error(StepAudit, "audit record not written; change not pinned", err)
	}
	return nil
}

// authorize decides req; it returns the call's error when the change may
// not go ahead, having recorded it.
func (r *reviewing) authorize(ctx context.Context, req *policy.Request) (policy.Decision, error) {
	d, err := r.g.decide(ctx, req)
	if err != nil {
		return d, r.deny(ctx, StepAuthorize, "policy engine could not decide", nil, fmt.Errorf("%w: %w", ErrPolicy, err))
	}
	noteDecision(r.span, &r.ev, d, AttrApproval.Bool(req.Approval.Granted))
	if !d.Allowed {
		var cause error
		if len(d.Errors) > 0 {
			cause = fmt.Errorf("%w: evaluation errors in %d policies", ErrPolicy, len(d.Errors))
		}
		return d, r.deny(ctx, StepAuthorize, d.Reason, d.Policies, cause)
	}
	if _, others := splitObligations(d.Obligations); len(others) > 0 {
		// Obligation handlers act on calls; fail closed rather than skip
		// what policy asked for.
		o := others[0]
		return d, r.deny(ctx, StepAuthorize, fmt.Sprintf("policy %s sets obligation @%s on a change, which this guard cannot fulfil", o.PolicyID, o.Name), d.Policies, ErrObligation)
	}
	return d, nil
}

func (r *reviewing) setAgent(id identity.Identity) {
	r.ev.Agent = id.ID.String()
	r.ev.Chain = id.ChainStrings()
	r.span.SetAttributes(semconv.GenAIAgentID(r.ev.Agent))
	if len(r.ev.Chain) > 0 {
		r.span.SetAttributes(AttrChain.StringSlice(r.ev.Chain))
	}
}

func (r *reviewing) error(step, reason string, cause error) *ChangeError {
	return &ChangeError{Action: r.c.action, Name: r.c.name, Toolset: r.c.toolset, Fingerprint: r.c.fingerprint,
		Step: step, Policies: slices.Clone(r.ev.Policies), Reason: reason, Err: cause}
}

// deny records the refusal and returns its error. A record already written
// (a panic in the sink or after it) is not written twice.
func (r *reviewing) deny(ctx context.Context, step, reason string, policies []string, cause error) error {
	r.ev.Decision, r.ev.Outcome, r.ev.Step, r.ev.Reason = audit.Deny, audit.OutcomeDenied, step, reason
	if policies != nil {
		r.ev.Policies = policies
	}
	err := r.error(step, reason, cause)
	r.ev.Error = err.Error()
	r.span.SetAttributes(AttrDecision.String(audit.Deny), AttrStep.String(step), AttrReason.String(reason),
		AttrOutcome.String(audit.OutcomeDenied), attribute.String(string(semconv.ErrorTypeKey), "agentguard.denied"))
	r.span.SetStatus(codes.Error, err.Error())
	if r.recorded {
		return err
	}
	if aerr := r.finish(ctx); aerr != nil {
		return errors.Join(err, aerr)
	}
	return err
}

// finish writes the review's audit record, once.
func (r *reviewing) finish(ctx context.Context) error {
	r.recorded = true
	r.ev.Duration = r.g.cfg.now().Sub(r.ev.Time)
	return r.g.writeAudit(ctx, r.ev)
}

// shownTool is what an approver is shown of a tool definition under
// review: everything its fingerprint covers.
func shownTool(t *Tool) map[string]any {
	shown := map[string]any{
		"toolset": t.Toolset, "name": t.Name, "description": t.Description,
		"input_schema": rawOrNil(t.InputSchema), "annotations": t.Annotations,
	}
	if t.Title != "" {
		shown["title"] = t.Title
	}
	if len(t.OutputSchema) > 0 {
		shown["output_schema"] = json.RawMessage(t.OutputSchema)
	}
	return shown
}

// rawOrNil is s as JSON, or nil when empty.
func rawOrNil(s json.RawMessage) any {
	if len(s) == 0 {
		return nil
	}
	return s
}
