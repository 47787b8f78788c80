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
// among their callbacks and OnToolError, AfterTool and AfterAgent first
// among theirs, so that policy sees the arguments the tool gets and no
// other callback of the agent keeps the guard from recording a call's
// outcome. Call it once the configuration is otherwise complete, before
// llmagent.New; Guard.Agent does both. Plugins' callbacks run before the
// agent's: a plugin's tool-error callback sees a wrapped tool's error
// only once the guard has scrubbed it, but that of a tool ADK adds itself
// (transfer_to_agent) as it is.
func (g *Guard) Configure(cfg *llmagent.Config) {
	cfg.Tools = g.Tools(cfg.Tools...)
	toolsets := make([]tool.Toolset, len(cfg.Toolsets))
	for i, ts := range cfg.Toolsets {
		toolsets[i] = g.Toolset(ts)
	}
	cfg.Toolsets = toolsets
	cfg.BeforeModelCallbacks = append(slices.Clone(cfg.BeforeModelCallbacks), g.BeforeModel)
	cfg.BeforeToolCallbacks = append(slices.Clone(cfg.BeforeToolCallbacks), g.BeforeTool)
	cfg.OnToolErrorCallbacks = append([]llmagent.OnToolErrorCallback{g.OnToolError}, cfg.OnToolErrorCallbacks...)
	cfg.AfterToolCallbacks = append([]llmagent.AfterToolCallback{g.AfterTool}, cfg.AfterToolCallbacks...)
	cfg.AfterAgentCallbacks = append([]agent.AfterAgentCallback{g.AfterAgent}, cfg.AfterAgentCallbacks...)
}

// Plugin returns the guard as an ADK plugin, for runner.Config's
// PluginConfig: it guards the tool calls and filters the tool lists of
// every agent the runner runs, sub-agents included (not the agents of
// agent tools, which ADK runs in runners of their own: see AgentTool),
// and finishes at the end of each run the calls whose outcome it did not
// see. Plugins' callbacks run before the agents' own; put this plugin
// first among the plugins, so that no other plugin answers for a tool, or
// sees a tool's error, before it.
//
// A plugin cannot wrap tools, and an unwrapped tool runs with ADK's
// context and is checked only by callbacks: wrap the agents' tools too,
// best with Configure (or Guard.Agent), which is safe beside the plugin
// (each call is guarded once). An unwrapped tool finds its credentials
// with Guard.Credential; a before-tool callback of the agent that changes
// its arguments after the plugin checked them is caught only after the
// tool ran (its result is withheld, the call recorded as failed).
func (g *Guard) Plugin() (*plugin.Plugin, error) {
	return plugin.New(plugin.Config{
		Name:                PluginName,
		BeforeModelCallback: g.BeforeModel,
		BeforeToolCallback:  g.BeforeTool,
		AfterToolCallback:   g.AfterTool,
		OnToolErrorCallback: g.OnToolError,
		AfterRunCallback:    g.afterRun,
	})
}
