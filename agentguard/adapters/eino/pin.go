package einoguard

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"

	"github.com/cloudwego/eino/components"
	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/schema"
	"github.com/eino-contrib/jsonschema"
)

// pin is a tool's definition as New read it and the guard pinned it: the
// name, description and parameters (as the JSON Schema bytes the
// fingerprint covers). Each info call builds a new ToolInfo from it, so
// that neither the tool (whose Info may return a struct it changes later)
// nor a caller of ToolInfos can change what the model is shown.
type pin struct {
	name   string
	desc   string
	extra  map[string]any
	params json.RawMessage // nil: the tool takes no parameters
}

func newPin(info *schema.ToolInfo, params json.RawMessage) *pin {
	return &pin{name: info.Name, desc: info.Desc, extra: maps.Clone(info.Extra), params: params}
}

// info returns a fresh copy of the pinned definition.
func (p *pin) info() (*schema.ToolInfo, error) {
	out := &schema.ToolInfo{Name: p.name, Desc: p.desc, Extra: maps.Clone(p.extra)}
	if p.params != nil {
		var js jsonschema.Schema
		if err := json.Unmarshal(p.params, &js); err != nil {
			return nil, err
		}
		out.ParamsOneOf = schema.NewParamsOneOfByJSONSchema(&js)
	}
	return out, nil
}

// pinned is the part of every pinned tool that describes it: Info returns
// the definition the guard pinned, never the tool's live Info, and eino's
// callback aspects are left to the tool as they would be without the
// wrapper (components.Checker, components.Typer).
type pinned struct {
	pin   *pin
	inner tool.BaseTool
}

func (p *pinned) Info(context.Context) (*schema.ToolInfo, error) { return p.pin.info() }

func (p *pinned) IsCallbacksEnabled() bool { return components.IsCallbacksEnabled(p.inner) }

// GetType is the tool's own type name, as eino would name it unwrapped.
func (p *pinned) GetType() string {
	if t, ok := components.GetType(p.inner); ok {
		return t
	}
	typ := reflect.TypeOf(p.inner)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	return typ.Name()
}

// The run methods of the four kinds of eino tool. A Go type has at most one
// InvokableRun and one StreamableRun, so a tool is one of eight
// combinations of them, below.
type (
	invoker   struct{ it tool.InvokableTool }
	streamer  struct{ st tool.StreamableTool }
	eInvoker  struct{ et tool.EnhancedInvokableTool }
	eStreamer struct{ es tool.EnhancedStreamableTool }
)

func (x invoker) InvokableRun(ctx context.Context, args string, opts ...tool.Option) (string, error) {
	return x.it.InvokableRun(ctx, args, opts...)
}

func (x streamer) StreamableRun(ctx context.Context, args string, opts ...tool.Option) (*schema.StreamReader[string], error) {
	return x.st.StreamableRun(ctx, args, opts...)
}

func (x eInvoker) InvokableRun(ctx context.Context, args *schema.ToolArgument, opts ...tool.Option) (*schema.ToolResult, error) {
	return x.et.InvokableRun(ctx, args, opts...)
}

func (x eStreamer) StreamableRun(ctx context.Context, args *schema.ToolArgument, opts ...tool.Option) (*schema.StreamReader[*schema.ToolResult], error) {
	return x.es.StreamableRun(ctx, args, opts...)
}

type (
	pinI struct {
		*pinned
		invoker
	}
	pinS struct {
		*pinned
		streamer
	}
	pinIS struct {
		*pinned
		invoker
		streamer
	}
	pinEI struct {
		*pinned
		eInvoker
	}
	pinES struct {
		*pinned
		eStreamer
	}
	pinEIES struct {
		*pinned
		eInvoker
		eStreamer
	}
	pinIES struct {
		*pinned
		invoker
		eStreamer
	}
	pinEIS struct {
		*pinned
		eInvoker
		streamer
	}
)

var (
	_ tool.InvokableTool          = pinI{}
	_ tool.StreamableTool         = pinS{}
	_ tool.InvokableTool          = pinIS{}
	_ tool.StreamableTool         = pinIS{}
	_ tool.EnhancedInvokableTool  = pinEI{}
	_ tool.EnhancedStreamableTool = pinES{}
	_ tool.EnhancedInvokableTool  = pinEIES{}
	_ tool.EnhancedStreamableTool = pinEIES{}
	_ tool.InvokableTool          = pinIES{}
	_ tool.EnhancedStreamableTool = pinIES{}
	_ tool.EnhancedInvokableTool  = pinEIS{}
	_ tool.StreamableTool         = pinEIS{}
	_ components.Checker          = pinI{}
	_ components.Typer            = pinI{}
)

// pinTool returns bt as eino runs it (the same kinds of run, the same
// callback aspects), but describing itself with p: the tool to give a
// ToolsNode or a ReAct agent, which shows the model each tool's Info.
// It returns nil for a tool eino cannot run.
func pinTool(bt tool.BaseTool, p *pin) tool.BaseTool {
	base := &pinned{pin: p, inner: bt}
	it, isI := bt.(tool.InvokableTool)
	st, isS := bt.(tool.StreamableTool)
	et, isEI := bt.(tool.EnhancedInvokableTool)
	es, isES := bt.(tool.EnhancedStreamableTool)
	switch {
	case isI && isS:
		return pinIS{base, invoker{it}, streamer{st}}
	case isEI && isES:
		return pinEIES{base, eInvoker{et}, eStreamer{es}}
	case isI && isES:
		return pinIES{base, invoker{it}, eStreamer{es}}
	case isEI && isS:
		return pinEIS{base, eInvoker{et}, streamer{st}}
	case isI:
		return pinI{base, invoker{it}}
	case isS:
		return pinS{base, streamer{st}}
	case isEI:
		return pinEI{base, eInvoker{et}}
	case isES:
		return pinES{base, eStreamer{es}}
	}
	return nil
}
