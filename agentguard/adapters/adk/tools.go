package adkguard

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/model"
	"google.golang.org/adk/tool"
	"google.golang.org/genai"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/credentials"
)

// runnable is a tool ADK can run: it has a declaration and a Run method.
type runnable interface {
	Run(ctx tool.Context, args any) (map[string]any, error)
}

// requestProcessor is a tool or toolset that adds itself to the model's
// request.
type requestProcessor interface {
	ProcessRequest(ctx tool.Context, req *model.LLMRequest) error
}

// Tools wraps tools so that each runs with the context the guard allowed
// its call with: the tool finds its credentials with credentials.FromContext
// on its tool.Context, sees the guard's span as its parent, and is
// cancelled when the task ends. A wrapped tool runs only for a call the
// guard's BeforeTool allowed, with the arguments policy saw; otherwise it
// fails with ErrUnguarded or ErrArgsChanged. It records the outcome of its
// call itself, so that the record never waits on a later callback, and
// hands ADK a failure with its message scrubbed of the call's credentials.
// An agent tool (agenttool) that Guard.AgentTool did not make fails with
// ErrUnguardedAgent. Tools already wrapped by g are returned as they are.
func (g *Guard) Tools(tools ...tool.Tool) []tool.Tool {
	out := make([]tool.Tool, len(tools))
	for i, t := range tools {
		out[i] = g.wrap(t, "")
	}
	return out
}

func (g *Guard) wrap(t tool.Tool, toolset string) tool.Tool {
	if w, ok := t.(*guardedTool); ok && w.g == g {
		return t
	}
	return &guardedTool{g: g, inner: t, toolset: toolset}
}

// Toolset wraps ts: its tools are wrapped as Tools wraps them, and belong
// to the toolset named ts.Name() (policy's Toolset::"<name>") unless a
// Spec names another.
func (g *Guard) Toolset(ts tool.Toolset) tool.Toolset {
	if w, ok := ts.(*guardedToolset); ok && w.g == g {
		return ts
	}
	return &guardedToolset{g: g, inner: ts}
}

// guardedTool is a tool wrapped by Guard.Tools.
type guardedTool struct {
	g       *Guard
	inner   tool.Tool
	toolset string
	// agentTool: inner is an agent tool made by Guard.AgentTool.
	agentTool bool
}

func (w *guardedTool) Name() string        { return w.inner.Name() }
func (w *guardedTool) Description() string { return w.inner.Description() }
func (w *guardedTool) IsLongRunning() bool { return w.inner.IsLongRunning() }

// Declaration returns the wrapped tool's declaration.
func (w *guardedTool) Declaration() *genai.FunctionDeclaration {
	if d, ok := w.inner.(declarer); ok {
		return d.Declaration()
	}
	return nil
}

// ProcessRequest adds the wrapped tool to req as the tool would, and puts
// the wrapper in its place, so that ADK runs the wrapper.
func (w *guardedTool) ProcessRequest(ctx tool.Context, req *model.LLMRequest) error {
	p, ok := w.inner.(requestProcessor)
	if !ok {
		return fmt.Errorf("%w: tool %q cannot be added to a model request", ErrNotRunnable, w.Name())
	}
	if err := p.ProcessRequest(ctx, req); err != nil {
		return err
	}
	if cur, ok := req.Tools[w.Name()]; ok && sameValue(cur, w.inner) {
		if _, ok := w.inner.(runnable); ok {
			req.Tools[w.Name()] = w
		}
	}
	return nil
}

// Run runs the wrapped tool with the guard's context of the call, and
// records its outcome: the guard's answer is what ADK gets, a failure as a
// *agentguard.ToolError, whose message holds no credential value of the
// call, so that no tool-error or after-tool callback sees one.
func (w *guardedTool) Run(ctx tool.Context, args any) (map[string]any, error) {
	key := keyOf(ctx)
	f := w.g.lookup(key, ctx)
	if f != nil {
		w.g.mu.Lock()
		if f.ran {
			f = nil // run once per call
		} else {
			f.ran = true
		}
		w.g.mu.Unlock()
	}
	if f == nil {
		return nil, fmt.Errorf("%w: tool %q", ErrUnguarded, w.Name())
	}
	out, err := w.run(f, ctx, args)
	res, err := w.g.finish(key, f, &agentguard.Result{Output: out}, err)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, nil
	}
	m, _ := res.Output.(map[string]any) // what the guard gives back, only
	return m, nil
}

// run runs the wrapped tool for the call f, once the guard allowed it.
func (w *guardedTool) run(f *flight, ctx tool.Context, args any) (result map[string]any, err error) {
	r, ok := w.inner.(runnable)
	if !ok {
		return nil, fmt.Errorf("%w: tool %q has no Run method", ErrNotRunnable, w.Name())
	}
	m, _ := args.(map[string]any)
	if now, err := callArgs(m); err != nil || !bytes.Equal(now, f.args) {
		return nil, fmt.Errorf("%w: tool %q", ErrArgsChanged, w.Name())
	}
	tctx := f.ctx
	if isAgentTool(w.inner) {
		if !w.agentTool {
			return nil, fmt.Errorf("%w: tool %q", ErrUnguardedAgent, w.Name())
		}
		// The agent's own calls are guarded, each with its credentials:
		// none of this call's reaches them.
		tctx = credentials.NewContext(tctx)
	}
	defer func() {
		if p := recover(); p != nil {
			result, err = nil, fmt.Errorf("adkguard: tool %q panicked: %v", w.Name(), p)
		}
	}()
	return r.Run(&guardedContext{Context: ctx, ctx: tctx}, args)
}

// guardedContext is ADK's tool context of a call, whose context.Context
// is the guard's.
type guardedContext struct {
	tool.Context
	ctx context.Context
}

func (c *guardedContext) Deadline() (time.Time, bool) { return c.ctx.Deadline() }
func (c *guardedContext) Done() <-chan struct{}       { return c.ctx.Done() }
func (c *guardedContext) Err() error                  { return c.ctx.Err() }
func (c *guardedContext) Value(key any) any           { return c.ctx.Value(key) }

// guardedToolset is a toolset wrapped by Guard.Toolset.
type guardedToolset struct {
	g     *Guard
	inner tool.Toolset
}

func (w *guardedToolset) Name() string { return w.inner.Name() }

// Tools returns the wrapped toolset's tools, wrapped.
func (w *guardedToolset) Tools(ctx agent.ReadonlyContext) ([]tool.Tool, error) {
	tools, err := w.inner.Tools(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]tool.Tool, len(tools))
	for i, t := range tools {
		out[i] = w.g.wrap(t, w.inner.Name())
	}
	return out, nil
}

// ProcessRequest lets the wrapped toolset add to the request what it adds.
func (w *guardedToolset) ProcessRequest(ctx tool.Context, req *model.LLMRequest) error {
	if p, ok := w.inner.(requestProcessor); ok {
		return p.ProcessRequest(ctx, req)
	}
	return nil
}

// sameValue reports whether a and b are the same value, without panicking
// on values that cannot be compared.
func sameValue(a, b any) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}
