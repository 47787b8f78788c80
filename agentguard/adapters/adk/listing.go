package adkguard

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/model"
	"google.golang.org/adk/tool"
	"google.golang.org/genai"

	"github.com/agentguard/go-sdk/agentguard"
)

// Allowed returns the tools of tools that policy lets the agent of ctx
// call with some arguments in the task of ctx, in order: what
// agentguard.Registry.List decides for them, in one registry per toolset.
// A tool whose definition is not trusted (the guard's Lock pins another
// one, or none with agentguard.WithLock) or cannot be described is left
// out. It is the model's tool list, not a grant: every call is still
// authorized in full by BeforeTool.
func (g *Guard) Allowed(ctx context.Context, tools []tool.Tool) ([]tool.Tool, error) {
	descs := make([]*agentguard.Tool, len(tools))
	var toolsets []string
	for i, t := range tools {
		at, err := g.describe(t)
		if err != nil {
			continue // fail closed: what cannot be described is not listed
		}
		descs[i] = at
		if !slices.Contains(toolsets, at.Toolset) {
			toolsets = append(toolsets, at.Toolset)
		}
	}
	type ref struct{ toolset, name string }
	listed := map[ref]string{} // fingerprint listed
	for _, ts := range toolsets {
		r := g.registry(ts)
		for _, at := range descs {
			if at != nil && at.Toolset == ts {
				g.register(r, at)
			}
		}
		list, err := r.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("adkguard: listing toolset %q: %w", ts, err)
		}
		for _, t := range list {
			listed[ref{ts, t.Name}] = t.Fingerprint()
		}
	}
	var out []tool.Tool
	for i, t := range tools {
		at := descs[i]
		if at == nil {
			continue
		}
		// The registry lists the definition it holds: this tool only if
		// that is still its definition.
		if fp, ok := listed[ref{at.Toolset, at.Name}]; ok && fp == at.Fingerprint() {
			out = append(out, t)
		}
	}
	return out, nil
}

// registry returns the registry of toolset ts.
func (g *Guard) registry(ts string) *agentguard.Registry {
	g.listMu.Lock()
	defer g.listMu.Unlock()
	r, ok := g.registries[ts]
	if !ok {
		r = g.g.NewRegistry(ts)
		g.registries[ts] = r
	}
	return r
}

// register adds at to r if r has no tool of its name. A tool whose
// definition changed keeps its first registration: Allowed hides it, and
// the guard refuses its calls unless the change is reviewed.
func (g *Guard) register(r *agentguard.Registry, at *agentguard.Tool) {
	g.listMu.Lock()
	defer g.listMu.Unlock()
	if _, ok := r.Lookup(at.Name); ok {
		return
	}
	c := *at
	c.Handler = refuseHandler
	_ = r.Register(&c) // an invalid tool stays unregistered, so unlisted
}

// refuseHandler is the handler of the tools registered for listing: they
// are never called through the registry.
func refuseHandler(context.Context, json.RawMessage) (*agentguard.Result, error) {
	return nil, ErrUnguarded
}

// BeforeModel is the guard's before-model callback (an
// llmagent.BeforeModelCallback): it removes from the request every tool
// that policy does not list for the agent (Allowed), with its function
// declaration, so that the model is offered only what it may call. That
// covers the agent's tools and toolsets and those ADK adds itself (such as
// transfer_to_agent). A declaration with no tool behind it is removed too.
// A refused listing (an agent without identity, or suspended) fails the
// model call.
//
// It also finishes the agent's calls of its previous model response that
// the guard allowed and whose outcome no callback reported (ErrUnfinished):
// ADK runs them all before it asks the model again.
func (g *Guard) BeforeModel(ctx agent.CallbackContext, req *model.LLMRequest) (*model.LLMResponse, error) {
	g.sweepAgent(ctx)
	if req == nil {
		return nil, nil
	}
	var tools []tool.Tool
	for _, name := range slices.Sorted(maps.Keys(req.Tools)) {
		if t, ok := req.Tools[name].(tool.Tool); ok {
			tools = append(tools, t)
		}
	}
	allowed, err := g.Allowed(ctx, tools)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, t := range allowed {
		keep[t.Name()] = true
	}
	for name := range req.Tools {
		if !keep[name] {
			delete(req.Tools, name)
		}
	}
	if req.Config == nil {
		return nil, nil
	}
	var kept []*genai.Tool
	for _, gt := range req.Config.Tools {
		if gt == nil || gt.FunctionDeclarations == nil {
			kept = append(kept, gt)
			continue
		}
		c := *gt
		c.FunctionDeclarations = nil
		for _, d := range gt.FunctionDeclarations {
			if d != nil && keep[d.Name] {
				c.FunctionDeclarations = append(c.FunctionDeclarations, d)
			}
		}
		if c.FunctionDeclarations == nil && reflect.ValueOf(c).IsZero() {
			continue // nothing left of it
		}
		kept = append(kept, &c)
	}
	req.Config.Tools = kept
	return nil, nil
}
