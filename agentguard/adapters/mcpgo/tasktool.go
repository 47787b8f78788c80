package mcpgoguard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentguard/go-sdk/agentguard"
)

// AddTaskTool adds a task tool to srv, as srv.AddTaskTool does, with its
// handler guarded: mcp-go v1.2.1 runs a task tool's handler (in
// executeTaskTool, on a goroutine of its own) without the tool handler
// middleware, so Middleware never sees its calls. Here each call passes the
// guard before the handler runs; a refused call, or a handler that failed,
// completes the task with a result marked isError whose text is
// agentguard.Explain's (tasks/result returns it). A handler error that is
// the context's cancellation is passed on, for mcp-go to mark the task
// cancelled.
//
// mcp-go starts a task's handler with the context of the tools/call
// request, which ends as soon as the task is created; the guarded handler
// keeps that context's values but not its end, so tasks/cancel does not
// reach it (nor, in v1.2.1, could it). A tool whose definition the guard
// cannot use is an error, and the tool is not added. mcp-go's own panics
// (a name taken by a regular tool, bad x-mcp-header annotations) are its.
//
// The tool is added stamped with a random mark (in a copy of its _meta;
// tool itself is not changed) that ToolFilter requires: the same
// definition added again with mcp-go's own AddTaskTool replaces this one
// without the mark, and is refused rather than run unguarded.
func (s *Server) AddTaskTool(srv *server.MCPServer, tool mcp.Tool, handler server.TaskToolHandlerFunc) error {
	if srv == nil || handler == nil {
		return errors.New("mcpgoguard: AddTaskTool needs a server and a handler")
	}
	t, err := describe(s.toolset, tool, s.cfg.toolConfig)
	if err != nil {
		return err
	}
	mark := taskMark{fp: t.Fingerprint(), nonce: rand.Text()}
	stamped := tool
	stamped.Meta = withMark(tool.Meta, mark.nonce)
	s.mu.Lock()
	s.taskTools[tool.Name] = mark
	s.mu.Unlock()
	srv.AddTaskTool(stamped, s.guardTask(t, handler))
	return nil
}

// markKey is the _meta key under which AddTaskTool stamps a guarded task
// tool with its mark. ToolFilter takes it out of what clients are shown.
const markKey = "agentguard/guarded-task"

// taskMark is what the tool filter requires of a task tool: the
// fingerprint of the definition it was added with, and the random mark
// AddTaskTool stamped it with, which a tool added any other way lacks.
type taskMark struct {
	fp    string
	nonce string
}

// withMark returns a copy of m with nonce under markKey; m itself, which
// the application may hold and add again, is left as it was.
func withMark(m *mcp.Meta, nonce string) *mcp.Meta {
	out := &mcp.Meta{}
	if m != nil {
		out.ProgressToken = m.ProgressToken
		out.AdditionalFields = maps.Clone(m.AdditionalFields)
	}
	if out.AdditionalFields == nil {
		out.AdditionalFields = map[string]any{}
	}
	out.AdditionalFields[markKey] = nonce
	return out
}

// markOf returns the mark a tool's _meta holds, if any.
func markOf(m *mcp.Meta) string {
	if m == nil {
		return ""
	}
	nonce, _ := m.AdditionalFields[markKey].(string)
	return nonce
}

// withoutMark returns t as a client may see it: its _meta without the
// mark (and no _meta at all when nothing else is left).
func withoutMark(t mcp.Tool) mcp.Tool {
	if t.Meta == nil {
		return t
	}
	if _, ok := t.Meta.AdditionalFields[markKey]; !ok {
		return t
	}
	fields := maps.Clone(t.Meta.AdditionalFields)
	delete(fields, markKey)
	if len(fields) == 0 && t.Meta.ProgressToken == nil {
		t.Meta = nil
		return t
	}
	if len(fields) == 0 {
		fields = nil
	}
	t.Meta = &mcp.Meta{ProgressToken: t.Meta.ProgressToken, AdditionalFields: fields}
	return t
}

// guardTask returns handler guarded as tool t.
func (s *Server) guardTask(t *agentguard.Tool, handler server.TaskToolHandlerFunc) server.TaskToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CreateTaskResult, error) {
		ctx = context.WithoutCancel(s.callerContext(ctx, req.Header))
		call := agentguard.Call{Name: req.Params.Name}
		args, err := argsJSON(req)
		if err != nil {
			return taskError(err), nil
		}
		call.Args = args
		res, err := s.guard(ctx, t, call, func(ctx context.Context, _ *agentguard.Tool, call agentguard.Call) (*agentguard.Result, error) {
			req, err := withArgs(req, call.Args)
			if err != nil {
				return nil, err
			}
			out, err := handler(ctx, req)
			if err != nil {
				return nil, err
			}
			if out == nil {
				return nil, fmt.Errorf("mcpgoguard: task tool %q returned no result", t.Name)
			}
			if out.IsError {
				text := resultText(&mcp.CallToolResult{Content: out.Content})
				return nil, fmt.Errorf("%w: %s", ErrToolReported, text)
			}
			return &agentguard.Result{Output: out}, nil
		})
		if err != nil {
			var te *agentguard.ToolError
			if errors.As(err, &te) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				return nil, err
			}
			return taskError(err), nil
		}
		out, _ := res.Output.(*mcp.CreateTaskResult)
		if out == nil {
			return taskError(errors.New("mcpgoguard: no result")), nil
		}
		return out, nil
	}
}

// taskError is the result of a task whose call was refused or failed.
func taskError(err error) *mcp.CreateTaskResult {
	return &mcp.CreateTaskResult{
		Content: []mcp.Content{mcp.NewTextContent(agentguard.Explain(err))},
		IsError: true,
	}
}

// ToolFilter returns the tool filter (server.WithToolFilter) that keeps
// task tools added with mcp-go's own AddTaskTool, rather than with
// Server.AddTaskTool, out of tools/list and refuses their tools/call
// (mcp-go applies filters to both): they would run unguarded. A task tool
// counts as guarded only if it carries the random mark Server.AddTaskTool
// stamped it with (in its _meta, which this filter takes out of what
// clients are shown) and the definition it was added with. A tool re-added
// through mcp-go's AddTaskTool, even with the same definition, has no mark
// and is refused. It leaves every other tool to Middleware and the
// tools/list hook.
func (s *Server) ToolFilter() server.ToolFilterFunc {
	return func(ctx context.Context, tools []mcp.Tool) []mcp.Tool {
		srv := server.ServerFromContext(ctx)
		out := tools[:0:0]
		for _, t := range tools {
			switch {
			case s.regular(ctx, srv, t.Name):
				out = append(out, t)
			case s.guardedTask(t):
				out = append(out, withoutMark(t))
			}
		}
		return out
	}
}

// regular reports whether the tool of that name is one the middleware
// guards: a tool of the server's or of the session's, not a task tool.
func (s *Server) regular(ctx context.Context, srv *server.MCPServer, name string) bool {
	if _, ok := sessionTool(ctx, name); ok {
		return true
	}
	return srv != nil && srv.GetTool(name) != nil
}

// guardedTask reports whether t was added through AddTaskTool, as it is:
// it carries the mark stamped then, and the same definition.
func (s *Server) guardedTask(t mcp.Tool) bool {
	s.mu.RLock()
	mark, ok := s.taskTools[t.Name]
	s.mu.RUnlock()
	if !ok || subtle.ConstantTimeCompare([]byte(markOf(t.Meta)), []byte(mark.nonce)) != 1 {
		return false
	}
	d, err := describe(s.toolset, t, s.cfg.toolConfig)
	return err == nil && d.Fingerprint() == mark.fp
}
