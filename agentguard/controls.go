package agentguard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
)

// Runtime controls: per-task budgets, and a kill switch that suspends an
// agent or a whole trust domain.

// Budget limits how many calls one task may run. A zero field means no
// limit of that kind. WithBudget sets the budget of every task of a guard;
// TaskSpec.Budget tightens it for one task: each limit in force is the
// stricter of the two, so a task can never loosen the guard's budget.
//
// A call counts when it is admitted to run, just before its tool runs
// (after policy, approval and credentials), atomically, so concurrent calls
// cannot overrun a budget; denied calls do not count. A spent budget is
// also checked early, so that policy and approvers are not asked about a
// call that cannot run. Policy sees the same counts as context.task.calls,
// context.task.tool_calls (of the tool called) and
// context.task.calls_last_minute, so a policy can refuse sooner than the
// budget does. Without a PerMinute budget, calls_last_minute is counted up
// to 1,024, which policy sees for any more.
//
// A task started from a context that carries another task in this process
// (the context of a task, or one that Delegate returned from it) works for
// that task: each of its calls also counts against the budgets of that
// task and of every task above it (and in the counts their policies see),
// and is denied when any of them is spent. A sub-agent therefore cannot
// escape its parent's budget by starting tasks of its own, nor by calling
// outside any task. A task handed to another process (Handoff) starts
// afresh there, under that guard's budget.
type Budget struct {
	// Calls bounds the calls of the task.
	Calls int
	// PerTool bounds the calls of each tool in the task.
	PerTool int
	// Tools bounds the calls of the named tools in the task, in place of
	// PerTool. Each limit must be positive: use policy to forbid a tool,
	// and a large number to exempt one from PerTool.
	Tools map[string]int
	// PerMinute bounds the calls of the task started in any 60 seconds,
	// by the guard's clock.
	PerMinute int
}

// validate reports a budget that is not one.
func (b Budget) validate() error {
	for _, f := range []struct {
		name string
		n    int
	}{{"Calls", b.Calls}, {"PerTool", b.PerTool}, {"PerMinute", b.PerMinute}} {
		if f.n < 0 {
			return fmt.Errorf("agentguard: budget: %s is %d; a limit is positive, and zero means no limit", f.name, f.n)
		}
	}
	for tool, n := range b.Tools {
		switch {
		case tool == "":
			return errors.New("agentguard: budget: Tools names no tool")
		case n <= 0:
			return fmt.Errorf("agentguard: budget: Tools[%q] is %d; a limit is positive (forbid a tool with policy)", tool, n)
		}
	}
	return nil
}

// toolLimit is the limit on calls of tool, zero for none.
func (b Budget) toolLimit(tool string) int {
	if n, ok := b.Tools[tool]; ok {
		return n
	}
	return b.PerTool
}

func (b Budget) clone() Budget {
	b.Tools = maps.Clone(b.Tools)
	return b
}

// tighten returns the budget whose every limit is the stricter of a's and
// b's.
func tighten(a, b Budget) Budget {
	out := Budget{
		Calls:     stricter(a.Calls, b.Calls),
		PerTool:   stricter(a.PerTool, b.PerTool),
		PerMinute: stricter(a.PerMinute, b.PerMinute),
	}
	if len(a.Tools)+len(b.Tools) > 0 {
		out.Tools = make(map[string]int, len(a.Tools)+len(b.Tools))
		for _, m := range []map[string]int{a.Tools, b.Tools} {
			for tool := range m {
				out.Tools[tool] = stricter(a.toolLimit(tool), b.toolLimit(tool))
			}
		}
	}
	return out
}

// stricter is the smaller of two limits, where zero is no limit.
func stricter(a, b int) int {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// recentCap bounds how many call times a task keeps for
// context.task.calls_last_minute when it has no PerMinute budget (with
// one, it keeps that many, which is exact).
const recentCap = 1024

// window holds the start times of a task's calls in the last minute,
// oldest first, in a ring that grows to at most its capacity.
type window struct {
	buf     []int64 // Unix nanoseconds
	head, n int
}

func (w *window) at(i int) int64 { return w.buf[(w.head+i)%len(w.buf)] }

// count returns how many calls started in the minute before now.
func (w *window) count(now time.Time) int {
	cutoff := now.Add(-time.Minute).UnixNano()
	lo, hi := 0, w.n // the first entry after cutoff
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if w.at(mid) > cutoff {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return w.n - lo
}

// add notes a call started at now, dropping what is older than a minute,
// and the oldest entry when capacity are kept.
func (w *window) add(now time.Time, capacity int) {
	ts := now.UnixNano()
	if w.n > 0 {
		ts = max(ts, w.at(w.n-1)) // calls admitted out of clock order count as the latest
	}
	cutoff := ts - int64(time.Minute)
	for w.n > 0 && w.buf[w.head] <= cutoff {
		w.head = (w.head + 1) % len(w.buf)
		w.n--
	}
	if w.n >= capacity {
		w.head = (w.head + 1) % len(w.buf)
		w.n--
	}
	if w.n == len(w.buf) {
		grown := make([]int64, min(max(4, 2*len(w.buf)), capacity))
		for i := range w.n {
			grown[i] = w.at(i)
		}
		w.buf, w.head = grown, 0
	}
	w.buf[(w.head+w.n)%len(w.buf)] = ts
	w.n++
}

// parentTaskKey keys the task that a task started from a context works for.
// Unlike taskKey, Delegate does not hide it: a sub-agent's task works for
// the delegating one.
type parentTaskKey struct{}

func parentTaskFrom(ctx context.Context) *Task {
	t, _ := ctx.Value(parentTaskKey{}).(*Task)
	return t
}

// budgetError says which budget a call would exceed.
func (t *Task) budgetError(format string, args ...any) error {
	return fmt.Errorf("%w: task %q: "+format, append([]any{ErrBudget, t.spec.ID}, args...)...)
}

// exceeds returns an error when one more call of tool at now would exceed
// one of the task's own budgets. t.mu is held.
func (t *Task) exceeds(tool string, now time.Time) error {
	b := &t.budget
	if b.Calls > 0 && t.calls >= b.Calls {
		return t.budgetError("%d calls, limit %d", t.calls, b.Calls)
	}
	if limit := b.toolLimit(tool); limit > 0 && t.toolCalls[tool] >= limit {
		return t.budgetError("%d calls of tool %q, limit %d", t.toolCalls[tool], tool, limit)
	}
	if b.PerMinute > 0 {
		if n := t.recent.count(now); n >= b.PerMinute {
			return t.budgetError("%d calls in the last minute, limit %d", n, b.PerMinute)
		}
	}
	return nil
}

// checkBudget returns an error wrapping ErrBudget when one more call of
// tool at now would exceed one of the task's budgets, or those of a task
// it works for. It takes nothing: admit does, once the call is about to
// run. Checking early spares the policy engine and any approver a call
// that cannot run.
func (t *Task) checkBudget(tool string, now time.Time) error {
	for x := t; x != nil; x = x.parent {
		if x != t {
			now = x.g.cfg.now()
		}
		x.mu.Lock()
		err := x.exceeds(tool, now)
		x.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// admit takes one call of tool at now from the task's budgets and from
// those of the tasks it works for, or returns an error wrapping ErrBudget
// (or ErrTaskEnded) and takes nothing. The tasks are locked from t up, so
// that concurrent calls cannot overrun a budget; every admit locks in that
// order, youngest task first, so two cannot deadlock.
func (t *Task) admit(tool string, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return ErrTaskEnded
	}
	if err := t.exceeds(tool, now); err != nil {
		return err
	}
	if t.parent != nil {
		if err := t.parent.admit(tool, t.parent.g.cfg.now()); err != nil {
			if errors.Is(err, ErrTaskEnded) {
				return fmt.Errorf("%w: task %q, which this task works for, has ended", ErrTaskEnded, t.parent.spec.ID)
			}
			return err
		}
	}
	t.calls++
	if t.toolCalls == nil {
		t.toolCalls = map[string]int{}
	}
	t.toolCalls[tool]++
	capacity := t.budget.PerMinute
	if capacity == 0 {
		capacity = recentCap
	}
	t.recent.add(now, capacity)
	return nil
}

// Budget returns the budget in force for the task: the guard's, tightened
// by the task's own. It does not include the budgets of a task this one
// works for, which apply too.
func (t *Task) Budget() Budget { return t.budget.clone() }

// noteAgent records that id, and the agents up its chain, acted in the
// task, so that suspending any of them ends the task.
func (t *Task) noteAgent(id identity.Identity) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addAgent(id.ID)
	for _, a := range id.Chain {
		t.addAgent(a)
	}
}

// addAgent adds a to the task's agents. t.mu is held. A task sees few
// agents, so a slice is the cheapest set.
func (t *Task) addAgent(a spiffeid.ID) {
	if !slices.Contains(t.agents, a) {
		t.agents = append(t.agents, a)
	}
}

// actedIn reports whether target (an agent, or a trust domain) acted in
// the task.
func (t *Task) actedIn(target spiffeid.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	domain := target.Path() == ""
	return slices.ContainsFunc(t.agents, func(a spiffeid.ID) bool {
		if domain {
			return a.TrustDomain() == target.TrustDomain()
		}
		return a == target
	})
}

// Suspension is an agent, or a whole trust domain, whose calls the guard
// refuses (Guard.Suspend).
type Suspension struct {
	// Target is the agent's SPIFFE ID, or the trust domain's
	// (spiffe://example.org, no path).
	Target spiffeid.ID
	// Reason is what Suspend was given.
	Reason string
	// Since is when the target was first suspended.
	Since time.Time
}

// suspensions is the kill switch's state. The hot path reads the current
// set with one atomic load; Suspend and Resume replace it (copy on write)
// under mu, which also keeps their audit records in the order of the
// changes.
type suspensions struct {
	mu  sync.Mutex
	cur atomic.Pointer[suspensionSet] // nil when nothing is suspended
}

// suspensionSet is immutable once published. Agents are keyed by their
// SPIFFE ID and trust domains by name: strings, which the ID holds, hash
// faster than the ID itself.
type suspensionSet struct {
	agents  map[string]Suspension
	domains map[string]Suspension
}

func (s *suspensionSet) clone() *suspensionSet {
	out := &suspensionSet{agents: map[string]Suspension{}, domains: map[string]Suspension{}}
	if s != nil {
		for k, v := range s.agents {
			out.agents[k] = v
		}
		for k, v := range s.domains {
			out.domains[k] = v
		}
	}
	return out
}

func (s *suspensionSet) lookup(target spiffeid.ID) (Suspension, bool) {
	if s == nil {
		return Suspension{}, false
	}
	if target.Path() == "" {
		v, ok := s.domains[target.TrustDomain().Name()]
		return v, ok
	}
	v, ok := s.agents[target.String()]
	return v, ok
}

// check returns the error for the first of a (described by role) and its
// trust domain that is suspended.
func (s *suspensionSet) check(role string, a spiffeid.ID) error {
	if v, ok := s.agents[a.String()]; ok {
		return suspendedError(role+" "+a.String(), v)
	}
	if v, ok := s.domains[a.TrustDomain().Name()]; ok {
		return suspendedError("trust domain "+a.TrustDomain().Name()+" of "+role+" "+a.String(), v)
	}
	return nil
}

func suspendedError(what string, s Suspension) error {
	msg := what + " is suspended since " + s.Since.UTC().Format(time.RFC3339)
	if s.Reason != "" {
		msg += ": " + s.Reason
	}
	return fmt.Errorf("%w: %s", ErrSuspended, msg)
}

// checkSuspended returns an error wrapping ErrSuspended when id, an agent
// of its chain, or their trust domain is suspended. With nothing suspended
// it is one atomic load.
func (g *Guard) checkSuspended(id identity.Identity) error {
	s := g.suspensions.cur.Load()
	if s == nil {
		return nil
	}
	if err := s.check("agent", id.ID); err != nil {
		return err
	}
	for _, a := range id.Chain {
		if err := s.check("delegating agent", a); err != nil {
			return err
		}
	}
	return nil
}

// Suspend refuses every call of target from now on: an agent, or, for a
// SPIFFE ID with no path (spiffeid.RequireTrustDomainFromString(td).ID()),
// every agent of that trust domain. It is the kill switch.
//
// The suspension is in force when Suspend returns: every later call of the
// agent, of a sub-agent with it up its delegation chain, and every later
// Delegate, Handoff, AcceptHandoff and Registry.List of such an agent, is
// denied with ErrSuspended (step StepSuspend) and audited. A call that
// already passed the guard's last check, just before its tool runs, is not
// stopped; one that waited for an approver or a credential is. Suspend also
// ends every open task in which the target (or an agent of the trust
// domain) has called, as Task.End does, with the reason "agent suspended:
// <reason>": their credentials are revoked and their contexts cancelled.
//
// Suspend writes an audit.KindSuspend record naming the target, the reason
// and the tasks it ends. Suspending a target again updates its reason (not
// its Since), is audited again and ends the tasks it has called in since.
// The error joins a failed audit record and the tasks' End errors; the
// suspension stays in force whatever fails.
//
// A suspension holds in this guard: the guards of other agents, in this
// process or others, refuse calls only of agents suspended in them.
// Suspending a delegating agent in its own guard ends its tasks, and so, in
// this process, the tasks of its sub-agents started from them.
func (g *Guard) Suspend(ctx context.Context, target spiffeid.ID, reason string) error {
	if target.IsZero() {
		return errors.New("agentguard: suspend: no agent or trust domain given")
	}
	now := g.cfg.now()
	g.suspensions.mu.Lock()
	cur := g.suspensions.cur.Load()
	s := Suspension{Target: target, Reason: reason, Since: now}
	if prev, ok := cur.lookup(target); ok {
		s.Since = prev.Since
	}
	next := cur.clone()
	if target.Path() == "" {
		next.domains[target.TrustDomain().Name()] = s
	} else {
		next.agents[target.String()] = s
	}
	g.suspensions.cur.Store(next)

	// A call notes its agent in its task before it checks for a
	// suspension: either the call sees the suspension just stored, or the
	// task is found here.
	g.mu.Lock()
	open := make([]*Task, 0, len(g.tasks))
	for _, t := range g.tasks {
		open = append(open, t)
	}
	g.mu.Unlock()
	var ending []*Task
	for _, t := range open {
		if t.actedIn(target) {
			ending = append(ending, t)
		}
	}
	slices.SortFunc(ending, func(a, b *Task) int { return cmp.Compare(a.spec.ID, b.spec.ID) })
	ids := make([]string, len(ending))
	for i, t := range ending {
		ids[i] = t.spec.ID
	}
	aerr := g.writeAudit(ctx, audit.Event{Time: now, Kind: audit.KindSuspend, Target: target.String(),
		Reason: reason, Tasks: ids, Outcome: audit.OutcomeOK})
	g.suspensions.mu.Unlock()

	errs := make([]error, len(ending)+1)
	errs[0] = aerr
	var wg sync.WaitGroup
	for i, t := range ending {
		wg.Go(func() { errs[i+1] = t.end(ctx, "agent suspended: "+reason) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("agentguard: suspend %s: %w", target, err)
	}
	return nil
}

// Resume lifts the suspension of target (exactly that one: resuming an
// agent does not lift a suspension of its trust domain). Later calls of
// the agent are allowed again, as policy decides; the tasks the suspension
// ended stay ended. Resume writes an audit.KindResume record first: in
// strict audit mode, a resumption that cannot be recorded does not happen,
// and the error says so. Resuming a target that is not suspended does
// nothing, records nothing and returns nil.
func (g *Guard) Resume(ctx context.Context, target spiffeid.ID) error {
	if target.IsZero() {
		return errors.New("agentguard: resume: no agent or trust domain given")
	}
	g.suspensions.mu.Lock()
	defer g.suspensions.mu.Unlock()
	cur := g.suspensions.cur.Load()
	if _, ok := cur.lookup(target); !ok {
		return nil
	}
	if err := g.writeAudit(ctx, audit.Event{Time: g.cfg.now(), Kind: audit.KindResume, Target: target.String(),
		Outcome: audit.OutcomeOK}); err != nil {
		return fmt.Errorf("agentguard: resume %s: still suspended: %w", target, err)
	}
	next := cur.clone()
	if target.Path() == "" {
		delete(next.domains, target.TrustDomain().Name())
	} else {
		delete(next.agents, target.String())
	}
	if len(next.agents)+len(next.domains) == 0 {
		next = nil // back to the one-load fast path
	}
	g.suspensions.cur.Store(next)
	return nil
}

// Suspended returns the suspensions in force, sorted by target.
func (g *Guard) Suspended() []Suspension {
	s := g.suspensions.cur.Load()
	if s == nil {
		return nil
	}
	out := make([]Suspension, 0, len(s.agents)+len(s.domains))
	for _, v := range s.agents {
		out = append(out, v)
	}
	for _, v := range s.domains {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Suspension) int { return cmp.Compare(a.Target.String(), b.Target.String()) })
	return out
}
