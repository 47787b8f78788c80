package mcpgoguard

import (
	"log/slog"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/agentguard/go-sdk/identity"
)

// Option configures a Client or a Server. Each says which it applies to;
// the other ignores it.
type Option func(*config)

type config struct {
	toolset    string
	clientInfo mcp.Implementation
	toolConfig ToolConfig
	logger     *slog.Logger
	fixed      *identity.Identity
}

func newConfig(opts []Option) *config {
	c := &config{clientInfo: mcp.Implementation{Name: "agentguard-mcpgo", Version: "1"}}
	for _, o := range opts {
		o(c)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

// WithToolset names the toolset (policy's Toolset::"<name>") of the
// server's tools, for a Client, in place of the name the server gives in
// its initialize result. It is required for a client that was initialized
// before NewClient.
func WithToolset(name string) Option {
	return func(c *config) { c.toolset = name }
}

// WithClientInfo sets the name and version a Client gives the server when
// NewClient initializes the session. The default is "agentguard-mcpgo".
func WithClientInfo(info mcp.Implementation) Option {
	return func(c *config) { c.clientInfo = info }
}

// WithToolConfig sets what the guard knows of each tool beyond its MCP
// definition (risk, labels, credentials, audit of arguments), for a Client
// (the server's tools) and for a Server (its own tools, including task
// tools).
func WithToolConfig(f ToolConfig) Option {
	return func(c *config) { c.toolConfig = f }
}

// WithLogger sets where a Client logs the tools it leaves out because
// their definitions are not usable. Nil means slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithFixedCaller makes a Server treat every request as coming from id, as
// if it had been verified. It is FOR TESTS and in-process servers only:
// nothing is verified, so any client reaching the server acts as id. Over
// HTTP, verify callers with JWTSVIDContext instead.
func WithFixedCaller(id identity.Identity) Option {
	return func(c *config) { c.fixed = &id }
}
