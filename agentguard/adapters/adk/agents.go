package adkguard

import (
	"fmt"
	"reflect"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/tool"
	"google.golang.org/adk/tool/agenttool"
)

// Agent builds the LLM agent cfg configures, guarded as Configure guards
// it, and remembers it as guarded: an agent that Guard.AgentTool may make
// a tool of.
func (g *Guard) Agent(cfg llmagent.Config) (agent.Agent, error) {
	g.Configure(&cfg)
	a, err := llmagent.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("adkguard: %w", err)
	}
	g.mu.Lock()
	g.agents[a] = true
	g.mu.Unlock()
	return a, nil
}

// AgentTool makes a tool of agent a, as agenttool.New does, that the guard
// lets run. ADK runs an agent tool's agent in a runner of its own, with no
// plugins, so the guard's plugin never sees its calls: only agents built
// with Guard.Agent, whose own callbacks guard them, may run. AgentTool
// fails with ErrUnguardedAgent if a, or an LLM agent under it (its
// sub-agents, to which it may transfer), was not built by g.Agent; other
// agents (workflow agents and custom ones) run no model of their own and
// are checked through their sub-agents.
//
// The agent's calls are checked and recorded as calls of their own, in the
// task of the agent tool's call, each with its own credentials: a Spec's
// credentials for the agent tool are not passed down to them.
func (g *Guard) AgentTool(a agent.Agent, cfg *agenttool.Config) (tool.Tool, error) {
	if err := g.checkAgent(a, map[agent.Agent]bool{}); err != nil {
		return nil, err
	}
	return &guardedTool{g: g, inner: agenttool.New(a, cfg), agentTool: true}, nil
}

// checkAgent checks that a and the agents under it are guarded.
func (g *Guard) checkAgent(a agent.Agent, seen map[agent.Agent]bool) error {
	if a == nil {
		return fmt.Errorf("%w: nil agent", ErrUnguardedAgent)
	}
	if !hashable(a) {
		return fmt.Errorf("%w: agent %q of type %T", ErrUnguardedAgent, a.Name(), a)
	}
	if seen[a] {
		return nil
	}
	seen[a] = true
	g.mu.Lock()
	built := g.agents[a]
	g.mu.Unlock()
	if !built && isLLMAgent(a) {
		return fmt.Errorf("%w: agent %q", ErrUnguardedAgent, a.Name())
	}
	for _, sub := range a.SubAgents() {
		if err := g.checkAgent(sub, seen); err != nil {
			return err
		}
	}
	return nil
}

// isLLMAgent reports whether a is an LLM agent (llmagent.New).
func isLLMAgent(a agent.Agent) bool {
	return pkgPath(a) == "google.golang.org/adk/agent/llmagent"
}

// isAgentTool reports whether t is an agent tool (agenttool.New), which
// runs an agent in a runner of its own.
func isAgentTool(t tool.Tool) bool {
	return pkgPath(t) == "google.golang.org/adk/tool/agenttool"
}

// hashable reports whether a can be a map key.
func hashable(a agent.Agent) bool {
	return reflect.TypeOf(a).Comparable()
}

// pkgPath is the package of v's type (of what it points to).
func pkgPath(v any) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return ""
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath()
}
