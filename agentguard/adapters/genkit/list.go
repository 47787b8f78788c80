package genkitguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/firebase/genkit/go/ai"

	"github.com/agentguard/go-sdk/agentguard"
)

// errListingOnly is what the handler of a tool registered for a listing
// returns: those registries are never called.
var errListingOnly = errors.New("genkitguard: tool registered for listing only")

// Tools returns those of tools that the agent may call in ctx's task, in
// their order, to give the model with ai.WithTools: the ones whose
// definitions are trusted and that policy permits the agent with some
// arguments, as agentguard.Registry.List decides. A tool whose definition
// the guard cannot use (a name genkit namespaces with "/", say) is left
// out. It is a convenience, not a grant: genkit runs any tool of its
// registry that the model names, offered or not, and the middleware
// authorizes each call in full.
//
// Without agentguard.WithLock, a tool listed for the first time is trusted
// on first use, as its first call would trust it (see agentguard.Guard.Lock);
// a tool whose definition changed since it was pinned stays hidden.
func (m *Middleware) Tools(ctx context.Context, tools ...ai.Tool) ([]ai.ToolRef, error) {
	reg := m.g.NewRegistry(m.toolset)
	for _, t := range tools {
		if t == nil {
			continue
		}
		d := m.describe(t)
		d.Handler = func(context.Context, json.RawMessage) (*agentguard.Result, error) {
			return nil, errListingOnly
		}
		// An unusable or repeated tool is not registered, so not listed.
		_ = reg.Register(d)
	}
	listed, err := reg.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("genkitguard: listing tools: %w", err)
	}
	allowed := make(map[string]bool, len(listed))
	for _, t := range listed {
		allowed[t.Name] = true
	}
	out := make([]ai.ToolRef, 0, len(listed))
	for _, t := range tools {
		if t != nil && allowed[t.Name()] {
			out = append(out, t)
			delete(allowed, t.Name()) // a repeated name is listed once
		}
	}
	return out, nil
}
