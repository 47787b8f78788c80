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
	maxTools   int
	inProcess  *identity.Identity
}

func newConfig(opts []Option) *config {
	c := &config{clientInfo: mcp.Implementation{Name: "agentguard-mcpgo", Version: "1"}, maxTools: DefaultMaxTools}
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

// WithMaxTools bounds how many tools a Client's listing may hold
// (DefaultMaxTools unless set): a server that lists more fails the
// listing with ErrTooManyTools, and the Client then holds no tools until a
// listing succeeds. n <= 0 keeps the default. Client only.
func WithMaxTools(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxTools = n
		}
	}
}

// WithInProcessCaller makes a Server treat the requests of mcp-go's
// in-process clients (client.NewInProcessClient, whose session is a
// *server.InProcessSession) as made by id, as if verified. It is for tests
// and for a server embedded in the agent's own process, whose only callers
// are that process's code. Nothing is verified, so it never applies to
// anything else: a request that came over HTTP (it carries headers), a
// request of any other session (stdio, SSE, streamable HTTP), and a request
// whose caller JWTSVIDContext verified keep their own caller, or none, and
// a request with none is refused. Server only.
func WithInProcessCaller(id identity.Identity) Option {
	return func(c *config) { c.inProcess = &id }
}
