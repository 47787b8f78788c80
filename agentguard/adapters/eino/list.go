package einoguard

import (
	"context"
	"fmt"

	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/schema"
)

// ToolInfos returns the definitions of the tools the agent in ctx may call
// in its task, as policy decides (agentguard.Registry.List), in the
// toolset's order: what to bind to the chat model (WithTools, BindTools),
// so that the model never sees a tool policy always refuses, nor one whose
// definition is not trusted. Each is a new copy of the definition New read
// and the guard pinned, whatever the tool's Info says now. It is not a
// grant: every call is still decided in full by the middleware.
func (s *Toolset) ToolInfos(ctx context.Context) ([]*schema.ToolInfo, error) {
	idx, err := s.listed(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*schema.ToolInfo, len(idx))
	for i, j := range idx {
		if out[i], err = s.pins[j].info(); err != nil {
			return nil, fmt.Errorf("einoguard: tool %q: %w", s.pins[j].name, err)
		}
	}
	return out, nil
}

// Tools returns the tools the agent in ctx may call in its task, as
// ToolInfos decides, for APIs that take eino tools rather than their
// definitions (a ReAct agent's ToolsConfig, which binds the model to each
// tool's Info). Each runs as the tool given to New does, but its Info is
// the definition the guard pinned, so that a tool whose own Info changes
// after New (a rug pull) cannot show the model another description than
// the one the guard checks.
func (s *Toolset) Tools(ctx context.Context) ([]tool.BaseTool, error) {
	idx, err := s.listed(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]tool.BaseTool, len(idx))
	for i, j := range idx {
		out[i] = s.pinned[j]
	}
	return out, nil
}

// listed returns the positions of the tools the guard lists, in order.
func (s *Toolset) listed(ctx context.Context) ([]int, error) {
	allowed, err := s.reg.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("einoguard: listing toolset %q: %w", s.name, err)
	}
	idx := make([]int, 0, len(allowed))
	for _, t := range allowed {
		if j, ok := s.index[t.Name]; ok {
			idx = append(idx, j)
		}
	}
	return idx, nil
}
