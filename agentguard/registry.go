package agentguard

import (
	"context"
	"errors"
	"fmt"
	"sync"

	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// Registry holds the tools of one toolset and runs every call of them
// through its guard. Each tool's definition must be pinned in the guard's
// Lock to be listed or called: Register trusts the author's own tools on
// first use (without WithLock); Sync, which takes what a tool server lists,
// never does, and its new or changed tools wait for Review. It is safe for
// concurrent use.
type Registry struct {
	g       *Guard
	toolset string

	mu    sync.RWMutex
	tools map[string]*entry
	order []string
}

// entry is a registered tool, never changed once registered, with its
// fingerprint.
type entry struct {
	tool *Tool
	fp   string
}

// NewRegistry returns an empty registry for the toolset of that name (policy's
// Toolset::"<toolset>"), guarded by g.
func (g *Guard) NewRegistry(toolset string) *Registry {
	return &Registry{g: g, toolset: toolset, tools: map[string]*entry{}}
}

// Register adds tools. A tool with no Toolset joins the registry's. A
// repeated or invalid tool is an error and nothing is added. Without
// WithLock, a tool not pinned yet is pinned as registered (trust on first
// use), and audited so (see Guard.Lock); one pinned with another
// definition, or whose name Sync holds for review, stays blocked until
// reviewed. In strict audit mode, a pin whose record cannot be written is
// an error, and nothing is added (the tools pinned before it stay pinned,
// as recorded). Register is for the agent's own tools: take a tool
// server's through Sync.
func (r *Registry) Register(tools ...*Tool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, t := range tools {
		if err := t.validate(true); err != nil {
			return err
		}
		if _, dup := r.tools[t.Name]; dup || seen[t.Name] {
			return fmt.Errorf("agentguard: tool %q already registered", t.Name)
		}
		seen[t.Name] = true
	}
	// No call, no context: the records of pins on first use are written
	// with a background one, naming the guard's agent if it has one. The
	// source is asked directly, not through identify: a source that knows
	// no agent outside a request (a server's, whose callers come with
	// their requests) has not lost an identity.
	ctx := context.Background()
	var id identity.Identity
	if r.g.pins().tofu {
		if known, err := r.g.cfg.identity.Identity(ctx); err == nil {
			id = known
		}
	}
	es := make([]*entry, len(tools))
	for i, t := range tools {
		es[i] = r.newEntry(t)
		if err := r.g.firstUseTool(ctx, id, es[i].tool.Toolset, es[i].tool.Name, es[i].fp); err != nil {
			return err
		}
	}
	for _, e := range es {
		r.tools[e.tool.Name] = e
		r.order = append(r.order, e.tool.Name)
	}
	return nil
}

func (r *Registry) newEntry(t *Tool) *entry {
	c := t.clone()
	if c.Toolset == "" {
		c.Toolset = r.toolset
	}
	return &entry{tool: c, fp: c.Fingerprint()}
}

// Sync makes tools the registry's whole toolset, as a tool server lists it
// now (an MCP server's tools/list after a list_changed notification): it
// adds the new tools, replaces the definitions that changed and removes the
// tools no longer listed. It returns what changed, in the order of tools
// and then of the removed tools (Previous is the definition registered
// before). Tools added or changed by Sync are never trusted on first use,
// however they are called (through the registry, or Invoke or Middleware
// under any toolset, or none):
// until Review approves them they are hidden from List and their calls are
// denied with ErrIntegrity, so a server cannot grow or rewrite the agent's
// tools unreviewed. A tool that comes back as it was pinned is trusted
// again. An invalid or repeated tool is an error, and nothing changes.
func (r *Registry) Sync(tools ...*Tool) ([]ToolChange, error) {
	seen := map[string]bool{}
	for _, t := range tools {
		if err := t.validate(true); err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("agentguard: tool %q listed twice", t.Name)
		}
		seen[t.Name] = true
	}
	pins := r.g.pins()
	r.mu.Lock()
	defer r.mu.Unlock()
	var changes []ToolChange
	next := make(map[string]*entry, len(tools))
	order := make([]string, 0, len(tools))
	for _, t := range tools {
		e := r.newEntry(t)
		tc := ToolChange{Toolset: e.tool.Toolset, Name: e.tool.Name, Change: ChangeAdded, Fingerprint: e.fp}
		if old, ok := r.tools[t.Name]; ok {
			tc.Change, tc.Previous = ChangeChanged, old.fp
		}
		if tc.Previous != e.fp {
			changes = append(changes, tc)
			pins.hold(tc.Name)
		}
		next[t.Name] = e
		order = append(order, t.Name)
	}
	for _, n := range r.order {
		if _, ok := next[n]; !ok {
			old := r.tools[n]
			changes = append(changes, ToolChange{Toolset: old.tool.Toolset, Name: n, Change: ChangeRemoved, Fingerprint: old.fp})
		}
	}
	r.tools, r.order = next, order
	return changes, nil
}

// Pending lists the registered tools whose definitions are not trusted now,
// in registration order: ChangeAdded when nothing is pinned for the tool,
// ChangeChanged when another definition is (Previous). Review them to
// have them listed and called. (A tool refused by a WithIntegrity check is
// not pending: no review can change that check.)
func (r *Registry) Pending() []ToolChange {
	l := r.g.pins().lock
	var out []ToolChange
	for _, e := range r.registered() {
		pin, ok := l.Tool(e.tool.Toolset, e.tool.Name)
		if ok && pin == e.fp {
			continue
		}
		tc := ToolChange{Toolset: e.tool.Toolset, Name: e.tool.Name, Change: ChangeAdded, Fingerprint: e.fp, Previous: pin}
		if ok {
			tc.Change = ChangeChanged
		}
		out = append(out, tc)
	}
	return out
}

// Review reviews the pending tools of those names, or every pending tool
// when no name is given, one after the other, as Guard.ReviewTool does:
// policy must permit Action::"change_toolset" and an approver must grant
// each change, which is then pinned. It returns the changes reviewed, each
// with Approved set, and the refusals (*ChangeError) joined. A name not
// registered is an error and nothing is reviewed; a tool trusted already
// is skipped.
func (r *Registry) Review(ctx context.Context, names ...string) ([]ToolChange, error) {
	es := r.registered()
	if len(names) > 0 {
		byName := make(map[string]*entry, len(es))
		for _, e := range es {
			byName[e.tool.Name] = e
		}
		es = es[:0]
		for _, n := range names {
			e, ok := byName[n]
			if !ok {
				return nil, fmt.Errorf("agentguard: review: %w: %q", ErrUnknownTool, n)
			}
			es = append(es, e)
		}
	}
	var out []ToolChange
	var errs []error
	for _, e := range es {
		tc, reviewed, err := r.g.reviewTool(ctx, e.tool, e.fp)
		if reviewed {
			out = append(out, tc)
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// Lookup returns a copy of the registered tool of that name: changing it
// changes nothing in the registry.
func (r *Registry) Lookup(name string) (*Tool, bool) {
	e, ok := r.lookup(name)
	if !ok {
		return nil, false
	}
	return e.tool.clone(), true
}

func (r *Registry) lookup(name string) (*entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.tools[name]
	return e, ok
}

// Tools returns copies of every registered tool, in registration order,
// whether or not the current agent may call them or their definitions are
// trusted.
func (r *Registry) Tools() []*Tool {
	es := r.registered()
	out := make([]*Tool, len(es))
	for i, e := range es {
		out[i] = e.tool.clone()
	}
	return out
}

func (r *Registry) registered() []*entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*entry, len(r.order))
	for i, n := range r.order {
		out[i] = r.tools[n]
	}
	return out
}

// Call runs call of the tool named call.Name through the guard. An unknown
// tool is denied (and audited) with ErrUnknownTool.
func (r *Registry) Call(ctx context.Context, call Call) (*Result, error) {
	e, ok := r.lookup(call.Name)
	if !ok {
		return r.unknown(ctx, call)
	}
	// validated by Register; the entry tells verifyTool its fingerprint.
	return r.g.run(context.WithValue(ctx, registryTool{}, e), e.tool, call, runHandler)
}

func (r *Registry) unknown(ctx context.Context, call Call) (*Result, error) {
	ctx, p := r.g.begin(ctx, &Tool{Name: call.Name, Toolset: r.toolset}, call)
	defer p.span.End()
	// The record names who asked for the tool, when the agent is known: a
	// model probing for tools it was not given is worth seeing.
	if id, _, err := r.g.identify(ctx); err == nil {
		p.ev.Agent, p.ev.Chain = id.ID.String(), id.ChainStrings()
		p.span.SetAttributes(semconv.GenAIAgentID(p.ev.Agent))
	}
	if task, ok := TaskFromContext(ctx); ok && task.g == r.g {
		p.ev.Task, p.ev.OnBehalfOf = task.spec.ID, task.spec.OnBehalfOf
	}
	return p.deny(ctx, StepLookup, "no tool of that name is registered", nil, ErrUnknownTool)
}

// List returns copies of the tools the current agent may call with some
// arguments in the current task, in registration order: an agent never sees
// a tool that policy will always refuse, nor one whose definition is not
// trusted (not pinned as it is, or refused by WithIntegrity: its
// description is what a model reads). It is a convenience for building the
// model's tool list, not a grant: every call is still authorized in full.
// For a sub-agent, a tool is listed only if every agent up its delegation
// chain could call it too. A suspended agent gets ErrSuspended. A refused
// listing (no identity, a suspended agent, a task of another guard or one
// that has ended) is audited (audit.KindToolList); in strict audit mode,
// one that cannot be recorded returns both errors, and so does one whose
// sink panicked, in either mode.
//
// Conditions on context.args and context.approval are ignored when listing:
// a permit's when/unless clause that reads them does not restrict the
// listing, and a forbid clause that reads them does not hide the tool. Put
// conditions on the task in clauses of their own to have them hide tools.
func (r *Registry) List(ctx context.Context) ([]*Tool, error) {
	// The agent as a call would see it: with its delegation chain, so that
	// a sub-agent is shown only what every agent above it may call too.
	id, reason, err := r.g.identify(ctx)
	if err != nil {
		return nil, r.refuseList(ctx, id, StepIdentify, reason, err)
	}
	if err := r.g.checkSuspended(id); err != nil {
		return nil, r.refuseList(ctx, id, StepSuspend, "agent suspended", err)
	}
	task, inTask := TaskFromContext(ctx)
	if inTask && task.g != r.g {
		return nil, r.refuseList(ctx, id, StepTask, "task was started by another guard", ErrForeignTask)
	}
	now := r.g.cfg.now()
	l := r.g.pins().lock
	var out []*Tool
	for _, e := range r.registered() {
		t := e.tool
		if r.g.trusted(ctx, l, t, e.fp) != nil {
			continue
		}
		var state policy.Task
		if inTask {
			// Per tool: policy may hide a tool by context.task.tool_calls.
			if state, err = task.snapshot(t.Name, now); err != nil {
				return nil, r.refuseList(ctx, id, StepTask, "task has ended", err)
			}
		}
		d, err := r.g.decide(ctx, &policy.Request{
			Agent: id, Tool: t.policyTool(), Task: state, Time: now, Listing: true,
		})
		if err != nil || !d.Allowed {
			continue // fail closed: a tool policy cannot vouch for stays hidden
		}
		out = append(out, t.clone())
	}
	return out, nil
}

// refuseList records a refused listing by agent id (zero: unknown) and
// returns err, joined with the record's error when it cannot be written.
func (r *Registry) refuseList(ctx context.Context, id identity.Identity, step, reason string, err error) error {
	ev := audit.Event{Time: r.g.cfg.now(), Kind: audit.KindToolList, Toolset: r.toolset,
		Decision: audit.Deny, Outcome: audit.OutcomeDenied, Step: step, Reason: reason, Error: err.Error()}
	if !id.IsZero() {
		ev.Agent, ev.Chain = id.ID.String(), id.ChainStrings()
	}
	if task, ok := TaskFromContext(ctx); ok {
		ev.Task, ev.OnBehalfOf = task.spec.ID, task.spec.OnBehalfOf
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		ev.TraceID, ev.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	if aerr := r.g.writeAudit(ctx, ev); aerr != nil {
		return errors.Join(err, aerr)
	}
	return err
}

// Outcome is what came of one call of CallEach.
type Outcome struct {
	Result *Result
	Err    error
}

// CallEach runs calls, the tool calls a model asked for in one turn,
// through the registry (Call) and returns their outcomes in the order of
// calls. With concurrency 1 or less they run one after another, in order,
// so that decisions that read the task's state (its calls, its taint) come
// out the same on every run; otherwise at most concurrency run at once.
// It returns once every call has returned.
func (r *Registry) CallEach(ctx context.Context, calls []Call, concurrency int) []Outcome {
	out := make([]Outcome, len(calls))
	if concurrency <= 1 || len(calls) <= 1 {
		for i, c := range calls {
			out[i].Result, out[i].Err = r.Call(ctx, c)
		}
		return out
	}
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, c := range calls {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i].Result, out[i].Err = r.Call(ctx, c)
		})
	}
	wg.Wait()
	return out
}
