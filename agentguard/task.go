package agentguard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/internal/canonical"
	"github.com/agentguard/go-sdk/policy"
)

// Sensitivity grades the data a task handles; policy sees it as
// context.task.sensitivity.
type Sensitivity = policy.Sensitivity

// Sensitivity levels.
const (
	Public       = policy.Public
	Internal     = policy.Internal
	Confidential = policy.Confidential
	Restricted   = policy.Restricted
)

// TaskSpec describes a task when it starts.
type TaskSpec struct {
	// ID identifies the task; one is made up when empty.
	ID      string
	Purpose string
	// Sensitivity is the most sensitive data the task may handle.
	Sensitivity Sensitivity
	Labels      []string
	// OnBehalfOf names the user the task serves, if any.
	OnBehalfOf string
	// UserToken is that user's token, if the agent holds one: the subject
	// of on-behalf-of token exchanges (see credentials/oauth). The guard
	// hands it only to credential providers: Task.Spec does not return it,
	// and it is never printed, logged or audited. A sub-agent's task in the
	// same process inherits it; a handoff to another process does not
	// carry it.
	UserToken credentials.Secret
	// Budget tightens the guard's budget (WithBudget) for this task: each
	// limit in force is the stricter of the two, so it cannot loosen it.
	// Nil leaves the guard's budget as it is. A negative limit is an error.
	Budget *Budget
}

// Task is one unit of an agent's work. It keeps the state policy sees as
// context.task: calls made (in all, of each tool, in the last minute), tools
// used and the taint labels its results carried. Credentials are leased to
// a task and revoked when it ends. Its Budget bounds its calls.
type Task struct {
	g      *Guard
	spec   TaskSpec
	cancel context.CancelFunc
	// deadline is the task context's deadline, the latest any of its
	// credentials may expire; zero if it has none.
	deadline time.Time
	// implicit tasks wrap a call made outside any task; they are not audited
	// as tasks.
	implicit bool
	// userToken is spec.UserToken, kept out of spec so that Spec, which
	// any tool may call, never returns it.
	userToken credentials.Secret
	// leaseKey is the key of the task's leases at the broker: unique to
	// this Task, unlike its ID, which callers choose.
	leaseKey string
	// budget is the task's own budget in force (the guard's, tightened by
	// the spec's).
	budget Budget
	// parent is the task this one works for, whose budgets its calls also
	// count against (see Budget); nil for none.
	parent *Task

	mu   sync.Mutex
	stop func() bool // unregisters the end-on-context-done callback
	// calls, toolCalls and recent count the calls admitted to run: in all,
	// by tool, and their start times in the last minute. They include the
	// calls of the tasks that work for this one.
	calls     int
	toolCalls map[string]int
	recent    window
	// agents are those that called in the task, and those up their chains:
	// suspending one of them ends the task.
	agents []spiffeid.ID
	used   []string
	taint  []string
	ended  bool
	leased bool
	// endCause is why the task ended when a suspension ended it: calls
	// denied because the task ended are denied as suspended.
	endCause error
	// unaudited holds the records of leases whose issue could not be
	// audited, or is being written, by lease ID: a call that gets such a
	// lease from the cache waits for the write, and writes a failed
	// record itself, before it uses the lease.
	unaudited map[string]*unauditedLease
	// leasedCreds are the latest credentials the task's calls used (at
	// most maxLeasedCreds): the recorded arguments of any call in the task
	// are scrubbed of them, since a tool's output may have shown one to
	// the model, which may put it in the arguments of a later call.
	leasedCreds []*credentials.Credential
	// scrubber finds the values of leasedCreds and of userToken; nil until
	// a call needs it, and again once leasedCreds changes.
	scrubber *credentials.Scrubber

	endOnce sync.Once
	endErr  error
	done    chan struct{}
}

type taskKey struct{}

// TaskFromContext returns the task ctx carries, if any.
func TaskFromContext(ctx context.Context) (*Task, bool) {
	t, ok := ctx.Value(taskKey{}).(*Task)
	return t, ok && t != nil
}

// StartTask starts a task and returns a context that carries it. Calls made
// with that context belong to the task. The task ends when End is called or
// when ctx is done, whichever is first; ending revokes its credentials.
// Cancelling the returned context does not end the task; End does, and
// cancels it.
//
// A task started from a context that carries another task of this process
// works for it (see Budget): once that task has ended, calls in this one
// are denied with ErrTaskEnded, before policy is asked, even if ctx
// outlives it (context.WithoutCancel). A context from Delegate or
// AcceptHandoff whose delegation names a suspended agent (Guard.Suspend),
// the one it was handed to or one up its chain, is refused with
// ErrSuspended.
//
// The start is audited (audit.KindTaskStart, Decision allow), and so is a
// refusal, with the same kind, Decision deny and the step that refused
// it: the guard closed, the context done, an invalid budget, no identity
// for the agent (or a delegation handed to another one), a suspended
// agent, a delegating task serving another user, or an ID already open.
// Count started tasks by the task_start records with Decision allow. In
// strict audit mode, a start that cannot be recorded does not happen, and
// a refusal that cannot be recorded returns both errors. A sink that
// panics has not recorded: StartTask returns an error wrapping ErrAudit,
// whatever the mode, and the panic goes no further.
func (g *Guard) StartTask(ctx context.Context, spec TaskSpec) (context.Context, *Task, error) {
	if spec.ID == "" {
		spec.ID = newID("task-")
	}
	// The record of the start or of its refusal; the task's user token is
	// never in it.
	ev := audit.Event{Time: g.cfg.now(), Kind: audit.KindTaskStart, Task: spec.ID, OnBehalfOf: spec.OnBehalfOf}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		ev.TraceID, ev.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	if g.closed.Load() {
		return g.refuseTask(ctx, ev, StepGuard, "guard closed", ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return g.refuseTask(ctx, ev, StepTask, "context done", fmt.Errorf("agentguard: start task: %w", err))
	}
	spec.Labels = canonical.SortedSet(spec.Labels)
	budget := g.cfg.budget
	if spec.Budget != nil {
		if err := spec.Budget.validate(); err != nil {
			return g.refuseTask(ctx, ev, StepBudget, "invalid budget", fmt.Errorf("agentguard: start task: %w", err))
		}
		budget = tighten(budget, *spec.Budget)
		b := spec.Budget.clone()
		spec.Budget = &b
	}
	// The agent starting the task, as its calls will see it.
	id, reason, err := g.identify(ctx)
	if !id.IsZero() {
		ev.Agent, ev.Chain = id.ID.String(), id.ChainStrings()
	}
	if err != nil {
		return g.refuseTask(ctx, ev, StepIdentify, reason, fmt.Errorf("agentguard: start task: %w", err))
	}
	d := delegationFrom(ctx)
	if d != nil {
		// The agents a delegation names are known before any call: a task
		// for a suspended one is not started.
		if err := g.checkSuspended(identity.Identity{ID: d.to, Chain: d.chain}); err != nil {
			return g.refuseTask(ctx, ev, StepSuspend, "agent suspended", fmt.Errorf("agentguard: start task: %w", err))
		}
	}
	if err := d.inherit(&spec); err != nil {
		return g.refuseTask(ctx, ev, StepDelegate, "the delegating task serves another user", err)
	}
	ev.OnBehalfOf = spec.OnBehalfOf
	if g.isOpen(spec.ID) {
		// Checked again, atomically, by track below; a task started
		// meanwhile with the same ID gets a start and an end record.
		return g.refuseTask(ctx, ev, StepTask, "a task with this ID is already open",
			fmt.Errorf("agentguard: start task: a task with ID %q is already open", spec.ID))
	}
	t := &Task{g: g, spec: spec, done: make(chan struct{}), taint: d.inheritedTaint(),
		userToken: spec.UserToken, leaseKey: newID("lease-set-"), budget: budget, parent: parentTaskFrom(ctx)}
	t.spec.UserToken = credentials.Secret{}
	tctx, cancel := context.WithCancel(context.WithValue(context.WithValue(ctx, taskKey{}, t), parentTaskKey{}, t))
	t.cancel = cancel
	t.deadline, _ = tctx.Deadline()

	ev.Decision, ev.Outcome = audit.Allow, audit.OutcomeOK
	if err := g.writeAudit(ctx, ev); err != nil {
		cancel()
		return ctx, nil, err
	}
	// Registered before the task is tracked, so that Close, which may end
	// the task from now on, sees it.
	stop := context.AfterFunc(ctx, func() {
		ectx, c := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.endTimeout)
		defer c()
		_ = t.end(ectx, "context done: "+context.Cause(ctx).Error())
	})
	t.mu.Lock()
	t.stop = stop
	t.mu.Unlock()
	if err := g.track(t); err != nil {
		_ = t.end(ctx, "not started: "+err.Error())
		return ctx, nil, err
	}
	select {
	case <-t.done: // ctx was cancelled while the task started
		return ctx, nil, fmt.Errorf("agentguard: start task: %w", context.Cause(ctx))
	default:
	}
	return tctx, t, nil
}

// refuseTask records the refusal of a task's start (ev, at step, for
// reason) and returns err, joined with the record's error when it cannot
// be written.
func (g *Guard) refuseTask(ctx context.Context, ev audit.Event, step, reason string, err error) (context.Context, *Task, error) {
	ev.Decision, ev.Outcome, ev.Step, ev.Reason, ev.Error = audit.Deny, audit.OutcomeDenied, step, reason, err.Error()
	if aerr := g.writeAudit(ctx, ev); aerr != nil {
		return ctx, nil, errors.Join(err, aerr)
	}
	return ctx, nil, err
}

// isOpen reports whether a task with that ID is open.
func (g *Guard) isOpen(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.tasks[id]
	return ok
}

// startImplicitTask makes the task of a call made outside any task (see
// newImplicitTask), tracks it until it ends so that Suspend and Close reach
// it, and returns the context the call runs with, which ending the task
// cancels.
func (g *Guard) startImplicitTask(ctx context.Context) (context.Context, *Task, error) {
	t := newImplicitTask(ctx, g)
	tctx, cancel := context.WithCancel(ctx)
	t.cancel = cancel
	if err := g.trackImplicit(t); err != nil {
		cancel()
		return ctx, nil, err
	}
	return tctx, t, nil
}

// newImplicitTask makes the task of a call made outside any task; it ends
// with the call, so the call's deadline is its deadline. Its ID is random,
// never derived from the call's ID, which the model chooses.
func newImplicitTask(ctx context.Context, g *Guard) *Task {
	d := delegationFrom(ctx)
	spec := TaskSpec{ID: newID("call-task-")}
	_ = d.inherit(&spec) // cannot conflict: spec names no user
	t := &Task{g: g, spec: spec, implicit: true, done: make(chan struct{}), taint: d.inheritedTaint(),
		userToken: spec.UserToken, leaseKey: newID("lease-set-"), budget: g.cfg.budget, parent: parentTaskFrom(ctx)}
	t.spec.UserToken = credentials.Secret{}
	t.deadline, _ = ctx.Deadline()
	return t
}

// ID returns the task's ID.
func (t *Task) ID() string { return t.spec.ID }

// Spec returns what the task was started with, without its UserToken.
func (t *Task) Spec() TaskSpec {
	s := t.spec
	s.Labels = slices.Clone(s.Labels)
	if s.Budget != nil {
		b := s.Budget.clone()
		s.Budget = &b
	}
	return s
}

// Done is closed when the task has ended and its credentials are revoked.
func (t *Task) Done() <-chan struct{} { return t.done }

// Taint returns the taint labels collected so far, sorted.
func (t *Task) Taint() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.taint)
}

// End ends the task: later calls with its context are denied, every
// credential leased to it is revoked, the revocations and the end are
// audited, and its context is cancelled. End may be called more than once
// and from many goroutines; every call returns the first one's error. A
// failed revocation is in the error, never dropped.
//
// Revocation does not stop because ctx is cancelled (a lease left valid is
// worse than a late return), so End works with the task's own context, even
// after its deadline; WithEndTimeout bounds it.
func (t *Task) End(ctx context.Context) error {
	return t.end(ctx, "ended")
}

func (t *Task) end(ctx context.Context, why string) error {
	return t.endFor(ctx, why, nil)
}

// endFor ends the task as end does; cause, if not nil, is the suspension
// that ends it, which later calls in the task are denied with.
func (t *Task) endFor(ctx context.Context, why string, cause error) error {
	t.endOnce.Do(func() {
		defer close(t.done)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.g.cfg.endTimeout)
		defer cancel()
		t.mu.Lock()
		if t.stop != nil {
			t.stop()
		}
		t.ended = true
		t.endCause = cause
		leased := t.leased
		t.mu.Unlock()
		// The task's context is cancelled last, so that calls still under
		// way are not cut short before their leases are revoked.
		if t.cancel != nil {
			defer t.cancel()
		}
		var errs []error
		if leased {
			errs = t.revoke(ctx)
		}
		if !t.implicit {
			ev := t.event(ctx, audit.KindTaskEnd)
			ev.Reason = why
			ev.Outcome = audit.OutcomeOK
			if len(errs) > 0 {
				ev.Outcome = audit.OutcomeError
				ev.Error = errors.Join(errs...).Error()
			}
			if aerr := t.g.writeAudit(ctx, ev); aerr != nil {
				errs = append(errs, aerr)
			}
		}
		t.g.untrack(t)
		t.endErr = errors.Join(errs...)
	})
	<-t.done
	return t.endErr
}

// revoke revokes every lease of the task through the broker and audits each
// revocation. It returns the failures. Error text is scrubbed of the
// credential's value, since it comes from the provider.
func (t *Task) revoke(ctx context.Context) []error {
	if t.g.cfg.broker == nil {
		return nil
	}
	var errs []error
	revs, err := t.g.cfg.broker.Revoke(ctx, t.leaseKey)
	for _, r := range revs {
		ev := leaseRecord(t.event(ctx, audit.KindCredentialRevoke), r.Event())
		ev.Agent = r.Credential.Agent
		if aerr := t.g.writeAudit(ctx, ev); aerr != nil {
			errs = append(errs, aerr)
		}
	}
	if err != nil {
		errs = append(errs, errors.New(credentials.Scrub(err.Error(), credentialsOf(revs)...)))
	}
	return errs
}

// revokeAgain revokes leases made for a task that ended while they were
// being made, whose own revocation may have run before they existed.
func (t *Task) revokeAgain(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.g.cfg.endTimeout)
	defer cancel()
	if errs := t.revoke(ctx); len(errs) > 0 {
		t.g.cfg.logger.LogAttrs(ctx, slog.LevelError, "agentguard: revoking leases of an ended task failed",
			slog.String("task", t.spec.ID), slog.String("error", errors.Join(errs...).Error()))
	}
}

func credentialsOf(revs []credentials.Revocation) []*credentials.Credential {
	out := make([]*credentials.Credential, len(revs))
	for i, r := range revs {
		out[i] = r.Credential
	}
	return out
}

// event is the frame of a record about the task, made in ctx: linked to
// ctx's span, if it has one (that of End's caller, say).
func (t *Task) event(ctx context.Context, k audit.Kind) audit.Event {
	ev := audit.Event{Time: t.g.cfg.now(), Kind: k, Task: t.spec.ID, OnBehalfOf: t.spec.OnBehalfOf}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		ev.TraceID, ev.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	return ev
}

// snapshot returns the state policy sees for a call of tool at now, or
// ErrTaskEnded when the task, or one it works for, has ended. For no tool
// in particular (a handoff, a listing), tool is "" and ToolCalls zero.
func (t *Task) snapshot(tool string, now time.Time) (policy.Task, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkEnded(); err != nil {
		return policy.Task{}, err
	}
	return policy.Task{
		ID:          t.spec.ID,
		Purpose:     t.spec.Purpose,
		Sensitivity: t.spec.Sensitivity,
		Labels:      t.spec.Labels,
		OnBehalfOf:  t.spec.OnBehalfOf,
		Calls:       t.calls,
		ToolCalls:   t.toolCalls[tool],
		RecentCalls: t.recent.count(now),
		ToolsUsed:   slices.Clone(t.used),
		Taint:       slices.Clone(t.taint),
	}, nil
}

// checkOpen returns ErrTaskEnded once the task, or one it works for, has
// ended.
func (t *Task) checkOpen() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.checkEnded()
}

// markLeased notes that a credential is being leased to the task, so End
// revokes. It fails if the task, or one it works for, has ended.
func (t *Task) markLeased() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkEnded(); err != nil {
		return err
	}
	t.leased = true
	return nil
}

// checkEnded returns an error wrapping ErrTaskEnded when the task, or a
// task it works for, has ended: a task cannot work for one that has
// ended. t.mu is held; the tasks above it are locked in turn, youngest
// first, as admit locks them.
func (t *Task) checkEnded() error {
	if t.ended {
		return endedErr(t, t)
	}
	for x := t.parent; x != nil; x = x.parent {
		x.mu.Lock()
		var err error
		if x.ended {
			err = endedErr(x, t)
		}
		x.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// endedErr is the error of a call in task t once x, t or a task t works
// for, has ended. It wraps the suspension that ended x, if one did. x.mu
// is held.
func endedErr(x, t *Task) error {
	msg := ""
	if x != t {
		msg = fmt.Sprintf(": task %q, which this task works for, has ended", x.spec.ID)
	}
	if x.endCause != nil {
		return fmt.Errorf("%w%s: %w", ErrTaskEnded, msg, x.endCause)
	}
	if msg == "" {
		return ErrTaskEnded
	}
	return fmt.Errorf("%w%s", ErrTaskEnded, msg)
}

// maxLeasedCreds bounds Task.leasedCreds.
const maxLeasedCreds = 32

// noteLeased adds the credentials a call of the task used to those the
// recorded arguments of its calls are scrubbed of, as the latest. They
// are kept by value: the broker hands each call its own copy of a cached
// lease, and a static provider the same value for every lease.
func (t *Task) noteLeased(creds []*credentials.Credential) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range creds {
		if i := t.leasedIndex(c); i >= 0 {
			// Known: the latest now, and the values (the scrubber) the same.
			t.leasedCreds = append(slices.Delete(t.leasedCreds, i, i+1), c)
			continue
		}
		if len(t.leasedCreds) == maxLeasedCreds {
			t.leasedCreds = slices.Delete(t.leasedCreds, 0, 1)
		}
		t.leasedCreds = append(t.leasedCreds, c)
		t.scrubber = nil
	}
}

// leasedIndex returns the index in leasedCreds of the credential of c's
// value, or -1. t.mu is held.
func (t *Task) leasedIndex(c *credentials.Credential) int {
	v := c.Secret.Reveal()
	return slices.IndexFunc(t.leasedCreds, func(x *credentials.Credential) bool { return x.Secret.Reveal() == v })
}

// argsScrubber returns the scrubber of the recorded arguments of the
// task's calls: it finds the values of the credentials noteLeased kept and
// of the task's user token. It is nil when creds, a call's credentials, are
// not all among those kept.
func (t *Task) argsScrubber(creds []*credentials.Credential) *credentials.Scrubber {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range creds {
		if t.leasedIndex(c) < 0 {
			return nil
		}
	}
	if t.scrubber == nil {
		all := slices.Clone(t.leasedCreds)
		if !t.userToken.IsZero() {
			all = append(all, &credentials.Credential{Secret: t.userToken})
		}
		t.scrubber = credentials.NewScrubber(all...)
	}
	return t.scrubber
}

// leasedCredentials returns the credentials noteLeased kept.
func (t *Task) leasedCredentials() []*credentials.Credential {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.leasedCreds)
}

// unauditedLease is the record of a lease not written yet.
type unauditedLease struct {
	rec audit.Event
	// writing is closed when the write under way ends; nil when none is.
	writing chan struct{}
}

// setUnaudited keeps the record of a lease that could not be written.
func (t *Task) setUnaudited(lease string, rec audit.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.unaudited == nil {
		t.unaudited = map[string]*unauditedLease{}
	}
	t.unaudited[lease] = &unauditedLease{rec: rec}
}

// writingLease notes that the record of a lease is being written, before
// the write: until it ends (wroteLease), no other call uses the lease.
func (t *Task) writingLease(lease string, rec audit.Event) *unauditedLease {
	u := &unauditedLease{rec: rec, writing: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.unaudited == nil {
		t.unaudited = map[string]*unauditedLease{}
	}
	t.unaudited[lease] = u
	return u
}

// wroteLease ends the write writingLease noted: a record written is
// forgotten, one that failed is kept for the next call to write.
func (t *Task) wroteLease(lease string, u *unauditedLease, written bool) {
	t.mu.Lock()
	if written && t.unaudited[lease] == u {
		delete(t.unaudited, lease)
	}
	ch := u.writing
	u.writing = nil
	t.mu.Unlock()
	close(ch)
}

// takeUnaudited removes and returns the unwritten record of a lease. If
// another call is writing it, it waits for that write (bounded by ctx):
// a lease is never used while its record may still fail.
func (t *Task) takeUnaudited(ctx context.Context, lease string) (audit.Event, bool, error) {
	for {
		t.mu.Lock()
		u, ok := t.unaudited[lease]
		if !ok {
			t.mu.Unlock()
			return audit.Event{}, false, nil
		}
		if ch := u.writing; ch != nil {
			t.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return audit.Event{}, false, fmt.Errorf("%w: waiting for the record of lease %s: %w", ErrAudit, lease, context.Cause(ctx))
			}
		}
		delete(t.unaudited, lease)
		t.mu.Unlock()
		return u.rec, true, nil
	}
}

// record adds what one executed call did to the task's state: the tool
// used and the taint of its result. The call was counted when admitted.
func (t *Task) record(tool string, labels ...[]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, found := slices.BinarySearch(t.used, tool); !found {
		t.used = slices.Insert(t.used, i, tool)
	}
	t.taint = canonical.SortedSet(append([][]string{t.taint}, labels...)...)
}

func newID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
