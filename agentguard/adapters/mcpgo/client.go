package mcpgoguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/agentguard/go-sdk/agentguard"
)

// Client is an mcp-go client whose tool calls pass the guard. The server's
// tools are kept in a guard Registry named after the server, taken with
// Registry.Sync: they are never trusted on first use, and a tool that is new
// or whose definition changed (a rug pull) is hidden and its calls denied
// with agentguard.ErrIntegrity until Review approves it. Tools lists only
// what policy lets the agent call. It is safe for concurrent use.
//
// Use the Client, not the mcp-go client it wraps, for tools: calls made on
// the mcp-go client directly are not guarded.
type Client struct {
	g       *agentguard.Guard
	mc      *client.Client
	reg     *agentguard.Registry
	toolset string
	cfg     *config

	// refresh serializes listings, so that the registry and defs change
	// together.
	refresh sync.Mutex
	// defs holds the MCP definitions of the tools synced last, by name.
	defs atomic.Pointer[map[string]definition]
	// stale is set by a tools/list_changed notification, until the next
	// listing.
	stale atomic.Bool
}

// definition is an MCP tool as listed, with the fingerprint of the guard's
// description of it.
type definition struct {
	tool mcp.Tool
	fp   string
}

// requestKey carries the tools/call request a Client's call started from,
// so that the tool's handler sends its metadata along.
type requestKey struct{}

// NewClient guards the tools of the server mc is connected to. Unless mc
// is initialized already, NewClient starts it and initializes the session
// (WithClientInfo), and the toolset takes the server's name
// (serverInfo.name) unless WithToolset names it. For a client initialized
// before, WithToolset is required. NewClient then lists the server's tools
// and syncs them into the registry: look at Pending and call Review to
// trust them, unless the guard's lock pins them already.
//
// NewClient registers a notification handler on mc that marks the tools
// stale on notifications/tools/list_changed; the next Tools or CallTool
// lists them again first. Over the streamable HTTP transport with protocol
// 2026-07-28, mcp-go delivers notifications only while mc.Listen runs;
// Tools lists the tools afresh each time all the same. The Client starts
// no goroutine and has nothing to close; closing mc is the caller's.
func NewClient(ctx context.Context, g *agentguard.Guard, mc *client.Client, opts ...Option) (*Client, error) {
	if g == nil || mc == nil {
		return nil, errors.New("mcpgoguard: NewClient needs a guard and a client")
	}
	cfg := newConfig(opts)
	toolset := cfg.toolset
	if !mc.IsInitialized() {
		if err := mc.Start(ctx); err != nil {
			return nil, fmt.Errorf("mcpgoguard: start client: %w", err)
		}
		res, err := mc.Initialize(ctx, mcp.InitializeRequest{Params: mcp.InitializeParams{ClientInfo: cfg.clientInfo}})
		if err != nil {
			return nil, fmt.Errorf("mcpgoguard: initialize: %w", err)
		}
		if toolset == "" {
			toolset = res.ServerInfo.Name
		}
	}
	if toolset == "" {
		return nil, errors.New("mcpgoguard: no toolset: the server gave no name, or the client was initialized before NewClient; use WithToolset")
	}
	c := &Client{g: g, mc: mc, reg: g.NewRegistry(toolset), toolset: toolset, cfg: cfg}
	empty := map[string]definition{}
	c.defs.Store(&empty)
	mc.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationToolsListChanged) {
			c.stale.Store(true)
		}
	})
	if _, err := c.Refresh(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Toolset returns the name of the toolset the server's tools belong to.
func (c *Client) Toolset() string { return c.toolset }

// Registry returns the registry holding the server's tools, for Pending,
// Review and Lookup. Calls through it are guarded as CallTool's are.
func (c *Client) Registry() *agentguard.Registry { return c.reg }

// Pending lists the server's tools that wait for review: new, or changed
// since they were pinned.
func (c *Client) Pending() []agentguard.ToolChange { return c.reg.Pending() }

// Review asks policy (Action::"change_toolset") and the guard's approver
// to trust the pending tools of those names, or all of them (see
// agentguard.Registry.Review).
func (c *Client) Review(ctx context.Context, names ...string) ([]agentguard.ToolChange, error) {
	return c.reg.Review(ctx, names...)
}

// Refresh lists the server's tools (page by page, at most MaxListPages
// pages and WithMaxTools tools) and syncs the registry with them, returning
// what changed. A tool whose definition the guard cannot use (see
// Describe; a name the guard refuses, a schema that is not one JSON
// object) is left out and logged, and so is every tool of a name listed
// twice: they cannot be called.
//
// Refresh fails closed: if the listing fails (ErrListing; ErrTooManyTools
// for a listing over the limits), the registry is emptied and the tools
// stay marked stale, so that no call goes ahead on a definition listed
// before, through CallTool or Registry, until a listing succeeds. Tools
// then listed as they were pinned are trusted again.
func (c *Client) Refresh(ctx context.Context) ([]agentguard.ToolChange, error) {
	c.refresh.Lock()
	defer c.refresh.Unlock()
	// Cleared before listing: a notification that arrives meanwhile marks
	// the listing stale again.
	c.stale.Store(false)
	listed, err := c.list(ctx)
	if err != nil {
		c.dropAll()
		return nil, fmt.Errorf("%w: %w", ErrListing, err)
	}
	tools, defs := c.describeAll(listed)
	changes, err := c.reg.Sync(tools...)
	if err != nil {
		// Describe left out what it could see; what is left is a tool
		// the guard refuses on its own grounds. Keep the ones it takes.
		tools, defs = c.keepValid(tools, defs)
		if changes, err = c.reg.Sync(tools...); err != nil {
			c.dropAll()
			return nil, fmt.Errorf("mcpgoguard: sync tools: %w", err)
		}
	}
	c.defs.Store(&defs)
	return changes, nil
}

// dropAll empties the registry and the definitions, and marks the tools
// stale: after a failed listing nothing is callable until one succeeds.
func (c *Client) dropAll() {
	_, _ = c.reg.Sync()
	empty := map[string]definition{}
	c.defs.Store(&empty)
	c.stale.Store(true)
}

// list returns the server's tools, page by page, within the limits.
func (c *Client) list(ctx context.Context) ([]mcp.Tool, error) {
	var out []mcp.Tool
	req := mcp.ListToolsRequest{}
	seen := map[mcp.Cursor]bool{}
	for range MaxListPages {
		res, err := c.mc.ListToolsByPage(ctx, req)
		if err != nil {
			return nil, err
		}
		if len(out)+len(res.Tools) > c.cfg.maxTools {
			return nil, fmt.Errorf("%w: more than %d", ErrTooManyTools, c.cfg.maxTools)
		}
		out = append(out, res.Tools...)
		if res.NextCursor == "" {
			return out, nil
		}
		if seen[res.NextCursor] {
			return nil, errors.New("mcpgoguard: the server repeated a page cursor")
		}
		seen[res.NextCursor] = true
		req.Params.Cursor = res.NextCursor
	}
	return nil, fmt.Errorf("%w: more than %d pages", ErrTooManyTools, MaxListPages)
}

// describeAll describes the listed tools, leaving out those it cannot and
// every tool of a name listed more than once.
func (c *Client) describeAll(listed []mcp.Tool) ([]*agentguard.Tool, map[string]definition) {
	count := map[string]int{}
	for _, t := range listed {
		count[t.Name]++
	}
	tools := make([]*agentguard.Tool, 0, len(listed))
	defs := make(map[string]definition, len(listed))
	for _, t := range listed {
		if count[t.Name] > 1 {
			c.cfg.logger.Warn("mcpgoguard: tool listed more than once; left out", slog.String("toolset", c.toolset), slog.String("tool", t.Name))
			continue
		}
		at, err := describe(c.toolset, t, c.cfg.toolConfig)
		if err != nil {
			c.cfg.logger.Warn("mcpgoguard: tool left out", slog.String("toolset", c.toolset), slog.String("tool", t.Name), slog.String("error", err.Error()))
			continue
		}
		at.Handler = c.remote(t.Name)
		tools = append(tools, at)
		defs[t.Name] = definition{tool: t, fp: at.Fingerprint()}
	}
	return tools, defs
}

// keepValid returns the tools a registry accepts one by one.
func (c *Client) keepValid(tools []*agentguard.Tool, defs map[string]definition) ([]*agentguard.Tool, map[string]definition) {
	var kept []*agentguard.Tool
	for _, t := range tools {
		// A registry of its own, used for nothing else: Sync validates
		// the tool as the real one would.
		if _, err := c.g.NewRegistry(c.toolset).Sync(t); err != nil {
			c.cfg.logger.Warn("mcpgoguard: tool left out", slog.String("toolset", c.toolset), slog.String("tool", t.Name), slog.String("error", err.Error()))
			delete(defs, t.Name)
			continue
		}
		kept = append(kept, t)
	}
	return kept, defs
}

// Tools lists the server's tools afresh and returns those the current
// agent may call in the current task (ctx's), as the server defined them:
// what to offer the model. A tool whose definition is not trusted (new, or
// changed since it was pinned) is not among them, nor one policy always
// refuses. The listing itself is not a grant: every call is authorized in
// full.
func (c *Client) Tools(ctx context.Context) ([]mcp.Tool, error) {
	if _, err := c.Refresh(ctx); err != nil {
		return nil, err
	}
	listed, err := c.reg.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("mcpgoguard: list tools: %w", err)
	}
	defs := *c.defs.Load()
	out := make([]mcp.Tool, 0, len(listed))
	for _, t := range listed {
		// The definition listed must be the one the registry vetted: a
		// refresh may have replaced it since.
		if d, ok := defs[t.Name]; ok && d.fp == t.Fingerprint() {
			out = append(out, d.tool)
		}
	}
	return out, nil
}

// CallTool runs a tools/call through the guard, in the task of ctx, and
// then on the server: the guard identifies the agent, checks that the
// tool's definition is the one pinned, asks policy, the approver and the
// broker, and audits and traces the call. The tool runs with the canonical
// arguments policy saw, and with ctx carrying the call's credentials
// (CredentialHeader sends one to an HTTP server).
//
// When the guard refuses the call, or the tool fails (an error, or a
// result marked isError), CallTool returns both a result marked isError
// whose text is agentguard.Explain's (which holds no credential value), to
// give the model so that the run goes on, and the error, wrapping the
// guard's (*agentguard.DenyError, *agentguard.ToolError; a call waiting
// for approval matches agentguard.ErrApprovalPending). After a
// tools/list_changed notification the tools are listed again first; if
// that fails, the call is refused.
func (c *Client) CallTool(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	name := req.Params.Name
	if c.stale.Load() {
		if _, err := c.Refresh(ctx); err != nil {
			err = fmt.Errorf("mcpgoguard: call %q: %w", name, err)
			return errorResult(err), err
		}
	}
	args, err := argsJSON(req)
	if err != nil {
		err = fmt.Errorf("mcpgoguard: call %q: %w", name, err)
		return errorResult(err), err
	}
	res, err := c.reg.Call(context.WithValue(ctx, requestKey{}, req), agentguard.Call{Name: name, Args: args})
	if err != nil {
		err = fmt.Errorf("mcpgoguard: call %q: %w", name, err)
		return errorResult(err), err
	}
	out, ok := res.Output.(*mcp.CallToolResult)
	if !ok || out == nil {
		err = fmt.Errorf("mcpgoguard: call %q: no result", name)
		return errorResult(err), err
	}
	return out, nil
}

// remote is the handler of the server's tool name: it sends the call to
// the server with the arguments the guard checked.
func (c *Client) remote(name string) agentguard.Handler {
	return func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
		req, _ := ctx.Value(requestKey{}).(mcp.CallToolRequest)
		req.Params.Name = name
		req, err := withArgs(req, args)
		if err != nil {
			return nil, err
		}
		res, err := c.mc.CallTool(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("mcpgoguard: tools/call %q: %w", name, err)
		}
		if res == nil {
			return nil, fmt.Errorf("mcpgoguard: tools/call %q: no result", name)
		}
		if res.IsError {
			return nil, fmt.Errorf("%w: %s", ErrToolReported, resultText(res))
		}
		return &agentguard.Result{Output: res}, nil
	}
}
