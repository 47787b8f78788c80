package adkguard

import (
	"slices"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/plugin"
	"google.golang.org/adk/tool"
)

// PluginName is the name of the plugin Guard.Plugin returns.
const PluginName = "agentguard"

// Configure guards the agent cfg configures: it wraps its Tools and
// Toolsets (Tools, Toolset), and installs BeforeModel and BeforeTool last
// among their callbacks and AfterTool and AfterAgent first among theirs,
// so that policy sees the arguments the tool gets and no other callback
// can keep the guard from recording a call's outcome. Call it once the
// configuration is otherwise complete, before llmagent.New.
func (g *Guard) Configure(cfg *llmagent.Config) {
	cfg.Tools = g.Tools(cfg.Tools...)
	toolsets := make([]tool.Toolset, len(cfg.Toolsets))
	for i, ts := range cfg.Toolsets {
		toolsets[i] = g.Toolset(ts)
	}
	cfg.Toolsets = toolsets
	cfg.BeforeModelCallbacks = append(slices.Clone(cfg.BeforeModelCallbacks), g.BeforeModel)
	cfg.BeforeToolCallbacks = append(slices.Clone(cfg.BeforeToolCallbacks), g.BeforeTool)
	cfg.AfterToolCallbacks = append([]llmagent.AfterToolCallback{g.AfterTool}, cfg.AfterToolCallbacks...)
	cfg.AfterAgentCallbacks = append([]agent.AfterAgentCallback{g.AfterAgent}, cfg.AfterAgentCallbacks...)
}

// Plugin returns the guard as an ADK plugin, for runner.Config's
// PluginConfig: it guards the tool calls and filters the tool lists of
// every agent the runner runs, sub-agents included, and finishes at the
// end of each run the calls whose outcome it did not see. Plugins' callbacks
// run before the agents' own; put this plugin first among the plugins,
// so that no other plugin answers for a tool before it. A plugin cannot
// wrap tools: wrap those that need credentials with Tools or Toolset (or
// use Configure as well, which is safe: each call is guarded once).
func (g *Guard) Plugin() (*plugin.Plugin, error) {
	return plugin.New(plugin.Config{
		Name:                PluginName,
		BeforeModelCallback: g.BeforeModel,
		BeforeToolCallback:  g.BeforeTool,
		AfterToolCallback:   g.AfterTool,
		AfterRunCallback:    g.afterRun,
	})
}
