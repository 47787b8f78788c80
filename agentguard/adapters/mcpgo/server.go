package mcpgoguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentguard/go-sdk/agentguard"
)

// Server guards an mcp-go server: every tools/call passes the guard (as the
// caller, see Callers), tools/list shows each caller only the tools policy
// lets it call, and task tools, which mcp-go runs without its tool
// middleware, are guarded when added with AddTaskTool and refused
// otherwise. Give Options to server.NewMCPServer. It is safe for
// concurrent use.
type Server struct {
	g       *agentguard.Guard
	toolset string
	cfg     *config
	mw      agentguard.Next

	mu sync.RWMutex
	// taskTools holds the marks of the task tools added through
	// AddTaskTool, by name.
	taskTools map[string]taskMark
}

// NewServer returns the guard of an mcp-go server whose tools form the
// toolset of that name (policy's Toolset::"<toolset>"; usually the
// server's name). The guard's identity source should be Callers(): the
// agent acting is the caller of each request, not the server.
func NewServer(g *agentguard.Guard, toolset string, opts ...Option) (*Server, error) {
	if g == nil {
		return nil, errors.New("mcpgoguard: NewServer needs a guard")
	}
	if toolset == "" {
		return nil, errors.New("mcpgoguard: NewServer needs a toolset name")
	}
	s := &Server{g: g, toolset: toolset, cfg: newConfig(opts), taskTools: map[string]taskMark{}}
	s.mw = g.Middleware()(runNext)
	return s, nil
}

// Options returns the server options that install the guard: the tool
// middleware (Middleware), the tool filter (ToolFilter) and the hooks that
// filter tools/list by policy and audit the calls mcp-go refuses as
// unknown (AddHooks). server.WithHooks keeps only the last Hooks given: a
// server with hooks of its own should take Middleware and ToolFilter here
// and call AddHooks on its own Hooks instead.
func (s *Server) Options() []server.ServerOption {
	hooks := &server.Hooks{}
	s.AddHooks(hooks)
	return []server.ServerOption{
		server.WithToolHandlerMiddleware(s.Middleware()),
		server.WithToolFilter(s.ToolFilter()),
		server.WithHooks(hooks),
	}
}

// AddHooks adds to hooks what the guard needs of mcp-go's hooks:
//
//   - after tools/list, the listing is filtered: a caller is shown only the
//     tools it may call with some arguments (agentguard.Registry.List),
//     whose definitions are trusted; a caller the guard cannot identify is
//     shown none;
//   - on error, a tools/call that mcp-go refused because it has no tool of
//     that name, or a filter (ToolFilter) hides it, is run through the
//     guard on a registry of no tools, for the caller of the request: it is
//     audited and traced as a denial (agentguard.ErrUnknownTool at the
//     lookup step, or the step that refused first, such as identify for a
//     caller the guard cannot identify). mcp-go has already answered the
//     client with its JSON-RPC error; nothing runs.
func (s *Server) AddHooks(hooks *server.Hooks) {
	hooks.AddAfterListTools(func(ctx context.Context, _ any, req *mcp.ListToolsRequest, result *mcp.ListToolsResult) {
		if result == nil {
			return
		}
		var header http.Header
		if req != nil {
			header = req.Header
		}
		result.Tools = s.Listed(s.callerContext(ctx, header), result.Tools)
	})
	hooks.AddOnError(func(ctx context.Context, _ any, method mcp.MCPMethod, message any, err error) {
		req, ok := message.(*mcp.CallToolRequest)
		if method != mcp.MethodToolsCall || !ok || req == nil || !errors.Is(err, server.ErrToolNotFound) {
			return
		}
		call := agentguard.Call{Name: req.Params.Name}
		if args, err := argsJSON(*req); err == nil {
			call.Args = args
		}
		s.unknown(s.callerContext(ctx, req.Header), call)
	})
}

// runNext is the execution the guard's middleware wraps: the call's own
// function, carried in its context.
func runNext(ctx context.Context, t *agentguard.Tool, call agentguard.Call) (*agentguard.Result, error) {
	run, ok := ctx.Value(runKey{}).(agentguard.Next)
	if !ok {
		return nil, errors.New("mcpgoguard: nothing to run")
	}
	return run(ctx, t, call)
}

type runKey struct{}

// guard runs one call of tool t through the guard, and run if allowed.
func (s *Server) guard(ctx context.Context, t *agentguard.Tool, call agentguard.Call, run agentguard.Next) (*agentguard.Result, error) {
	return s.mw(context.WithValue(ctx, runKey{}, run), t, call)
}

// Middleware returns the tool handler middleware that guards every
// tools/call of a tool added with AddTool, AddTools, SetTools or
// AddSessionTool(s), on the synchronous path and when mcp-go runs such a
// tool as a task. The tool's definition, as the guard describes it to
// policy, is the one the server (or the session) holds for its name. The
// handler gets the canonical arguments policy saw, and a context carrying
// the call's credentials (credentials.FromContext).
//
// A refused call, and a tool that failed (returned an error or a result
// marked isError), come back to the client as a result marked isError whose
// text is agentguard.Explain's, never as a JSON-RPC error: it holds no
// credential value and no internal detail.
func (s *Server) Middleware() server.ToolHandlerMiddleware {
	return func(next server.ToolHandlerFunc) server.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			ctx = s.callerContext(ctx, req.Header)
			name := req.Params.Name
			call := agentguard.Call{Name: name}
			args, err := argsJSON(req)
			if err != nil {
				return errorResult(err), nil
			}
			call.Args = args
			def, ok := s.lookup(ctx, name)
			if !ok {
				return s.unknown(ctx, call), nil
			}
			if req.Params.Task != nil && taskSupport(def) {
				// mcp-go v1.2.1 runs a tool called as a task with the
				// context of the tools/call request, which ends as soon
				// as the task is created: keep its values, not its end.
				// A tool without task support is run at once, on the
				// request's own context, and stays cancellable.
				ctx = context.WithoutCancel(ctx)
			}
			t, err := describe(s.toolset, def, s.cfg.toolConfig)
			if err != nil {
				return s.unknown(ctx, call), nil
			}
			res, err := s.guard(ctx, t, call, func(ctx context.Context, _ *agentguard.Tool, call agentguard.Call) (*agentguard.Result, error) {
				req, err := withArgs(req, call.Args)
				if err != nil {
					return nil, err
				}
				out, err := next(ctx, req)
				if err != nil {
					return nil, err
				}
				if out == nil {
					return nil, fmt.Errorf("mcpgoguard: tool %q returned no result", name)
				}
				if out.IsError {
					return nil, fmt.Errorf("%w: %s", ErrToolReported, resultText(out))
				}
				return &agentguard.Result{Output: out}, nil
			})
			if err != nil {
				return errorResult(err), nil
			}
			out, _ := res.Output.(*mcp.CallToolResult)
			if out == nil {
				return errorResult(errors.New("mcpgoguard: no result")), nil
			}
			return out, nil
		}
	}
}

// unknown denies call of a tool the server does not hold (or cannot
// describe), audited as a call of an unknown tool.
func (s *Server) unknown(ctx context.Context, call agentguard.Call) *mcp.CallToolResult {
	_, err := s.g.NewRegistry(s.toolset).Call(ctx, call)
	if err == nil {
		err = agentguard.ErrUnknownTool
	}
	return errorResult(err)
}

// lookup returns the definition the server holds for the tool of that
// name, for the session of ctx: the session's own tool first, as mcp-go
// looks them up.
func (s *Server) lookup(ctx context.Context, name string) (mcp.Tool, bool) {
	if st, ok := sessionTool(ctx, name); ok {
		return st, true
	}
	srv := server.ServerFromContext(ctx)
	if srv == nil {
		return mcp.Tool{}, false
	}
	if st := srv.GetTool(name); st != nil {
		return st.Tool, true
	}
	return mcp.Tool{}, false
}

// sessionTool returns the session's own tool of that name, if any.
func sessionTool(ctx context.Context, name string) (mcp.Tool, bool) {
	session := server.ClientSessionFromContext(ctx)
	if session == nil {
		return mcp.Tool{}, false
	}
	sw, ok := session.(server.SessionWithTools)
	if !ok {
		return mcp.Tool{}, false
	}
	st, ok := sw.GetSessionTools()[name]
	return st.Tool, ok
}

// taskSupport reports whether mcp-go runs a call of t that asks for a
// task as a task (its execution's task support is optional or required).
func taskSupport(t mcp.Tool) bool {
	return t.Execution != nil && (t.Execution.TaskSupport == mcp.TaskSupportOptional || t.Execution.TaskSupport == mcp.TaskSupportRequired)
}

// callerContext returns ctx with the in-process caller (WithInProcessCaller)
// when it applies: the request is an in-process client's (its session is a
// *server.InProcessSession), it came with no headers (an HTTP request always
// has some), and it has no verified caller already. Otherwise ctx is
// returned as it is, with the caller JWTSVIDContext verified or none.
func (s *Server) callerContext(ctx context.Context, header http.Header) context.Context {
	if s.cfg.inProcess == nil || len(header) > 0 {
		return ctx
	}
	if _, verified := ctx.Value(callerKey{}).(caller); verified {
		return ctx
	}
	if _, ok := server.ClientSessionFromContext(ctx).(*server.InProcessSession); !ok {
		return ctx
	}
	return withCaller(ctx, caller{id: *s.cfg.inProcess})
}

// Listed returns the tools of list that the caller of ctx may call with
// some arguments in its task, in list's order (see
// agentguard.Registry.List): their definitions must be trusted (pinned as
// they are; without a lock of its own the guard pins the server's tools on
// first use) and policy must not always refuse them. A tool the guard
// cannot describe, and every tool when the caller cannot be identified,
// are left out.
func (s *Server) Listed(ctx context.Context, list []mcp.Tool) []mcp.Tool {
	if len(list) == 0 {
		return list
	}
	lock := s.g.Lock()
	var pinned []*agentguard.Tool
	fps := make(map[string]string, len(list))
	for _, mt := range list {
		t, err := describe(s.toolset, mt, s.cfg.toolConfig)
		if err != nil {
			continue
		}
		if _, dup := fps[t.Name]; dup {
			continue
		}
		t.Handler = refuse
		fp := t.Fingerprint()
		fps[t.Name] = fp
		pin, ok := lock.Tool(s.toolset, t.Name)
		if !ok {
			// The server's own tool, seen for the first time: pinned on
			// first use, as its first call would pin it, unless the
			// guard has a lock of its own (WithLock).
			_ = s.g.NewRegistry(s.toolset).Register(t)
			pin, ok = lock.Tool(s.toolset, t.Name)
		}
		if ok && pin == fp {
			pinned = append(pinned, t)
		}
	}
	// A registry used for this listing only, of the tools pinned as they
	// are (Sync trusts nothing by itself; the others would not be listed
	// anyway): List keeps those policy allows.
	reg := s.g.NewRegistry(s.toolset)
	if _, err := reg.Sync(pinned...); err != nil {
		return nil
	}
	allowed, err := reg.List(ctx)
	if err != nil {
		return nil
	}
	ok := make(map[string]bool, len(allowed))
	for _, t := range allowed {
		ok[t.Name] = t.Fingerprint() == fps[t.Name]
	}
	out := make([]mcp.Tool, 0, len(allowed))
	for _, mt := range list {
		if ok[mt.Name] {
			out = append(out, mt)
		}
	}
	return out
}

// refuse is the handler of the tools of a listing registry, never called.
func refuse(context.Context, json.RawMessage) (*agentguard.Result, error) {
	return nil, errors.New("mcpgoguard: a listing is not a call")
}
