package langchainguard

import (
	"context"
	"fmt"
	"strings"

	"github.com/tmc/langchaingo/agents"
	"github.com/tmc/langchaingo/tools"

	"github.com/agentguard/go-sdk/agentguard"
)

// Agent returns a so that langchaingo's executor dispatches only guarded
// tools: the executor runs the tools the agent's GetTools returns, and an
// agent may hold a tool the toolset was not given (appended to its Tools
// field, or passed to its constructor unwrapped). Agent leaves the tools of
// any Toolset of the same guard as they are and replaces every other tool
// (an unwrapped one, or one guarded by another Guard) by one that never
// runs it: each call is denied, audited and traced as a call of a tool
// not registered in this toolset (agentguard.ErrUnknownTool), and the
// model gets the denial as its observation. Give the executor the agent
// Agent returns:
//
//	executor := agents.NewExecutor(set.Agent(agent), agents.WithCallbacksHandler(set.Callbacks()))
//
// The tools the model is told about are still the agent's own (its
// prompt or function list, such as Allowed's); only their dispatch
// changes. The executor can also dispatch the toolset's other tools, those
// the agent was not given (that Allowed left out): a model that calls one
// anyway gets the guard's decision, audited like any other call, rather
// than the executor's "not a valid tool", so that an agent probing tools
// it was not shown is in the audit log.
func (s *Toolset) Agent(a agents.Agent) agents.Agent {
	return &guardedAgent{Agent: a, set: s}
}

// guardedAgent is an agent whose tools are all guarded.
type guardedAgent struct {
	agents.Agent
	set *Toolset
}

var _ agents.Agent = (*guardedAgent)(nil)

// GetTools returns the agent's tools, those not guarded by a Toolset of
// this guard replaced by refusals, then the toolset's tools the agent does
// not hold (by name, as the executor matches them: without regard to case).
func (a *guardedAgent) GetTools() []tools.Tool {
	in := a.Agent.GetTools()
	out := make([]tools.Tool, 0, len(in)+len(a.set.tools))
	held := map[string]bool{}
	for _, t := range in {
		if gt, ok := t.(*guardedTool); ok && gt.set.guard == a.set.guard {
			out = append(out, t)
		} else {
			t = &refusedTool{set: a.set, inner: t}
			out = append(out, t)
		}
		held[strings.ToUpper(t.Name())] = true
	}
	for _, gt := range a.set.tools {
		if !held[strings.ToUpper(gt.name)] {
			out = append(out, gt)
		}
	}
	return out
}

// refusedTool stands in for a tool no Toolset guards: every call is denied.
type refusedTool struct {
	set   *Toolset
	inner tools.Tool
}

var _ tools.Tool = (*refusedTool)(nil)

// Name returns the name of the tool it stands in for.
func (t *refusedTool) Name() string {
	if t.inner == nil {
		return ""
	}
	return t.inner.Name()
}

// Description returns the description of the tool it stands in for.
func (t *refusedTool) Description() string {
	if t.inner == nil {
		return ""
	}
	return t.inner.Description()
}

// Call denies the call through the toolset's empty registry, which audits
// and traces it; the tool it stands in for never runs.
func (t *refusedTool) Call(ctx context.Context, input string) (string, error) {
	name := t.Name()
	args, err := argsOf(false, input)
	if err != nil {
		return "", fmt.Errorf("langchainguard: tool %q: arguments: %w", name, err)
	}
	res, err := t.set.unlisted.Call(ctx, agentguard.Call{ID: t.set.ids.take(ctx, name, input), Name: name, Args: args})
	if err == nil {
		// The registry is empty: a call through it cannot succeed.
		return "", fmt.Errorf("langchainguard: tool %q is not guarded", name)
	}
	return t.set.observation(name, res, err)
}
