package agentguard

import "context"

// Next runs a call of tool t: the framework's own execution of the tool, or
// the next middleware.
type Next func(ctx context.Context, t *Tool, call Call) (*Result, error)

// Middleware wraps the execution of tool calls. The first middleware of a
// chain is the outermost.
type Middleware func(next Next) Next

// Middleware returns the guard as a middleware for agent-framework adapters:
// every call passes the whole pipeline, and next runs only if the guard
// allows it. t describes the tool to policy; its Handler is not used. A tool
// description that is not usable is a denial (ErrInvalidTool).
func (g *Guard) Middleware() Middleware {
	return func(next Next) Next {
		return func(ctx context.Context, t *Tool, call Call) (*Result, error) {
			if err := t.validate(false); err != nil {
				return g.refuseTool(ctx, t, call, err)
			}
			return g.run(ctx, t, call, next)
		}
	}
}

// Chain composes middlewares; the first is the outermost.
func Chain(ms ...Middleware) Middleware {
	return func(next Next) Next {
		for i := len(ms) - 1; i >= 0; i-- {
			next = ms[i](next)
		}
		return next
	}
}
