package anthropicguard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/packages/param"

	"github.com/agentguard/go-sdk/agentguard"
)

// ErrSchema: a tool's input schema cannot be given to the Messages API,
// which takes only a JSON Schema of "type": "object".
var ErrSchema = errors.New("anthropicguard: input schema is not an object schema")

// Tools returns the definitions of the tools of r that the current agent
// may call in the task of ctx, filtered by policy (Registry.List), for
// MessageNewParams.Tools. A tool whose definition cannot be built is an
// error, and no definitions are returned: the model is never shown a tool
// list that differs from what the guard decided.
func Tools(ctx context.Context, r *agentguard.Registry) ([]anthropic.ToolUnionParam, error) {
	if r == nil {
		return nil, ErrNoRegistry
	}
	listed, err := r.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("anthropicguard: listing tools: %w", err)
	}
	out := make([]anthropic.ToolUnionParam, 0, len(listed))
	for _, t := range listed {
		p, err := ToolParam(t)
		if err != nil {
			return nil, err
		}
		out = append(out, anthropic.ToolUnionParam{OfTool: &p})
	}
	return out, nil
}

// ToolParam returns the definition of t as the Messages API takes it: its
// name, description and input schema, sent as registered. A schema that
// says no "type" is sent with "type": "object", which the API requires and
// which is what the guard accepts as arguments anyway; a schema of another
// type is an error matching ErrSchema. It does not ask policy: use Tools
// for the list to give the model.
func ToolParam(t *agentguard.Tool) (anthropic.ToolParam, error) {
	if t == nil {
		return anthropic.ToolParam{}, errors.New("anthropicguard: nil tool")
	}
	schema, err := objectSchema(t.InputSchema)
	if err != nil {
		return anthropic.ToolParam{}, fmt.Errorf("anthropicguard: tool %q: %w", t.Name, err)
	}
	p := anthropic.ToolParam{
		Name:        t.Name,
		InputSchema: param.Override[anthropic.ToolInputSchemaParam](schema),
	}
	if t.Description != "" {
		p.Description = anthropic.String(t.Description)
	}
	return p, nil
}

// objectSchema is s with "type": "object" where it says no type, or the
// empty object schema for none.
func objectSchema(s json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(s)) == 0 {
		return json.RawMessage(`{"type":"object","properties":{}}`), nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(s, &m); err != nil || m == nil {
		return nil, ErrSchema
	}
	typ, ok := m["type"]
	if !ok {
		m["type"] = json.RawMessage(`"object"`)
		b, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSchema, err)
		}
		return b, nil
	}
	var name string
	if err := json.Unmarshal(typ, &name); err != nil || name != "object" {
		return nil, ErrSchema
	}
	return bytes.Clone(s), nil
}
