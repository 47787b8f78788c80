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
	// by the guard's clock: by its monotonic reading where it has one (as
	// time.Now's do), so that setting the wall clock does not reset it.
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
//
// The times are the guard's clock's, kept as time.Time values: those of
// time.Now carry a monotonic reading, which Before and After compare, so
// that a step of the wall clock (NTP, an operator) neither empties the
// window nor fills it for as long as the step. A clock without monotonic
// readings (WithClock) is compared by its wall time.
type window struct {
	buf     []time.Time
	head, n int
}

func (w *window) at(i int) time.Time { return w.buf[(w.head+i)%len(w.buf)] }

// count returns how many calls started in the minute before now.
func (w *window) count(now time.Time) int {
	cutoff := now.Add(-time.Minute)
	lo, hi := 0, w.n // the first entry after cutoff
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if w.at(mid).After(cutoff) {
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
	ts := now
	if w.n > 0 && w.at(w.n-1).After(ts) {
		ts = w.at(w.n - 1) // calls admitted out of clock order count as the latest
	}
	cutoff := ts.Add(-time.Minute)
	for w.n > 0 && !w.buf[w.head].After(cutoff) {
		w.head = (w.head + 1) % len(w.buf)
		w.n--
	}
	if w.n >= capacity {
		w.head = (w.head + 1) % len(w.buf)
		w.n--
	}
	if w.n == len(w.buf) {
		grown := make([]time.Time, min(max(4, 2*len(w.buf)), capacity))
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
		return endedErr(t, t)
	}
	if err := t.exceeds(tool, now); err != nil {
		return err
	}
	if t.parent != nil {
		if err := t.parent.admit(tool, t.parent.g.cfg.now()); err != nil {
			if errors.Is(err, ErrTaskEnded) {
				// Say which task above this one ended, and why.
				if e := t.checkEnded(); e != nil {
					return e
				}
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
// under mu, one change at a time, each numbered by seq. mu is never held
// while an audit record is written, so that an audit sink may call Suspend
// or Resume itself.
type suspensions struct {
	mu  sync.Mutex
	seq uint64                        // the number of the last change; under mu
	cur atomic.Pointer[suspensionSet] // nil when nothing is suspended
}

// suspended is a suspension in force, with the number of the change that
// made it.
type suspended struct {
	Suspension
	seq uint64
}

// suspensionSet is immutable once published. Agents are keyed by their
// SPIFFE ID and trust domains by name: strings, which the ID holds, hash
// faster than the ID itself.
type suspensionSet struct {
	agents  map[string]suspended
	domains map[string]suspended
}

func (s *suspensionSet) clone() *suspensionSet {
	out := &suspensionSet{agents: map[string]suspended{}, domains: map[string]suspended{}}
	if s != nil {
		maps.Copy(out.agents, s.agents)
		maps.Copy(out.domains, s.domains)
	}
	return out
}

// key returns the map of s that holds target, and its key there.
func (s *suspensionSet) key(target spiffeid.ID) (map[string]suspended, string) {
	if target.Path() == "" {
		return s.domains, target.TrustDomain().Name()
	}
	return s.agents, target.String()
}

func (s *suspensionSet) lookup(target spiffeid.ID) (suspended, bool) {
	if s == nil {
		return suspended{}, false
	}
	m, k := s.key(target)
	v, ok := m[k]
	return v, ok
}

// check returns the error for the first of a (described by role) and its
// trust domain that is suspended.
func (s *suspensionSet) check(role string, a spiffeid.ID) error {
	if v, ok := s.agents[a.String()]; ok {
		return suspendedError(role+" "+a.String(), v.Suspension)
	}
	if v, ok := s.domains[a.TrustDomain().Name()]; ok {
		return suspendedError("trust domain "+a.TrustDomain().Name()+" of "+role+" "+a.String(), v.Suspension)
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

// err is the error, wrapping ErrSuspended, of the calls in the tasks that
// s ends.
func (s Suspension) err() error {
	if s.Target.Path() == "" {
		return suspendedError("trust domain "+s.Target.TrustDomain().Name(), s)
	}
	return suspendedError("agent "+s.Target.String(), s)
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
// Delegate, Handoff and AcceptHandoff of such an agent, is denied with
// ErrSuspended (step StepSuspend) and audited. Registry.List of such an
// agent returns ErrSuspended; it writes no record. StartTask with a
// context from Delegate or AcceptHandoff that names a suspended agent (the
// one the task was handed to, or one up its chain) returns ErrSuspended,
// also without a record. A call that waited for an approver or a
// credential is denied; one that already passed the guard's last check,
// just before its tool runs, is not, but its task ends (below): its tool's
// context is cancelled and its credentials revoked.
//
// Suspend ends every open task in which the target (or an agent of the
// trust domain) has called, as Task.End does, with the reason "agent
// suspended: <reason>": their credentials are revoked and their contexts
// cancelled, and calls still under way in them are denied with
// ErrSuspended (and ErrTaskEnded). The tasks of calls made outside any
// task are among them. Tasks in which the target has not called yet are
// left open: a task learns its agents from their calls (StartTask cannot
// know who will call in it, beyond the agents a delegation names, above),
// so Suspend cannot tell them from other agents' tasks. The target can neither call
// nor lease a credential in them; suspending it again ends those it has
// tried to call in since. End them with Task.End (or Close the guard) to
// be rid of them.
//
// Suspend writes an audit.KindSuspend record naming the target, the reason
// and the tasks it ends, once the suspension is in force and before it
// ends them. Suspending a target again updates its reason (not its Since),
// is audited again and ends the tasks it has called in since. The error
// joins a failed audit record and the tasks' End errors; the suspension
// stays in force whatever fails.
//
// Suspend and Resume change the suspensions one at a time, but neither
// holds a lock while its record is written: the audit sink may itself call
// Suspend or Resume (to escalate to the trust domain, say), from the
// goroutine that writes or another. The nested call takes effect at once
// and writes its own record while the sink is still writing the record
// that prompted it; records of concurrent calls may reach the sink in
// either order. See Resume for a Resume that races a Suspend.
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
	s := Suspension{Target: target, Reason: reason, Since: now}
	sp := &g.suspensions
	sp.mu.Lock()
	cur := sp.cur.Load()
	if prev, ok := cur.lookup(target); ok {
		s.Since = prev.Since
	}
	sp.seq++
	next := cur.clone()
	m, k := next.key(target)
	m[k] = suspended{Suspension: s, seq: sp.seq}
	sp.cur.Store(next)
	sp.mu.Unlock()

	// A call notes its agent in its task (a task of its own, when it is
	// made outside any) before it checks for a suspension: either the call
	// sees the suspension just stored, or the task is found here.
	g.mu.Lock()
	open := g.openTasks()
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

	cause := s.err()
	errs := make([]error, len(ending)+1)
	errs[0] = aerr
	var wg sync.WaitGroup
	for i, t := range ending {
		wg.Go(func() { errs[i+1] = t.endFor(ctx, "agent suspended: "+reason, cause) })
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
// and the error says so. It lifts only the suspension it recorded lifting:
// when the target is suspended again while the record is written (by a
// concurrent Suspend, or by the audit sink), that later suspension stands
// and Resume returns an error wrapping ErrSuspended. Resuming a target
// that is not suspended does nothing, records nothing and returns nil.
func (g *Guard) Resume(ctx context.Context, target spiffeid.ID) error {
	if target.IsZero() {
		return errors.New("agentguard: resume: no agent or trust domain given")
	}
	sp := &g.suspensions
	was, ok := sp.cur.Load().lookup(target)
	if !ok {
		return nil
	}
	if err := g.writeAudit(ctx, audit.Event{Time: g.cfg.now(), Kind: audit.KindResume, Target: target.String(),
		Outcome: audit.OutcomeOK}); err != nil {
		return fmt.Errorf("agentguard: resume %s: still suspended: %w", target, err)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	cur := sp.cur.Load()
	now, ok := cur.lookup(target)
	switch {
	case !ok:
		return nil // lifted meanwhile, by another Resume
	case now.seq != was.seq:
		return fmt.Errorf("agentguard: resume %s: %w: suspended again (%q) while the resumption was recorded; still suspended",
			target, ErrSuspended, now.Reason)
	}
	sp.seq++
	next := cur.clone()
	m, k := next.key(target)
	delete(m, k)
	if len(next.agents)+len(next.domains) == 0 {
		next = nil // back to the one-load fast path
	}
	sp.cur.Store(next)
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
		out = append(out, v.Suspension)
	}
	for _, v := range s.domains {
		out = append(out, v.Suspension)
	}
	slices.SortFunc(out, func(a, b Suspension) int { return cmp.Compare(a.Target.String(), b.Target.String()) })
	return out
}
