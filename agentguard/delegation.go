package agentguard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// delegation is what a context handed to a sub-agent carries: who handed
// the task down, to whom, and the proof for handing it further across
// processes. Only Delegate and AcceptHandoff make one.
type delegation struct {
	// chain lists the delegating agents, root first.
	chain []spiffeid.ID
	// to is the only agent the context is good for.
	to spiffeid.ID
	// handoff proves chain to another process; nil when an agent of the
	// chain could not mint JWT-SVIDs.
	handoff *identity.Handoff
	// Of the delegating agent's task, for the sub-agent's task.
	onBehalfOf  string
	userToken   credentials.Secret
	sensitivity Sensitivity
	taint       []string
}

// inherit makes spec, the task of a sub-agent, serve the delegating task's
// user and handle data at least as sensitive. A spec naming another user is
// refused. A nil delegation changes nothing.
func (d *delegation) inherit(spec *TaskSpec) error {
	if d == nil {
		return nil
	}
	switch {
	case spec.OnBehalfOf == "":
		spec.OnBehalfOf = d.onBehalfOf
	case d.onBehalfOf != "" && spec.OnBehalfOf != d.onBehalfOf:
		return fmt.Errorf("agentguard: start task: %w: the delegating task acts on behalf of %q, not %q", ErrDelegation, d.onBehalfOf, spec.OnBehalfOf)
	}
	if spec.UserToken.IsZero() && spec.OnBehalfOf == d.onBehalfOf {
		spec.UserToken = d.userToken
	}
	spec.Sensitivity = max(spec.Sensitivity, d.sensitivity)
	return nil
}

// inheritedTaint is the taint a sub-agent's task starts with: what the
// delegating task had seen when it handed the work down.
func (d *delegation) inheritedTaint() []string {
	if d == nil {
		return nil
	}
	return slices.Clone(d.taint)
}

type delegationKey struct{}

func delegationFrom(ctx context.Context) *delegation {
	d, _ := ctx.Value(delegationKey{}).(*delegation)
	return d
}

// identify returns the acting agent: its verified identity from the
// source, with the chain of the delegation ctx carries. It fails, with a
// reason for the audit record, when there is no identity, when ctx was
// handed to another agent, or when the chain is longer than allowed. It
// records a change in what the source gives (see noteIdentity); in strict
// audit mode, a change that cannot be recorded fails it too.
func (g *Guard) identify(ctx context.Context) (identity.Identity, string, error) {
	before := g.identities.seen.Load()
	id, err := g.cfg.identity.Identity(ctx)
	if err == nil && id.IsZero() {
		err = identity.ErrNoIdentity
	}
	nerr := g.noteIdentity(ctx, before, &id, err)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrNoIdentity, err)
		if nerr != nil {
			err = errors.Join(err, nerr)
		}
		return identity.Identity{}, "agent identity unavailable", err
	}
	if nerr != nil {
		return id, "identity change not audited", nerr
	}
	if d := delegationFrom(ctx); d != nil {
		if d.to != id.ID {
			return id, "task was handed to another agent",
				fmt.Errorf("%w: the task was handed to %s, not to %s", ErrDelegation, d.to, id.ID)
		}
		if len(id.Chain) > 0 {
			return id, "two delegation chains",
				fmt.Errorf("%w: the identity source and the context both give a delegation chain", ErrDelegation)
		}
		id.Chain = slices.Clone(d.chain)
	}
	if len(id.Chain) > g.cfg.maxDepth {
		return id, "delegation chain too long",
			fmt.Errorf("%w: chain of %d delegations exceeds the limit of %d", ErrDelegation, len(id.Chain), g.cfg.maxDepth)
	}
	return id, "", nil
}

// Delegate hands the task ctx belongs to over to the agent to, in this
// process. It returns the context the sub-agent works with: the sub-agent's
// guard, whose identity must be to, sees the chain of delegating agents on
// every call and authorizes each call for the sub-agent and for every agent
// up the chain (attenuation). The sub-agent starts its own task with
// StartTask on that context; the task inherits OnBehalfOf and at least the
// sensitivity of the delegating task, and ends when the delegating task's
// context is done.
//
// The handoff is itself authorized: policy must permit Action::"delegate"
// for the delegating agent (and every agent above it) on resource
// Agent::"<to>", and the chain may not grow past WithMaxDelegationDepth. It
// is audited (audit.KindDelegate) either way. When the delegating agent can
// mint JWT-SVIDs (identity.JWTIssuer), the context also carries the proof
// the sub-agent needs to hand the task on to another process.
func (g *Guard) Delegate(ctx context.Context, to spiffeid.ID) (context.Context, error) {
	d, err := g.delegate(ctx, to, false)
	if err != nil {
		return ctx, err
	}
	return withDelegation(ctx, d), nil
}

// Handoff hands the task ctx belongs to over to the agent to, in another
// process. It is authorized and audited as Delegate is, and returns the
// proof to send with the request, in the identity.HandoffHeader header: a
// JWT-SVID of this agent addressed to to, after those of the agents up the
// chain. The receiving guard checks it with AcceptHandoff. The guard's
// identity source must be an identity.JWTIssuer.
func (g *Guard) Handoff(ctx context.Context, to spiffeid.ID) (*identity.Handoff, error) {
	d, err := g.delegate(ctx, to, true)
	if err != nil {
		return nil, err
	}
	return d.handoff, nil
}

func withDelegation(ctx context.Context, d *delegation) context.Context {
	ctx = context.WithValue(ctx, delegationKey{}, d)
	// The delegating agent's task stays with it: the sub-agent starts its own.
	return context.WithValue(ctx, taskKey{}, (*Task)(nil))
}

// delegating is the state of one handoff as it is checked.
type delegating struct {
	g    *Guard
	span trace.Span
	ev   audit.Event
	// from is the delegating agent, once known.
	from identity.Identity
}

func (g *Guard) beginDelegation(ctx context.Context, kind audit.Kind, to spiffeid.ID) (context.Context, *delegating) {
	start := g.cfg.now()
	name := "delegate"
	if kind == audit.KindHandoffAccept {
		name = "accept_handoff"
	}
	ctx, span := g.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal))
	d := &delegating{g: g, span: span, ev: audit.Event{Time: start, Kind: kind}}
	if !to.IsZero() {
		d.ev.Delegatee = to.String()
		span.SetAttributes(AttrDelegatee.String(d.ev.Delegatee))
	}
	if sc := span.SpanContext(); sc.HasTraceID() {
		d.ev.TraceID, d.ev.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	return ctx, d
}

func (d *delegating) setAgent(id identity.Identity) {
	d.from = id
	d.ev.Agent = id.ID.String()
	d.ev.Chain = id.ChainStrings()
	d.span.SetAttributes(semconv.GenAIAgentID(d.ev.Agent))
	if len(d.ev.Chain) > 0 {
		d.span.SetAttributes(AttrChain.StringSlice(d.ev.Chain))
	}
}

// deny records the refusal and returns its error.
func (d *delegating) deny(ctx context.Context, step, reason string, policies []string, cause error) error {
	d.ev.Decision, d.ev.Outcome, d.ev.Step, d.ev.Reason = audit.Deny, audit.OutcomeDenied, step, reason
	if policies != nil {
		d.ev.Policies = policies
	}
	err := &DelegationError{From: d.fromString(), To: d.ev.Delegatee, Step: step, Policies: slices.Clone(d.ev.Policies), Reason: reason, Err: cause}
	d.ev.Error = err.Error()
	d.span.SetAttributes(AttrDecision.String(audit.Deny), AttrStep.String(step), AttrReason.String(reason),
		attribute.String(string(semconv.ErrorTypeKey), "agentguard.denied"))
	d.span.SetStatus(codes.Error, err.Error())
	if aerr := d.finish(ctx); aerr != nil {
		return errors.Join(err, aerr)
	}
	return err
}

// fromString names the delegating agent with its chain, or nothing when it
// is not known.
func (d *delegating) fromString() string {
	if d.from.IsZero() {
		return ""
	}
	return d.from.String()
}

func (d *delegating) finish(ctx context.Context) error {
	d.ev.Duration = d.g.cfg.now().Sub(d.ev.Time)
	return d.g.writeAudit(ctx, d.ev)
}

// allow records the granted handoff; in strict audit mode a record that
// cannot be written refuses it.
func (d *delegating) allow(ctx context.Context) error {
	d.ev.Decision, d.ev.Outcome = audit.Allow, audit.OutcomeOK
	d.span.SetAttributes(AttrDecision.String(audit.Allow), AttrOutcome.String(audit.OutcomeOK))
	if err := d.finish(ctx); err != nil {
		d.span.SetStatus(codes.Error, "audit record not written")
		return &DelegationError{From: d.fromString(), To: d.ev.Delegatee, Step: StepAudit, Reason: "audit record not written", Err: err}
	}
	return nil
}

// authorize asks policy whether agent may hand a task to the delegatee.
func (d *delegating) authorize(ctx context.Context, agent identity.Identity, to spiffeid.ID, task policy.Task) error {
	g := d.g
	req := &policy.Request{
		Agent:     agent,
		Action:    policy.ActionDelegate,
		Delegatee: to,
		Args:      []byte("{}"),
		Task:      task,
		CallID:    newID("delegate-"),
		Time:      d.ev.Time,
	}
	dec, err := g.decide(ctx, req)
	if err != nil {
		return d.deny(ctx, StepAuthorize, "policy engine could not decide", nil, fmt.Errorf("%w: %w", ErrPolicy, err))
	}
	noteDecision(d.span, &d.ev, dec)
	if !dec.Allowed {
		var cause error
		if len(dec.Errors) > 0 {
			cause = fmt.Errorf("%w: evaluation errors in %d policies", ErrPolicy, len(dec.Errors))
		}
		reason := dec.Reason
		if len(dec.Policies) == 0 && len(dec.Errors) == 0 {
			reason = strings.Replace(reason, "no policy permits this call", "no policy permits this handoff", 1)
		}
		return d.deny(ctx, StepAuthorize, reason, dec.Policies, cause)
	}
	if len(dec.Obligations) > 0 {
		// Approval of handoffs is not supported: fail closed rather than
		// skip what policy asked for.
		o := dec.Obligations[0]
		return d.deny(ctx, StepAuthorize, fmt.Sprintf("policy %s sets obligation @%s on a handoff, which this guard cannot fulfil", o.PolicyID, o.Name), dec.Policies, ErrPolicy)
	}
	return nil
}

func (g *Guard) delegate(ctx context.Context, to spiffeid.ID, remote bool) (_ *delegation, err error) {
	ctx, d := g.beginDelegation(ctx, audit.KindDelegate, to)
	defer d.span.End()
	defer func() {
		if r := recover(); r != nil {
			err = d.deny(ctx, StepDelegate, "internal failure", nil, fmt.Errorf("%w: panic: %v", ErrInternal, r))
		}
	}()
	if g.closed.Load() {
		return nil, d.deny(ctx, StepGuard, "guard closed", nil, ErrClosed)
	}
	if to.IsZero() {
		return nil, d.deny(ctx, StepDelegate, "no agent to hand the task to", nil, ErrDelegation)
	}
	parent, ok := TaskFromContext(ctx)
	switch {
	case ok && parent.g != g:
		return nil, d.deny(ctx, StepTask, "task was started by another guard", nil, ErrForeignTask)
	case !ok && g.cfg.requireTask:
		return nil, d.deny(ctx, StepTask, "delegation outside any task", nil, ErrNoTask)
	case !ok:
		// As for a call outside any task: one of its own, which inherits
		// what a delegation to this agent carries.
		parent = newImplicitTask(ctx, g)
	}
	if !parent.implicit {
		d.ev.Task = parent.spec.ID
	}
	d.ev.OnBehalfOf = parent.spec.OnBehalfOf
	state, err := parent.snapshot("", d.ev.Time)
	if err != nil {
		return nil, d.deny(ctx, StepTask, "task has ended", nil, err)
	}
	id, reason, err := g.identify(ctx)
	if !id.IsZero() {
		d.setAgent(id)
	}
	if err != nil {
		return nil, d.deny(ctx, StepIdentify, reason, nil, err)
	}
	parent.noteAgent(id) // handing the task on is acting in it
	if err := g.checkSuspended(id); err != nil {
		return nil, d.deny(ctx, StepSuspend, "agent suspended", nil, err)
	}
	if err := g.checkSuspended(identity.Identity{ID: to}); err != nil {
		return nil, d.deny(ctx, StepSuspend, "delegatee suspended", nil, err)
	}
	if to == id.ID || slices.Contains(id.Chain, to) {
		return nil, d.deny(ctx, StepDelegate, "delegation cycle", nil, fmt.Errorf("%w: %s is already in the chain", ErrDelegation, to))
	}
	if len(id.Chain)+1 > g.cfg.maxDepth {
		return nil, d.deny(ctx, StepDelegate, "delegation chain too long",
			nil, fmt.Errorf("%w: handing on would make a chain of %d delegations; the limit is %d", ErrDelegation, len(id.Chain)+1, g.cfg.maxDepth))
	}
	issuer, canMint := g.cfg.identity.(identity.JWTIssuer)
	upstream := delegationFrom(ctx)
	if remote {
		switch {
		case !canMint:
			return nil, d.deny(ctx, StepDelegate, "agent cannot prove its identity to another process",
				nil, fmt.Errorf("%w: the identity source mints no JWT-SVIDs (use identity.SPIFFEAgent or identity.DevAgent)", ErrDelegation))
		case len(id.Chain) > 0 && (upstream == nil || upstream.handoff == nil):
			return nil, d.deny(ctx, StepDelegate, "chain cannot be proved to another process",
				nil, fmt.Errorf("%w: an agent up the chain minted no JWT-SVID for its handoff", ErrDelegation))
		}
	}
	if err := d.authorize(ctx, id, to, state); err != nil {
		return nil, err
	}
	out := &delegation{chain: append(slices.Clone(id.Chain), id.ID), to: to,
		onBehalfOf: state.OnBehalfOf, userToken: parent.userToken, sensitivity: state.Sensitivity, taint: state.Taint}
	// The proof covers the whole chain or is not made: a chain the identity
	// source gave, or one an agent up the chain could not prove, is left
	// unproved rather than shortened.
	if canMint && (len(id.Chain) == 0 || (upstream != nil && upstream.handoff != nil)) {
		var prev *identity.Handoff
		if upstream != nil {
			prev = upstream.handoff
		}
		h, err := identity.NewHandoff(ctx, issuer, prev, to)
		switch {
		case err != nil && remote:
			return nil, d.deny(ctx, StepDelegate, "JWT-SVID for the handoff unavailable", d.ev.Policies, fmt.Errorf("%w: %w", ErrDelegation, err))
		case err != nil:
			// In-process delegation works without the proof; only a
			// further handoff to another process will be refused.
			g.cfg.logger.Warn("agentguard: no JWT-SVID for an in-process handoff; the sub-agent cannot hand the task to another process",
				"agent", id.ID.String(), "delegatee", to.String(), "error", err.Error())
		default:
			out.handoff = h
			d.span.SetAttributes(AttrHops.Int(h.Hops()))
		}
	}
	if err := d.allow(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// AcceptHandoff checks a handoff from an agent in another process (the
// identity.HandoffHeader of its request) and returns the context for this
// guard's agent to work on the task with. Every JWT-SVID of the handoff must
// verify against the trust bundles (WithTrustBundles), be unexpired, and be
// addressed to the next agent of the chain, the last one to this guard's
// agent; the chain may not be longer than WithMaxDelegationDepth; and this
// guard's policy must permit Action::"delegate" for the delegating agent
// (and every agent up its chain) on resource Agent::"<this agent>". The
// acceptance is audited (audit.KindHandoffAccept) either way.
func (g *Guard) AcceptHandoff(ctx context.Context, h *identity.Handoff) (out context.Context, err error) {
	ctx2, d := g.beginDelegation(ctx, audit.KindHandoffAccept, spiffeid.ID{})
	defer d.span.End()
	defer func() {
		if r := recover(); r != nil {
			out, err = ctx, d.deny(ctx2, StepDelegate, "internal failure", nil, fmt.Errorf("%w: panic: %v", ErrInternal, r))
		}
	}()
	if g.closed.Load() {
		return ctx, d.deny(ctx2, StepGuard, "guard closed", nil, ErrClosed)
	}
	self, reason, err := g.identify(withoutDelegation(ctx))
	if err != nil {
		return ctx, d.deny(ctx2, StepIdentify, reason, nil, err)
	}
	d.ev.Delegatee = self.ID.String()
	d.span.SetAttributes(AttrDelegatee.String(d.ev.Delegatee))
	if err := g.checkSuspended(self); err != nil {
		return ctx, d.deny(ctx2, StepSuspend, "agent suspended", nil, err)
	}
	if len(self.Chain) > 0 || delegationFrom(ctx) != nil {
		return ctx, d.deny(ctx2, StepDelegate, "context already carries a delegation", nil, ErrDelegation)
	}
	if g.cfg.bundles == nil {
		return ctx, d.deny(ctx2, StepDelegate, "no trust bundles to verify handoffs", nil,
			fmt.Errorf("%w: configure WithTrustBundles", ErrDelegation))
	}
	if h.Hops() == 0 {
		return ctx, d.deny(ctx2, StepDelegate, "no handoff presented", nil, ErrDelegation)
	}
	d.span.SetAttributes(AttrHops.Int(h.Hops()))
	if h.Hops() > g.cfg.maxDepth {
		return ctx, d.deny(ctx2, StepDelegate, "delegation chain too long", nil,
			fmt.Errorf("%w: chain of %d delegations exceeds the limit of %d", ErrDelegation, h.Hops(), g.cfg.maxDepth))
	}
	chain, err := h.Verify(g.cfg.bundles, self.ID, g.cfg.maxDepth)
	if err != nil {
		return ctx, d.deny(ctx2, StepDelegate, "handoff does not verify", nil, fmt.Errorf("%w: %w", ErrDelegation, err))
	}
	from := identity.Identity{ID: chain[len(chain)-1], Chain: chain[:len(chain)-1]}
	d.setAgent(from)
	if err := g.checkSuspended(from); err != nil {
		return ctx, d.deny(ctx2, StepSuspend, "delegating agent suspended", nil, err)
	}
	if err := d.authorize(ctx2, from, self.ID, policy.Task{}); err != nil {
		return ctx, err
	}
	if err := d.allow(ctx2); err != nil {
		return ctx, err
	}
	return withDelegation(ctx, &delegation{chain: chain, to: self.ID, handoff: h}), nil
}

// withoutDelegation hides a delegation ctx carries, to identify the agent
// itself.
func withoutDelegation(ctx context.Context) context.Context {
	if delegationFrom(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, delegationKey{}, (*delegation)(nil))
}
