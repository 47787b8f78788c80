package mcpguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentguard/go-sdk/agentguard"
)

// MCP methods the server middleware guards.
const (
	methodListTools = "tools/list"
	methodCallTool  = "tools/call"
)

// ErrUnguardedIdentity: the guard of a Server did not ask CallerSource who
// the caller is, so it decided for some other identity; the tool is not
// run. Build the guard with agentguard.WithIdentity(mcpguard.CallerSource(...)).
var ErrUnguardedIdentity = errors.New("mcpguard: the guard's identity source is not mcpguard.CallerSource")

// Server guards the tools of a Go MCP server (mcp.Server) as receiving
// middleware: every tools/call runs through the guard's pipeline, for the
// caller's identity, before the server's own handling runs it, and every
// tools/list shows only the tools policy lets the caller call. Create one
// with NewServer and install it with mcp.Server.AddReceivingMiddleware.
// It is safe for concurrent use.
type Server struct {
	g       *agentguard.Guard
	reg     *agentguard.Registry
	toolset string
	cfg     config

	// mu makes each reconciliation of the registry with the server's
	// tools one step; known holds the fingerprints registered, by name.
	mu    sync.Mutex
	known map[string]string

	approvals *approvals
}

// NewServer returns the guard of an MCP server's tools, for policy the
// tools of Toolset::"<toolset>". The guard g must take its identity from
// CallerSource. The server's tools are taken into a registry of g as the
// server lists them: a tool first seen is trusted on first use, unless g
// has a Lock (agentguard.WithLock), which must then pin it; a definition
// that changes later (mcp.Server.AddTool replacing a tool) is held until
// Registry.Review approves it.
func NewServer(g *agentguard.Guard, toolset string, opts ...Option) (*Server, error) {
	if g == nil || toolset == "" {
		return nil, errors.New("mcpguard: NewServer needs a guard and a toolset name")
	}
	cfg := config{}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{g: g, reg: g.NewRegistry(toolset), toolset: toolset, cfg: cfg, known: map[string]string{}}
	if cfg.deferred != nil {
		s.approvals = newApprovals(cfg)
	}
	return s, nil
}

// Registry returns the registry of the server's tools: Pending lists the
// definitions held for review, Review approves them.
func (s *Server) Registry() *agentguard.Registry { return s.reg }

// Toolset returns the server's toolset name.
func (s *Server) Toolset() string { return s.toolset }

// Middleware returns the receiving middleware that guards tools/call and
// filters tools/list; other methods pass through. Install it after any
// middleware that must see the requests as they arrive:
// AddReceivingMiddleware's last middleware is the outermost.
//
// A call that is denied (or whose tool fails) is answered with a
// CallToolResult whose isError is set and whose text is
// agentguard.Explain's: the tool did not run (or failed), and the client's
// model reads why. A JSON-RPC error is returned only for a request the
// middleware cannot read.
func (s *Server) Middleware() mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			switch method {
			case methodListTools:
				return s.list(ctx, next, method, req)
			case methodCallTool:
				return s.call(ctx, next, method, req)
			}
			return next(ctx, method, req)
		}
	}
}

// execKey carries the MCP request a guarded call belongs to, to the tool's
// handler.
type execKey struct{}

// execution is one tools/call being served.
type execution struct {
	next   mcp.MethodHandler
	req    *mcp.CallToolRequest
	caller *caller
}

func (s *Server) call(ctx context.Context, next mcp.MethodHandler, method string, req mcp.Request) (mcp.Result, error) {
	creq, ok := req.(*mcp.CallToolRequest)
	if !ok || creq.Params == nil {
		return nil, fmt.Errorf("mcpguard: %s: unexpected request %T", method, req)
	}
	c := s.callerOf(req)
	ctx = context.WithValue(ctx, callerKey{}, c)
	// A listing that fails leaves no tool to call: the call is denied.
	_ = s.sync(ctx, next, creq.Session, creq.Extra)
	x := &execution{next: next, req: creq, caller: c}
	call := agentguard.Call{Name: creq.Params.Name, Args: creq.Params.Arguments}
	if s.approvals != nil {
		return s.approvals.call(ctx, s, x, call)
	}
	return s.run(ctx, x, call)
}

// run runs call through the guard and answers as MCP does.
func (s *Server) run(ctx context.Context, x *execution, call agentguard.Call) (mcp.Result, error) {
	res, err := s.invoke(ctx, x, call)
	if err != nil {
		return ErrorResult(err), nil
	}
	return res, nil
}

func (s *Server) invoke(ctx context.Context, x *execution, call agentguard.Call) (*mcp.CallToolResult, error) {
	res, err := s.reg.Call(context.WithValue(ctx, execKey{}, x), call)
	if err != nil {
		return nil, err
	}
	out, ok := res.Output.(*mcp.CallToolResult)
	if !ok {
		return nil, fmt.Errorf("mcpguard: call %q: no MCP result", call.Name)
	}
	return out, nil
}

// handler is the Handler of the server's tool name: the server's own
// handling of the request being served, with the canonical arguments the
// guard checked.
func (s *Server) handler(name string) agentguard.Handler {
	return func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
		x, ok := ctx.Value(execKey{}).(*execution)
		if !ok || x.req.Params.Name != name {
			return nil, fmt.Errorf("mcpguard: tool %q called outside its MCP request", name)
		}
		if !x.caller.asked.Load() {
			return nil, ErrUnguardedIdentity
		}
		p := *x.req.Params
		p.Arguments = args
		res, err := x.next(ctx, methodCallTool, &mcp.CallToolRequest{Session: x.req.Session, Params: &p, Extra: x.req.Extra})
		if err != nil {
			return nil, fmt.Errorf("mcpguard: tool %q: %w", name, err)
		}
		out, ok := res.(*mcp.CallToolResult)
		if !ok || out == nil {
			return nil, fmt.Errorf("mcpguard: tool %q: no result", name)
		}
		if out.IsError {
			return &agentguard.Result{Output: out}, &ToolFailure{Tool: name, Result: out}
		}
		return &agentguard.Result{Output: out}, nil
	}
}

func (s *Server) list(ctx context.Context, next mcp.MethodHandler, method string, req mcp.Request) (mcp.Result, error) {
	lreq, ok := req.(*mcp.ListToolsRequest)
	if !ok {
		return nil, fmt.Errorf("mcpguard: %s: unexpected request %T", method, req)
	}
	c := s.callerOf(req)
	ctx = context.WithValue(ctx, callerKey{}, c)
	res, err := next(ctx, method, req)
	if err != nil {
		return nil, err
	}
	page, ok := res.(*mcp.ListToolsResult)
	if !ok {
		return nil, fmt.Errorf("mcpguard: %s: unexpected result %T", method, res)
	}
	if err := s.sync(ctx, next, lreq.Session, lreq.Extra); err != nil && !errors.Is(err, ErrInvalidTool) {
		return nil, err
	}
	allowed, err := s.reg.List(ctx)
	if err != nil {
		return nil, err
	}
	if !c.asked.Load() {
		return nil, ErrUnguardedIdentity
	}
	fps := make(map[string]string, len(allowed))
	for _, t := range allowed {
		fps[t.Name] = t.Fingerprint()
	}
	out := *page
	out.Tools = []*mcp.Tool{} // a JSON array, never null
	for _, t := range page.Tools {
		// Shown only as it was checked: the page may be newer than the
		// registry.
		if at, err := s.define(t); err == nil && fps[at.Name] == at.Fingerprint() {
			out.Tools = append(out.Tools, t)
		}
	}
	return &out, nil
}

// define is the guard's description of the server's tool t.
func (s *Server) define(t *mcp.Tool) (*agentguard.Tool, error) {
	ts, err := convert([]*mcp.Tool{t}, s.toolset, s.cfg.configure)
	if err != nil {
		return nil, err
	}
	return ts[0], nil
}

// sync makes the registry hold the server's tools as next lists them now:
// new tools are registered (trusted on first use unless the guard has a
// Lock), changed and removed ones synced. When the tools cannot be
// listed, the registry is emptied: no call goes ahead on a stale
// definition.
func (s *Server) sync(ctx context.Context, next mcp.MethodHandler, ss *mcp.ServerSession, extra *mcp.RequestExtra) error {
	// Listing under the lock: an older listing never replaces a newer one.
	s.mu.Lock()
	defer s.mu.Unlock()
	list, err := s.listAll(ctx, next, ss, extra)
	if err != nil {
		_, serr := s.reg.Sync()
		clear(s.known)
		return errors.Join(err, serr)
	}
	tools, cerr := convert(list, s.toolset, s.cfg.configure)
	fps := make(map[string]string, len(tools))
	for _, t := range tools {
		t.Handler = s.handler(t.Name)
		fps[t.Name] = t.Fingerprint()
	}
	if maps.Equal(fps, s.known) {
		return cerr
	}
	var fresh []*agentguard.Tool
	for _, t := range tools {
		if _, ok := s.known[t.Name]; !ok {
			fresh = append(fresh, t)
		}
	}
	if len(fresh) > 0 {
		if err := s.reg.Register(fresh...); err != nil {
			// The listing cannot be taken as it is: hold nothing rather
			// than the definitions of the listing before, which a
			// changed tool would still be checked as.
			_, serr := s.reg.Sync()
			clear(s.known)
			return errors.Join(cerr, err, serr)
		}
		for _, t := range fresh {
			s.known[t.Name] = t.Fingerprint()
		}
	}
	if _, err := s.reg.Sync(tools...); err != nil {
		_, serr := s.reg.Sync()
		clear(s.known)
		return errors.Join(cerr, err, serr)
	}
	s.known = fps
	return cerr
}

// listAll lists every tool of the server through next (the server's own
// handling, below this middleware).
func (s *Server) listAll(ctx context.Context, next mcp.MethodHandler, ss *mcp.ServerSession, extra *mcp.RequestExtra) ([]*mcp.Tool, error) {
	var out []*mcp.Tool
	cursor := ""
	for page := 0; page < maxPages; page++ {
		res, err := next(ctx, methodListTools, &mcp.ListToolsRequest{Session: ss, Params: &mcp.ListToolsParams{Cursor: cursor}, Extra: extra})
		if err != nil {
			return nil, fmt.Errorf("mcpguard: list the server's tools: %w", err)
		}
		lr, ok := res.(*mcp.ListToolsResult)
		if !ok {
			return nil, fmt.Errorf("mcpguard: list the server's tools: unexpected result %T", res)
		}
		out = append(out, lr.Tools...)
		if lr.NextCursor == "" {
			return out, nil
		}
		cursor = lr.NextCursor
	}
	return nil, fmt.Errorf("%w: more than %d pages", ErrTooManyTools, maxPages)
}
