package agentguard

import (
	"context"
	"fmt"
	"sync"

	"github.com/agentguard/go-sdk/policy"
)

// Registry holds the tools of one toolset and runs every call of them
// through its guard. It is safe for concurrent use.
type Registry struct {
	g       *Guard
	toolset string

	mu    sync.RWMutex
	tools map[string]*Tool
	order []string
}

// NewRegistry returns an empty registry for the toolset of that name (policy's
// Toolset::"<toolset>"), guarded by g.
func (g *Guard) NewRegistry(toolset string) *Registry {
	return &Registry{g: g, toolset: toolset, tools: map[string]*Tool{}}
}

// Register adds tools. A tool with no Toolset joins the registry's. A
// repeated or invalid tool is an error and nothing is added.
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
	for _, t := range tools {
		c := t.clone()
		if c.Toolset == "" {
			c.Toolset = r.toolset
		}
		r.tools[c.Name] = c
		r.order = append(r.order, c.Name)
	}
	return nil
}

// Lookup returns a copy of the registered tool of that name: changing it
// changes nothing in the registry.
func (r *Registry) Lookup(name string) (*Tool, bool) {
	t, ok := r.lookup(name)
	if !ok {
		return nil, false
	}
	return t.clone(), true
}

func (r *Registry) lookup(name string) (*Tool, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.tools[name]
	return t, ok
}

// Tools returns copies of every registered tool, in registration order,
// whether or not the current agent may call them.
func (r *Registry) Tools() []*Tool {
	out := r.registered()
	for i, t := range out {
		out[i] = t.clone()
	}
	return out
}

func (r *Registry) registered() []*Tool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Tool, len(r.order))
	for i, n := range r.order {
		out[i] = r.tools[n]
	}
	return out
}

// Call runs call of the tool named call.Name through the guard. An unknown
// tool is denied (and audited) with ErrUnknownTool.
func (r *Registry) Call(ctx context.Context, call Call) (*Result, error) {
	t, ok := r.lookup(call.Name)
	if !ok {
		return r.unknown(ctx, call)
	}
	return r.g.run(ctx, t, call, runHandler) // validated by Register
}

func (r *Registry) unknown(ctx context.Context, call Call) (*Result, error) {
	ctx, p := r.g.begin(ctx, &Tool{Name: call.Name, Toolset: r.toolset}, call)
	defer p.span.End()
	return p.deny(ctx, StepLookup, "no tool of that name is registered", nil, ErrUnknownTool)
}

// List returns copies of the tools the current agent may call with some
// arguments in the current task, in registration order: an agent never sees
// a tool that policy will always refuse, nor one whose definition fails the
// integrity check (its description is what a model reads). It is a convenience for building the model's tool
// list, not a grant: every call is still authorized in full.
//
// Conditions on context.args and context.approval are ignored when listing:
// a permit's when/unless clause that reads them does not restrict the
// listing, and a forbid clause that reads them does not hide the tool. Put
// conditions on the task in clauses of their own to have them hide tools.
func (r *Registry) List(ctx context.Context) ([]*Tool, error) {
	id, err := r.g.cfg.identity.Identity(ctx)
	if err == nil && id.IsZero() {
		err = ErrNoIdentity
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoIdentity, err)
	}
	if err := r.g.checkSuspended(id); err != nil {
		return nil, err
	}
	var state policy.Task
	if task, ok := TaskFromContext(ctx); ok {
		if state, err = task.snapshot(); err != nil {
			return nil, err
		}
	}
	now := r.g.cfg.now()
	var out []*Tool
	for _, t := range r.registered() {
		if r.g.verifyTool(ctx, t) != nil {
			continue
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
