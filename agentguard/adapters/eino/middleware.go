package einoguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/credentials"
)

// Middleware returns the ToolsNode middleware that runs every call of the
// toolset's tools through the guard, for all four kinds of eino tool:
// invokable, streamable, enhanced invokable and enhanced streamable. Give it
// to compose.ToolsNodeConfig.ToolCallMiddlewares (NodeConfig does), or to
// a ReAct agent's ToolsConfig.
//
// A call the guard allows runs with the guard's context: its span, its task
// and the credentials the tool declared (credentials.FromContext), and with
// the canonical arguments policy saw; the values of those credentials are
// removed from its output, should it echo them. A call it denies never
// reaches the tool: the model gets agentguard.Explain's
// text as the tool's result, and the run goes on. A call naming a tool that
// is not in the toolset is denied the same way. A call whose approval waits
// for a human pauses the run with an eino interrupt (WithApprovals). A tool
// that fails ends the run, as in eino without the guard, with an
// *agentguard.ToolError whose message holds no credential value.
//
// eino runs a ToolsNode's middlewares in order, the first outermost: a
// middleware after this one runs between the guard and the tool, and may
// change the arguments the guard authorized. Put it last.
func (s *Toolset) Middleware() compose.ToolMiddleware {
	return compose.ToolMiddleware{
		Invokable: func(next compose.InvokableToolEndpoint) compose.InvokableToolEndpoint {
			return func(ctx context.Context, in *compose.ToolInput) (*compose.ToolOutput, error) {
				out, err := invoke(s, ctx, in, func(ctx context.Context, in *compose.ToolInput) (string, error) {
					o, err := next(ctx, in)
					if err != nil {
						return "", err
					}
					if o == nil {
						return "", fmt.Errorf("einoguard: tool %q returned no output", in.Name)
					}
					return o.Result, nil
				}, func(text string) string { return text })
				if err != nil {
					return nil, err
				}
				return &compose.ToolOutput{Result: out}, nil
			}
		},
		EnhancedInvokable: func(next compose.EnhancedInvokableToolEndpoint) compose.EnhancedInvokableToolEndpoint {
			return func(ctx context.Context, in *compose.ToolInput) (*compose.EnhancedInvokableToolOutput, error) {
				out, err := invoke(s, ctx, in, func(ctx context.Context, in *compose.ToolInput) (*schema.ToolResult, error) {
					o, err := next(ctx, in)
					if err != nil {
						return nil, err
					}
					if o == nil || o.Result == nil {
						return nil, fmt.Errorf("einoguard: tool %q returned no output", in.Name)
					}
					return o.Result, nil
				}, textResult)
				if err != nil {
					return nil, err
				}
				return &compose.EnhancedInvokableToolOutput{Result: out}, nil
			}
		},
		Streamable: func(next compose.StreamableToolEndpoint) compose.StreamableToolEndpoint {
			return func(ctx context.Context, in *compose.ToolInput) (*compose.StreamToolOutput, error) {
				sr, err := guardStream(s, ctx, in, func(ctx context.Context, in *compose.ToolInput) (*schema.StreamReader[string], error) {
					o, err := next(ctx, in)
					if err != nil {
						return nil, err
					}
					if o == nil || o.Result == nil {
						return nil, fmt.Errorf("einoguard: tool %q returned no stream", in.Name)
					}
					return o.Result, nil
				}, func(text string) string { return text })
				if err != nil {
					return nil, err
				}
				return &compose.StreamToolOutput{Result: sr}, nil
			}
		},
		EnhancedStreamable: func(next compose.EnhancedStreamableToolEndpoint) compose.EnhancedStreamableToolEndpoint {
			return func(ctx context.Context, in *compose.ToolInput) (*compose.EnhancedStreamableToolOutput, error) {
				sr, err := guardStream(s, ctx, in, func(ctx context.Context, in *compose.ToolInput) (*schema.StreamReader[*schema.ToolResult], error) {
					o, err := next(ctx, in)
					if err != nil {
						return nil, err
					}
					if o == nil || o.Result == nil {
						return nil, fmt.Errorf("einoguard: tool %q returned no stream", in.Name)
					}
					return o.Result, nil
				}, textResult)
				if err != nil {
					return nil, err
				}
				return &compose.EnhancedStreamableToolOutput{Result: sr}, nil
			}
		},
	}
}

// UnknownToolsHandler answers a call naming a tool the ToolsNode does not
// hold (eino runs it without the middleware): the call is denied by the
// guard (agentguard.ErrUnknownTool), audited, and the model gets the
// explanation. This holds for a tool of the toolset too, if the ToolsNode
// was built without it: the model named a tool this node does not offer.
// NodeConfig sets it.
func (s *Toolset) UnknownToolsHandler(ctx context.Context, name, input string) (string, error) {
	_, err := s.unlisted.Call(ctx, agentguard.Call{ID: compose.GetToolCallID(ctx), Name: name, Args: json.RawMessage(input)})
	if err == nil {
		// The registry is empty: a call through it cannot succeed.
		err = errNotInNode
	}
	return agentguard.Explain(err), nil
}

// textResult is an enhanced tool's result holding text alone.
func textResult(text string) *schema.ToolResult {
	return &schema.ToolResult{Parts: []schema.ToolOutputPart{{Type: schema.ToolPartTypeText, Text: text}}}
}

// runKey carries, in the context of a call, how eino runs the tool.
type runKey struct{}

// runFunc runs the tool the middleware is guarding, with the arguments
// policy saw.
type runFunc func(ctx context.Context, args string) (any, error)

// boundRun is a runFunc with the name of the tool it runs.
type boundRun struct {
	name string
	run  runFunc
}

// runEndpointFor returns the Handler of the registered tool of that name:
// it runs the eino endpoint the middleware put in ctx, so that the tool
// runs inside the guard's pipeline, and removes from its output the values
// of the call's credentials, should it echo them. It
// runs the endpoint only if the middleware put it there for this very
// tool: a context inherited by a tool that runs another ToolsNode (a
// sub-agent) still holds the outer call's endpoint, which must never run
// under another tool's authorization and credentials.
func runEndpointFor(name string) func(context.Context, json.RawMessage) (*agentguard.Result, error) {
	return func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
		b, ok := ctx.Value(runKey{}).(boundRun)
		if !ok || b.name != name {
			return nil, errNotInNode
		}
		out, err := b.run(ctx, string(args))
		if err != nil {
			return nil, err
		}
		if out, err = scrubOutput(out, credentials.AllFromContext(ctx)); err != nil {
			return nil, fmt.Errorf("einoguard: tool %q: %w", name, err)
		}
		return &agentguard.Result{Output: out}, nil
	}
}

// invoke runs one call of an invokable tool through the guard. It returns
// the tool's output, or deny's form of the text the model gets in its place,
// or an error for eino: an interrupt, or the tool's failure.
func invoke[T any](s *Toolset, ctx context.Context, in *compose.ToolInput,
	next func(context.Context, *compose.ToolInput) (T, error), deny func(string) T) (T, error) {
	var zero T
	if proceed, err := s.resumed(ctx, in); !proceed {
		return zero, err
	}
	run := runFunc(func(ctx context.Context, args string) (any, error) {
		c := *in
		c.Arguments = args
		return next(ctx, &c)
	})
	res, err := s.reg.Call(context.WithValue(ctx, runKey{}, boundRun{name: in.Name, run: run}),
		agentguard.Call{ID: in.CallID, Name: in.Name, Args: json.RawMessage(in.Arguments)})
	if err != nil {
		text, err := s.refused(ctx, in, err)
		if err != nil {
			return zero, err
		}
		return deny(text), nil
	}
	out, ok := res.Output.(T)
	if !ok {
		return zero, fmt.Errorf("einoguard: tool %q: result of type %T", in.Name, res.Output)
	}
	return out, nil
}

// refused turns the error of a guarded call into what eino gets: an
// interrupt for a call waiting for approval (WithApprovals), the error for
// a tool that ran and failed (or interrupted the run itself), and
// otherwise the text for the model in place of the tool's result.
func (s *Toolset) refused(ctx context.Context, in *compose.ToolInput, err error) (string, error) {
	if s.deferred != nil {
		if req, ok := approval.PendingRequest(err); ok {
			return "", s.interrupt(ctx, in, req)
		}
	}
	var failed *agentguard.ToolError
	if errors.As(err, &failed) {
		return "", err
	}
	return agentguard.Explain(err), nil
}
