package genkitguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/firebase/genkit/go/ai"
	"github.com/firebase/genkit/go/genkit"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/credentials"
)

// DefaultToolset is the toolset (policy's Toolset::"<name>") of the genkit
// tools a Middleware guards, unless WithToolset or a described tool says
// otherwise.
const DefaultToolset = "genkit"

// Name is the name the middleware goes by in genkit (ai.Middleware.Name).
const Name = "agentguard/guard"

// Middleware guards the tool calls of genkit generations: pass it to
// ai.WithUse (or call Generate), and every tool that genkit runs during the
// generation, whatever the way it reached the generation, runs only if the
// guard allows the call. It is an ai.Middleware with a WrapTool hook and
// nothing else. It is safe for concurrent use, by concurrent generations
// and by the tools one generation runs in parallel.
type Middleware struct {
	g        *agentguard.Guard
	toolset  string
	tools    map[string]*agentguard.Tool
	deferred *approval.Deferred
}

var _ ai.Middleware = (*Middleware)(nil)

// Option configures a Middleware.
type Option func(*Middleware) error

// WithToolset sets the toolset of the tools that Describe gives none:
// policy sees each tool as a Tool::"<name>" in Toolset::"<toolset>".
// The default is DefaultToolset.
func WithToolset(name string) Option {
	return func(m *Middleware) error {
		if name == "" {
			return errors.New("genkitguard: empty toolset name")
		}
		m.toolset = name
		return nil
	}
}

// Describe tells the guard what genkit cannot about the tools of the
// given names: each one's Toolset, Title, Annotations, Risk, Labels,
// OutputLabels, the Credentials it needs for each call and what its audit
// records hold of its arguments (Audit). The rest of the definition,
// the description, input schema and output schema, always comes from the
// genkit tool itself (ai.Tool.Definition), since that is what the model
// reads; whatever these tools say of it, and their Handler, is ignored.
//
// A tool that is not described is guarded all the same, with its genkit
// definition and nothing else: no credentials, no risk, no labels. Policy
// decides on it as on any other (Cedar denies what no policy permits).
func Describe(tools ...*agentguard.Tool) Option {
	return func(m *Middleware) error {
		for _, t := range tools {
			if t == nil {
				return errors.New("genkitguard: Describe: nil tool")
			}
			if _, dup := m.tools[t.Name]; dup {
				return fmt.Errorf("genkitguard: Describe: tool %q described twice", t.Name)
			}
			c := *t
			c.Labels = slices.Clone(t.Labels)
			c.OutputLabels = slices.Clone(t.OutputLabels)
			c.Credentials = slices.Clone(t.Credentials)
			c.Audit.Redact = slices.Clone(t.Audit.Redact)
			m.tools[t.Name] = &c
		}
		return nil
	}
}

// WithApprovals makes calls that wait for a human's approval pause the
// generation with genkit's tool interrupts, and lets Restart record the
// human's decision in d. d must be the guard's approver too
// (agentguard.WithApprover(d)); if it is not, a call that needs approval
// fails the generation (ErrNotGuardsApprover).
//
// Without it, a call the guard denies because its approval is pending
// (agentguard.ErrApprovalPending) still interrupts the generation, and
// the application must record the decision in the guard's approver itself
// before it restarts the tool request with genkit's own ai.Tool.Restart.
func WithApprovals(d *approval.Deferred) Option {
	return func(m *Middleware) error {
		if d == nil {
			return errors.New("genkitguard: WithApprovals: nil Deferred")
		}
		m.deferred = d
		return nil
	}
}

// New returns a middleware that runs every genkit tool call through g.
func New(g *agentguard.Guard, opts ...Option) (*Middleware, error) {
	if g == nil {
		return nil, ErrNoGuard
	}
	m := &Middleware{g: g, toolset: DefaultToolset, tools: map[string]*agentguard.Tool{}}
	for _, o := range opts {
		if err := o(m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Name returns Name.
func (m *Middleware) Name() string { return Name }

// New returns the hooks of one generation: a WrapTool hook that guards
// every tool call.
func (m *Middleware) New(context.Context) (*ai.Hooks, error) {
	return &ai.Hooks{WrapTool: m.wrapTool}, nil
}

// Generate is genkit.Generate with the middleware added last to opts, so
// that it is the innermost of the generation's middleware: the arguments
// the guard authorizes are those the tool runs with, since no other
// middleware's WrapTool hook comes between the guard and the tool.
func (m *Middleware) Generate(ctx context.Context, g *genkit.Genkit, opts ...ai.GenerateOption) (*ai.ModelResponse, error) {
	opts = append(opts[:len(opts):len(opts)], ai.WithUse(m))
	return genkit.Generate(ctx, g, opts...)
}

// wrapTool is the WrapTool hook: it runs the call through the guard, and
// next (the tool) only if the guard allows it.
func (m *Middleware) wrapTool(ctx context.Context, params *ai.ToolParams, next ai.ToolNext) (*ai.MultipartToolResponse, error) {
	if params == nil || params.Tool == nil || params.Request == nil {
		return nil, errors.New("genkitguard: a tool call without its tool or request")
	}
	t := m.describe(params.Tool)
	call := agentguard.Call{ID: params.Request.Ref, Name: params.Request.Name, Args: arguments(params.Request.Input)}

	exec := func(ctx context.Context, t *agentguard.Tool, c agentguard.Call) (*agentguard.Result, error) {
		p := *params
		req := *params.Request
		// The tool runs with the canonical arguments the guard authorized.
		req.Input = json.RawMessage(c.Args)
		p.Request = &req
		resp, err := next(ctx, &p)
		if err != nil {
			return nil, err
		}
		// Should the tool echo a credential, the model never reads it.
		if resp, err = scrubResponse(resp, credentials.AllFromContext(ctx)); err != nil {
			return nil, fmt.Errorf("genkitguard: tool %q: %w", t.Name, err)
		}
		return &agentguard.Result{Output: resp}, nil
	}
	res, err := m.g.Middleware()(exec)(ctx, t, call)
	if err == nil {
		resp, _ := res.Output.(*ai.MultipartToolResponse)
		if resp == nil {
			resp = &ai.MultipartToolResponse{}
		}
		return resp, nil
	}

	if req, ok := approval.PendingRequest(err); ok {
		if ai.IsToolResumed(ctx) {
			// genkit cannot interrupt a restarted request again: it fails
			// the generation, so say why.
			return nil, fmt.Errorf("%w: request %s for tool %q: no decision recorded for this call (Middleware.Restart records it)",
				ErrStillPending, req.ID, req.Tool)
		}
		if m.deferred != nil && !m.holds(req.ID) {
			return nil, fmt.Errorf("genkitguard: tool %q, request %s: %w", req.Tool, req.ID, ErrNotGuardsApprover)
		}
		return nil, ai.NewToolInterruptError(map[string]any{InterruptKey: interruptValue(req)})
	}
	var toolErr *agentguard.ToolError
	if errors.As(err, &toolErr) {
		// The tool ran and failed (or interrupted the generation itself):
		// genkit's own idiom, with the credentials scrubbed from the text.
		return nil, err
	}
	if errors.Is(err, agentguard.ErrDenied) {
		return denial(err), nil
	}
	return nil, fmt.Errorf("genkitguard: tool %q: %w", t.Name, err)
}

// arguments returns a tool request's input as JSON: an empty object for
// none, and for input that does not marshal, bytes the guard refuses as
// invalid arguments.
func arguments(input any) json.RawMessage {
	if input == nil {
		return json.RawMessage("{}")
	}
	b, err := json.Marshal(input)
	if err != nil {
		return json.RawMessage("invalid")
	}
	return b
}

// denial is what the model gets in place of the result of a call the guard
// refused: {"error": "<why>"} as the tool's output, so that the generation
// goes on and the model can adapt. The response's metadata marks it as the
// guard's, with the step that refused.
func denial(err error) *ai.MultipartToolResponse {
	meta := map[string]any{"denied": true}
	var deny *agentguard.DenyError
	if errors.As(err, &deny) {
		meta["step"] = deny.Step
	}
	return &ai.MultipartToolResponse{
		Output:   map[string]any{"error": agentguard.Explain(err)},
		Metadata: map[string]any{MetadataKey: meta},
	}
}
