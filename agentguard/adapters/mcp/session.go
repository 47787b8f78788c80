package mcpguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentguard/go-sdk/agentguard"
)

// Limits on one tools/list, so that a server cannot keep a refresh going
// for ever.
const (
	// DefaultMaxTools is how many tools a listing may hold, unless
	// WithMaxTools says otherwise.
	DefaultMaxTools = 10000
	// maxPages bounds the pages of one listing.
	maxPages = 1000
)

var (
	// ErrNoToolset: no toolset name was given and the server's
	// initialize result names no server.
	ErrNoToolset = errors.New("mcpguard: no toolset name")
	// ErrTooManyTools: the server lists more tools (or pages) than the
	// session accepts.
	ErrTooManyTools = errors.New("mcpguard: too many tools listed")
)

// Session is an MCP client session whose tools are guarded: every call
// runs through the guard's pipeline, listings show only the tools policy
// lets the agent call, and each tool's definition must be pinned in the
// guard's Lock (reviewed) before it is listed or called, so that a server
// that rewrites a tool (a rug pull) is caught. It is safe for concurrent
// use.
//
// The tools are those of one agentguard.Registry, Toolset::"<server name>"
// for policy, kept equal to the server's tools/list by Refresh, which runs
// on NewSession, on each notifications/tools/list_changed (see
// ToolListChanged) and when called.
type Session struct {
	g       *agentguard.Guard
	cs      *mcp.ClientSession
	reg     *agentguard.Registry
	toolset string
	cfg     config

	// refreshMu makes each listing and its Sync one step, so that an
	// older listing never overwrites a newer one.
	refreshMu sync.Mutex
	closeOnce sync.Once
	closeErr  error
}

// NewSession guards cs, an initialized MCP client session, for the agent
// of g: it lists the server's tools and takes them into a registry of g
// (Registry.Sync), never trusting them on first use. A tool is callable
// once its definition is pinned: ahead of time in the Lock given to
// agentguard.WithLock (see PinTools), or by an approved Registry.Review
// (policy's Action::"change_toolset" and the guard's approver).
//
// The Session owns cs from now on: Close closes it. Wire
// ToolListChanged into the client's options, so that the session re-lists
// the tools as soon as the server says they changed. Several Sessions may
// guard one cs (for two toolset names, or two guards): each is refreshed.
// A Session dropped without Close stops being refreshed once the garbage
// collector frees it, but cs stays open.
//
// NewSession fails if the tools cannot be listed; it then keeps nothing of
// what it made (no Session is watched) and leaves cs open, for the caller
// to close. Tools the guard cannot take (see ErrInvalidTool) are left out
// and do not fail it: the first refresh's error goes to the refresh hook
// (WithRefreshHook), or else to the logger, as a later refresh's does.
func NewSession(ctx context.Context, g *agentguard.Guard, cs *mcp.ClientSession, opts ...Option) (*Session, error) {
	if g == nil || cs == nil {
		return nil, errors.New("mcpguard: NewSession needs a guard and a client session")
	}
	cfg := config{maxTools: DefaultMaxTools}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	toolset := cfg.toolset
	if toolset == "" {
		if ir := cs.InitializeResult(); ir != nil && ir.ServerInfo != nil {
			toolset = ir.ServerInfo.Name
		}
	}
	if toolset == "" || !utf8.ValidString(toolset) {
		return nil, ErrNoToolset
	}
	s := &Session{g: g, cs: cs, reg: g.NewRegistry(toolset), toolset: toolset, cfg: cfg}
	// Watch before the first listing, so that no change falls between them.
	watch(cs, s)
	if _, err := s.Refresh(ctx); err != nil {
		var le *listError
		if errors.As(err, &le) {
			unwatch(cs, s)
			return nil, err
		}
		if cfg.onRefresh == nil {
			cfg.logger.Warn("mcpguard: tools left out", "toolset", toolset, "error", err)
		}
	}
	return s, nil
}

// listError is a listing that failed.
type listError struct{ err error }

func (e *listError) Error() string { return e.err.Error() }
func (e *listError) Unwrap() error { return e.err }

// Toolset returns the session's toolset name.
func (s *Session) Toolset() string { return s.toolset }

// Registry returns the registry of the session's tools: Pending lists the
// definitions held for review, Review approves them.
func (s *Session) Registry() *agentguard.Registry { return s.reg }

// ClientSession returns the guarded MCP session, for what the guard does
// not cover (prompts, resources). Calling its CallTool bypasses the guard.
func (s *Session) ClientSession() *mcp.ClientSession { return s.cs }

// Refresh lists the server's tools (every page) and makes them the
// session's toolset (Registry.Sync): new tools and changed definitions
// are held for review, hidden and denied with agentguard.ErrIntegrity
// until a Review approves them; tools the server no longer lists are gone
// (their calls denied with agentguard.ErrUnknownTool); a tool that comes
// back as it was pinned is trusted again. It returns what changed.
//
// Refresh fails closed: when the listing fails, the session holds no tools
// until a refresh succeeds. Tools the guard cannot take are left out and
// reported in the error (ErrInvalidTool). On the 2026-07-28 protocol, the
// SDK may answer from its cache of tools/list for as long as the server's
// ttlMs allows; a list_changed notification clears that cache first.
func (s *Session) Refresh(ctx context.Context) ([]agentguard.ToolChange, error) {
	changes, err := s.refresh(ctx)
	if s.cfg.onRefresh != nil {
		s.cfg.onRefresh(ctx, changes, err)
	}
	return changes, err
}

func (s *Session) refresh(ctx context.Context) ([]agentguard.ToolChange, error) {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	list, err := listTools(ctx, s.cs, s.cfg.maxTools)
	if err != nil {
		changes, serr := s.reg.Sync()
		return changes, errors.Join(&listError{fmt.Errorf("mcpguard: list the tools of %q: %w", s.toolset, err)}, serr)
	}
	tools, cerr := convert(list, s.toolset, s.cfg.configure)
	for _, t := range tools {
		t.Handler = s.handler(t.Name)
	}
	changes, err := s.reg.Sync(tools...)
	if err != nil {
		// convert checks what Sync does; should they differ, hold nothing.
		more, serr := s.reg.Sync()
		return more, errors.Join(cerr, &listError{err}, serr)
	}
	return changes, cerr
}

// listTools returns every tool cs's server lists, across pages, up to max.
func listTools(ctx context.Context, cs *mcp.ClientSession, max int) ([]*mcp.Tool, error) {
	var out []*mcp.Tool
	cursor := ""
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("%w: more than %d pages", ErrTooManyTools, maxPages)
		}
		res, err := cs.ListTools(ctx, &mcp.ListToolsParams{Cursor: cursor})
		if err != nil {
			return nil, err
		}
		if len(out)+len(res.Tools) > max {
			return nil, fmt.Errorf("%w: more than %d", ErrTooManyTools, max)
		}
		out = append(out, res.Tools...)
		if res.NextCursor == "" {
			return out, nil
		}
		cursor = res.NextCursor
	}
}

// Tools returns the tools the agent may call now, as MCP tools for the
// model's tool list: those whose definitions are pinned and that policy
// lets the current agent call in the current task (Registry.List). Each
// holds only what was pinned: name, title, description, schemas and
// annotations.
//
// Tools does not list the server's tools again: it answers from the last
// refresh (at NewSession, on list_changed, or Refresh). A server that
// changes a definition without notifying is seen at the next Refresh;
// until then the model reads, and calls are checked against, the
// definitions pinned, so nothing unreviewed is shown. (mcpgoguard's
// Client.Tools lists afresh each time; call Refresh first for the same.)
func (s *Session) Tools(ctx context.Context) ([]*mcp.Tool, error) {
	ts, err := s.reg.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*mcp.Tool, len(ts))
	for i, t := range ts {
		out[i] = mcpTool(t)
	}
	return out, nil
}

// paramsKey carries the caller's CallToolParams to the tool's handler, for
// what is not the arguments (_meta, such as a progress token).
type paramsKey struct{}

// CallTool calls a tool of the session's server through the guard, as
// ClientSession.CallTool would without it. params.Arguments must marshal
// to a JSON object (or be nil); the server receives the canonical form
// the guard checked, with params' _meta.
//
// When the call does not succeed, CallTool returns both the error and a
// result in MCP's idiom, ready to hand to the model so that the run goes
// on: a CallToolResult with isError whose text is agentguard.Explain's
// (which tool was refused at which step and why, the ID of an approval
// request a human must decide, or a tool's failure as its message scrubbed
// of the call's credentials; never a credential value). It is
// ErrorResult(err). The error is the guard's: a denial
// (*agentguard.DenyError, matching agentguard.ErrDenied and the step's
// sentinel, such as ErrIntegrity for a definition not pinned, or
// agentguard.ErrApprovalPending for a call waiting for an
// approval.Deferred), or an *agentguard.ToolError for a tool that failed,
// which wraps a *ToolFailure holding the server's own isError result.
// Arguments that do not marshal give an error matching
// agentguard.ErrInvalidArguments, without a call to the guard.
func (s *Session) CallTool(ctx context.Context, params *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	if params == nil {
		return failed(errors.New("mcpguard: CallTool with nil params"))
	}
	args, err := marshalArgs(params.Arguments)
	if err != nil {
		return failed(fmt.Errorf("mcpguard: call %q: %w: %w", params.Name, agentguard.ErrInvalidArguments, err))
	}
	return s.invoke(context.WithValue(ctx, paramsKey{}, params), agentguard.Call{Name: params.Name, Args: args})
}

// Invoke calls a tool as a model asked for it: call.ID is the model's
// tool-call ID (recorded in the audit record and span), call.Args its JSON
// arguments. It returns what CallTool does: on failure, an isError result
// for the model together with the error.
func (s *Session) Invoke(ctx context.Context, call agentguard.Call) (*mcp.CallToolResult, error) {
	return s.invoke(ctx, call)
}

func (s *Session) invoke(ctx context.Context, call agentguard.Call) (*mcp.CallToolResult, error) {
	res, err := s.reg.Call(ctx, call)
	if err != nil {
		return failed(err)
	}
	out, ok := res.Output.(*mcp.CallToolResult)
	if !ok || out == nil {
		return failed(fmt.Errorf("mcpguard: call %q: no MCP result", call.Name))
	}
	return out, nil
}

// failed returns err with its MCP form for the model.
func failed(err error) (*mcp.CallToolResult, error) {
	return ErrorResult(err), err
}

func marshalArgs(v any) (json.RawMessage, error) {
	switch a := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return a, nil
	}
	return json.Marshal(v)
}

// handler is the Handler of the remote tool name: it calls the tool on
// the server with the canonical arguments the guard checked.
func (s *Session) handler(name string) agentguard.Handler {
	return func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
		p := &mcp.CallToolParams{Name: name, Arguments: map[string]any{}}
		if len(args) > 0 {
			p.Arguments = args
		}
		if orig, ok := ctx.Value(paramsKey{}).(*mcp.CallToolParams); ok && orig.Name == name {
			p.Meta = maps.Clone(orig.Meta)
			p.InputResponses, p.RequestState = orig.InputResponses, orig.RequestState
		}
		res, err := s.cs.CallTool(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("mcpguard: call %q on %q: %w", name, s.toolset, err)
		}
		if res.IsError {
			return &agentguard.Result{Output: res}, &ToolFailure{Tool: name, Result: res}
		}
		return &agentguard.Result{Output: res}, nil
	}
}

// Close stops watching for list_changed notifications, drops every tool
// (later calls are denied with agentguard.ErrUnknownTool) and closes the
// MCP session. It is idempotent; every call returns the first one's error.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		unwatch(s.cs, s)
		s.refreshMu.Lock()
		_, err := s.reg.Sync()
		s.refreshMu.Unlock()
		s.closeErr = errors.Join(err, s.cs.Close())
	})
	return s.closeErr
}

// PinTools lists the tools cs's server offers now and pins each one's
// definition in lock under toolset: what an operator runs, once the
// definitions have been read and judged, to write the lock file
// (Lock.WriteFile) that the agent's guard then loads (agentguard.WithLock),
// so that those tools are callable without review and any other definition
// is held. It returns the tools pinned; tools the guard cannot take are
// left out and reported (ErrInvalidTool).
func PinTools(ctx context.Context, lock *agentguard.Lock, cs *mcp.ClientSession, toolset string) ([]*agentguard.Tool, error) {
	if lock == nil || cs == nil || toolset == "" {
		return nil, errors.New("mcpguard: PinTools needs a lock, a client session and a toolset")
	}
	list, err := listTools(ctx, cs, DefaultMaxTools)
	if err != nil {
		return nil, fmt.Errorf("mcpguard: list the tools of %q: %w", toolset, err)
	}
	tools, cerr := convert(list, toolset, nil)
	for _, t := range tools {
		if err := lock.PinTool(t); err != nil {
			return nil, err
		}
	}
	return tools, cerr
}
