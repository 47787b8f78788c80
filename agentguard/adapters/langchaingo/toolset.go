package langchainguard

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/tmc/langchaingo/tools"

	"github.com/agentguard/go-sdk/agentguard"
)

// Toolset is a set of langchaingo tools guarded as one toolset (policy's
// Toolset::"<name>"): every call of its tools runs through the guard's
// Registry, and Allowed lists those the agent may call. It is safe for
// concurrent use.
type Toolset struct {
	guard    *agentguard.Guard
	name     string
	registry *agentguard.Registry
	// unlisted is always empty: a call through it is denied, and audited,
	// as a call of a tool nobody registered (agentguard.ErrUnknownTool).
	unlisted *agentguard.Registry
	tools    []*guardedTool
	byName   map[string]*guardedTool
	ids      *CallIDs
	observe  bool
}

// New registers ts with a new registry of g for the toolset named toolset
// and returns the guarded toolset. Each tool is described to the guard
// by its Name and Description (as they are now: the guarded tool keeps
// them) and by its Spec (WithSpec); without WithLock the guard trusts
// these definitions on first use and pins them, with WithLock they must
// be pinned already (see agentguard.Registry.Register). Two tools whose
// names differ only in case are an error (ErrDuplicateTool), since
// langchaingo's executor could not tell them apart.
func New(g *agentguard.Guard, toolset string, ts []tools.Tool, opts ...Option) (*Toolset, error) {
	if g == nil {
		return nil, ErrNilGuard
	}
	c := newConfig(opts)
	s := &Toolset{
		guard:    g,
		name:     toolset,
		registry: g.NewRegistry(toolset),
		unlisted: g.NewRegistry(toolset),
		byName:   map[string]*guardedTool{},
		ids:      newCallIDs(),
		observe:  c.errorsObserved,
	}
	gts, defs, err := build(toolset, ts, c)
	if err != nil {
		return nil, err
	}
	for _, gt := range gts {
		gt.set = s
		s.byName[gt.name] = gt
	}
	s.tools = gts
	if err := s.registry.Register(defs...); err != nil {
		return nil, fmt.Errorf("langchainguard: register toolset %q: %w", toolset, err)
	}
	return s, nil
}

// Definitions returns the definitions New would register for ts, without
// handlers: what policy sees of each tool. Give them to
// agentguard.PolicySchema so that the Cedar policies are validated against
// the tools' arguments (context.args.input for a free-text tool) before
// the guard is built.
func Definitions(toolset string, ts []tools.Tool, opts ...Option) ([]*agentguard.Tool, error) {
	_, defs, err := build(toolset, ts, newConfig(opts))
	if err != nil {
		return nil, err
	}
	for _, d := range defs {
		d.Handler = nil
	}
	return defs, nil
}

func newConfig(opts []Option) config {
	c := config{specs: map[string]Spec{}}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// build makes the guarded tools of ts (their set not yet known) and their
// definitions.
func build(toolset string, ts []tools.Tool, c config) ([]*guardedTool, []*agentguard.Tool, error) {
	folded := map[string]bool{}
	specs := maps.Clone(c.specs)
	gts := make([]*guardedTool, 0, len(ts))
	defs := make([]*agentguard.Tool, 0, len(ts))
	for i, t := range ts {
		if t == nil {
			return nil, nil, fmt.Errorf("%w: index %d", ErrNilTool, i)
		}
		name := t.Name()
		if folded[strings.ToUpper(name)] {
			return nil, nil, fmt.Errorf("%w: %q", ErrDuplicateTool, name)
		}
		folded[strings.ToUpper(name)] = true
		spec := specs[name]
		delete(specs, name)
		gt := &guardedTool{inner: t, name: name, description: t.Description(), json: len(spec.InputSchema) > 0}
		def, err := gt.definition(toolset, spec)
		if err != nil {
			return nil, nil, err
		}
		gts = append(gts, gt)
		defs = append(defs, def)
	}
	for name := range specs {
		return nil, nil, fmt.Errorf("%w: %q", ErrUnknownSpec, name)
	}
	return gts, defs, nil
}

// Wrap is New(g, toolset, ts, opts...).Tools(): the guarded tools, in the
// order of ts, to give to an agent. Prefer New and Allowed, which leave out
// the tools policy would always refuse.
func Wrap(g *agentguard.Guard, toolset string, ts []tools.Tool, opts ...Option) ([]tools.Tool, error) {
	s, err := New(g, toolset, ts, opts...)
	if err != nil {
		return nil, err
	}
	return s.Tools(), nil
}

// Name returns the toolset's name.
func (s *Toolset) Name() string { return s.name }

// Registry returns the registry the toolset's calls go through, to review
// pending definitions (Registry.Pending, Registry.Review) or call a tool
// directly.
func (s *Toolset) Registry() *agentguard.Registry { return s.registry }

// Tools returns every guarded tool, in the order given to New, whether or
// not policy lets the agent call it.
func (s *Toolset) Tools() []tools.Tool {
	out := make([]tools.Tool, len(s.tools))
	for i, t := range s.tools {
		out[i] = t
	}
	return out
}

// Allowed returns the guarded tools that the agent of ctx may call in the
// task of ctx (agentguard.Registry.List), in the order given to New: the
// tools to give to agents.NewOneShotAgent, NewConversationalAgent or
// NewOpenAIFunctionsAgent, so that the model is never shown a tool that
// policy will always refuse or whose definition is not trusted. It is not
// a grant: every call is authorized in full. An error (no identity, a
// suspended agent, an ended task) returns no tools.
func (s *Toolset) Allowed(ctx context.Context) ([]tools.Tool, error) {
	listed, err := s.registry.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("langchainguard: list toolset %q: %w", s.name, err)
	}
	out := make([]tools.Tool, 0, len(listed))
	for _, t := range listed {
		if gt, ok := s.byName[t.Name]; ok {
			out = append(out, gt)
		}
	}
	return out, nil
}

// Callbacks returns the langchaingo callbacks handler that gives the
// guard each action's tool-call ID (see CallIDs). Set it on the executor
// (agents.WithCallbacksHandler), combined with the application's own
// handler through callbacks.CombiningHandler if it has one. Without it the
// guard makes up a call ID for each call.
func (s *Toolset) Callbacks() *CallIDs { return s.ids }

// textArgs is the arguments of a free-text tool.
type textArgs struct {
	Input *string `json:"input"`
}

// argsOf turns a tool input into the call's arguments.
func argsOf(jsonInput bool, input string) (json.RawMessage, error) {
	if jsonInput {
		return json.RawMessage(input), nil
	}
	return json.Marshal(map[string]string{"input": input})
}
