package einoguard

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/credentials"
)

// Toolset is the eino tools of one agent, described to a guard: each tool's
// definition (its name, description and parameters, read once from Info),
// the attributes policy sees and the credentials it needs. Its Middleware
// runs every call of a ToolsNode through the guard; ToolInfos and Tools give
// the model only the tools policy lets the agent call. It is safe for
// concurrent use.
type Toolset struct {
	g   *agentguard.Guard
	reg *agentguard.Registry
	// unlisted is always empty: a call through it is denied, and audited,
	// as a call of a tool nobody registered (agentguard.ErrUnknownTool).
	unlisted *agentguard.Registry
	name     string
	deferred *approval.Deferred
	live     bool

	// pinned are the tools as given to eino: each one runs as the tool
	// does but describes itself with the definition the guard pinned.
	pinned []tool.BaseTool
	pins   []*pin
	// index maps a tool's name to its position in pinned and pins.
	index map[string]int
}

// Spec is what a tool's eino ToolInfo cannot say about it: the attributes
// policy sees (resource.read_only, resource.risk, resource.labels, ...),
// the taint its results carry, the credentials it needs for each call and
// what its audit records hold of its arguments.
type Spec struct {
	Annotations  agentguard.Annotations
	Risk         agentguard.Risk
	Labels       []string
	OutputLabels []string
	Credentials  []credentials.Requirement
	Audit        agentguard.ArgsAudit
}

// Option configures a Toolset.
type Option func(*config)

type config struct {
	specs    map[string]Spec
	deferred *approval.Deferred
	live     bool
}

// WithSpec gives the tool of that name the attributes and credentials in s.
// A name that is not one of the toolset's tools is an error of New.
func WithSpec(name string, s Spec) Option {
	return func(c *config) { c.specs[name] = s }
}

// WithApprovals makes calls that wait for a human's approval pause the eino
// run with an interrupt, to be resumed with a Decision (see Resume). d must
// be the guard's Approver (agentguard.WithApprover(d)). Without it, a call
// whose approval is pending is answered with the guard's explanation, as a
// denial is, and the run goes on.
func WithApprovals(d *approval.Deferred) Option {
	return func(c *config) { c.deferred = d }
}

// WithLiveStreams passes a streaming tool's chunks on as the tool sends
// them, rather than holding them back until the call is recorded (the
// default). The reader then sees the stream as it comes, at a price: the
// chunks reach eino's callbacks and the graph's stream before the audit
// record is written, so in strict audit mode a record that cannot be
// written no longer withholds them (the stream then ends with the
// explanation as its last chunk), and a credential value the tool echoes
// is removed only where a chunk holds it whole, not where it is split
// across chunks.
func WithLiveStreams() Option {
	return func(c *config) { c.live = true }
}

// New describes tools to g as the toolset of that name (policy's
// Toolset::"<toolset>"). It reads each tool's definition with Info and
// registers it with the guard, which pins it on first use unless the
// guard's lock was given (agentguard.WithLock); a tool whose Info fails, is
// not invokable or streamable in any of eino's four ways, repeats another's
// name or is not a valid agentguard.Tool is an error, and nothing is
// registered.
func New(ctx context.Context, g *agentguard.Guard, toolset string, tools []tool.BaseTool, opts ...Option) (*Toolset, error) {
	if g == nil {
		return nil, fmt.Errorf("einoguard: %w: nil guard", ErrInvalidToolset)
	}
	c := &config{specs: map[string]Spec{}}
	for _, o := range opts {
		o(c)
	}
	d, err := describeAll(ctx, toolset, tools, c.specs)
	if err != nil {
		return nil, err
	}
	s := &Toolset{
		g: g, reg: g.NewRegistry(toolset), unlisted: g.NewRegistry(toolset), name: toolset,
		deferred: c.deferred, live: c.live, pins: d.pins, index: d.index,
	}
	for i, bt := range d.tools {
		s.pinned = append(s.pinned, pinTool(bt, d.pins[i]))
	}
	if err := s.reg.Register(d.guarded...); err != nil {
		return nil, fmt.Errorf("einoguard: %w", err)
	}
	return s, nil
}

// Describe returns the guard's descriptions of tools, as New registers them
// for the toolset of that name (with the attributes and credentials of
// WithSpec options), without their handlers: give them to
// agentguard.PolicySchema to validate policies against the agent's tools
// before the guard exists.
func Describe(ctx context.Context, toolset string, tools []tool.BaseTool, opts ...Option) ([]*agentguard.Tool, error) {
	c := &config{specs: map[string]Spec{}}
	for _, o := range opts {
		o(c)
	}
	d, err := describeAll(ctx, toolset, tools, c.specs)
	if err != nil {
		return nil, err
	}
	for _, t := range d.guarded {
		t.Handler = nil
	}
	return d.guarded, nil
}

// described is what describeAll found.
type described struct {
	tools   []tool.BaseTool
	pins    []*pin
	index   map[string]int
	guarded []*agentguard.Tool
}

// describeAll reads each tool's definition and builds its description.
func describeAll(ctx context.Context, toolset string, tools []tool.BaseTool, specs map[string]Spec) (*described, error) {
	d := &described{index: map[string]int{}}
	for i, bt := range tools {
		if bt == nil {
			return nil, fmt.Errorf("einoguard: %w: tool %d is nil", ErrInvalidToolset, i)
		}
		info, err := bt.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("einoguard: tool %d: Info: %w", i, err)
		}
		if info == nil {
			return nil, fmt.Errorf("einoguard: %w: tool %d has no info", ErrInvalidToolset, i)
		}
		if !runnable(bt) {
			return nil, fmt.Errorf("einoguard: %w: tool %q can be neither invoked nor streamed", ErrInvalidToolset, info.Name)
		}
		if _, dup := d.index[info.Name]; dup {
			return nil, fmt.Errorf("einoguard: %w: tool %q is repeated", ErrInvalidToolset, info.Name)
		}
		t, p, err := describe(info, toolset, specs[info.Name])
		if err != nil {
			return nil, err
		}
		d.index[info.Name] = i
		d.tools = append(d.tools, bt)
		d.pins = append(d.pins, p)
		d.guarded = append(d.guarded, t)
	}
	for name := range specs {
		if _, ok := d.index[name]; !ok {
			return nil, fmt.Errorf("einoguard: %w: WithSpec names %q, which is not one of the tools", ErrInvalidToolset, name)
		}
	}
	return d, nil
}

// runnable reports whether the ToolsNode can run bt, as it checks.
func runnable(bt tool.BaseTool) bool {
	switch bt.(type) {
	case tool.InvokableTool, tool.StreamableTool, tool.EnhancedInvokableTool, tool.EnhancedStreamableTool:
		return true
	}
	return false
}

// describe builds the guard's description of the tool info describes, and
// the pin of the definition the model is to be shown: the same name,
// description and parameters.
func describe(info *schema.ToolInfo, toolset string, spec Spec) (*agentguard.Tool, *pin, error) {
	var in json.RawMessage
	if info.ParamsOneOf != nil {
		js, err := info.ParamsOneOf.ToJSONSchema()
		if err != nil {
			return nil, nil, fmt.Errorf("einoguard: tool %q: parameters: %w", info.Name, err)
		}
		if js != nil {
			if in, err = json.Marshal(js); err != nil {
				return nil, nil, fmt.Errorf("einoguard: tool %q: parameters: %w", info.Name, err)
			}
		}
	}
	p := newPin(info, in)
	if _, err := p.info(); err != nil {
		return nil, nil, fmt.Errorf("einoguard: tool %q: parameters: %w", info.Name, err)
	}
	return &agentguard.Tool{
		Name:         info.Name,
		Description:  info.Desc,
		InputSchema:  in,
		Annotations:  spec.Annotations,
		Risk:         spec.Risk,
		Labels:       slices.Clone(spec.Labels),
		OutputLabels: slices.Clone(spec.OutputLabels),
		Toolset:      toolset,
		Credentials:  slices.Clone(spec.Credentials),
		Audit:        spec.Audit,
		Handler:      runEndpointFor(info.Name),
	}, p, nil
}

// Name returns the toolset's name.
func (s *Toolset) Name() string { return s.name }

// Registry returns the guard's registry of the toolset's tools, to review
// changes (Registry.Pending, Registry.Review) or list them.
func (s *Toolset) Registry() *agentguard.Registry { return s.reg }

// NodeConfig returns the configuration of a ToolsNode that runs the
// toolset's tools, every call through the guard: all the tools (policy
// decides on each call), each describing itself with the definition the
// guard pinned rather than its live Info, the toolset's Middleware, and
// its UnknownToolsHandler, so that a call naming no tool is denied and
// answered rather than failing the run. Set its other fields as needed
// before compose.NewToolNode; keep the middleware and the handler, and
// put any other ToolCallMiddlewares before the toolset's: eino runs them
// in order, so one after it runs between the guard and the tool, and may
// change the arguments the guard authorized.
func (s *Toolset) NodeConfig() *compose.ToolsNodeConfig {
	return &compose.ToolsNodeConfig{
		Tools:               slices.Clone(s.pinned),
		ToolCallMiddlewares: []compose.ToolMiddleware{s.Middleware()},
		UnknownToolsHandler: s.UnknownToolsHandler,
	}
}
