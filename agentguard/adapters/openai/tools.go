package openaiguard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/agentguard/go-sdk/agentguard"
)

// ErrSchema: a tool's input schema cannot be given to the API as a
// function's parameters, which must be a JSON Schema of "type": "object".
var ErrSchema = errors.New("openaiguard: input schema is not an object schema")

// Tools returns the function definitions of the tools of r that the
// current agent may call in the task of ctx, filtered by policy
// (Registry.List), for ChatCompletionNewParams.Tools. A tool whose
// definition cannot be built is an error, and no definitions are returned.
func Tools(ctx context.Context, r *agentguard.Registry) ([]openai.ChatCompletionToolUnionParam, error) {
	return convert(ctx, r, func(t *agentguard.Tool) (openai.ChatCompletionToolUnionParam, error) {
		def, err := FunctionDefinition(t)
		if err != nil {
			return openai.ChatCompletionToolUnionParam{}, err
		}
		return openai.ChatCompletionFunctionTool(def), nil
	})
}

// ResponseTools is Tools for the Responses API (ResponseNewParams.Tools):
// function tools, with the tool's output schema where it declares one.
func ResponseTools(ctx context.Context, r *agentguard.Registry) ([]responses.ToolUnionParam, error) {
	return convert(ctx, r, func(t *agentguard.Tool) (responses.ToolUnionParam, error) {
		def, err := ResponseFunction(t)
		if err != nil {
			return responses.ToolUnionParam{}, err
		}
		return responses.ToolUnionParam{OfFunction: &def}, nil
	})
}

// convert lists the tools of r and converts each.
func convert[T any](ctx context.Context, r *agentguard.Registry, conv func(*agentguard.Tool) (T, error)) ([]T, error) {
	if r == nil {
		return nil, ErrNoRegistry
	}
	listed, err := r.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("openaiguard: listing tools: %w", err)
	}
	out := make([]T, 0, len(listed))
	for _, t := range listed {
		p, err := conv(t)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// FunctionDefinition returns t as a function definition: its name,
// description and input schema as parameters. A schema that says no
// "type" is sent with "type": "object", which is what the guard accepts
// as arguments anyway; a schema of another type is an error matching
// ErrSchema. It does not ask policy: use Tools for the list to give the
// model.
func FunctionDefinition(t *agentguard.Tool) (shared.FunctionDefinitionParam, error) {
	if t == nil {
		return shared.FunctionDefinitionParam{}, errors.New("openaiguard: nil tool")
	}
	params, err := objectSchema(t.InputSchema)
	if err != nil {
		return shared.FunctionDefinitionParam{}, fmt.Errorf("openaiguard: tool %q: %w", t.Name, err)
	}
	def := shared.FunctionDefinitionParam{Name: t.Name, Parameters: params}
	if t.Description != "" {
		def.Description = openai.String(t.Description)
	}
	return def, nil
}

// ResponseFunction is FunctionDefinition for the Responses API, with the
// tool's output schema (agentguard.Tool.OutputSchema) where it has one.
// Strict mode is off: it asks more of a schema than the guard does.
func ResponseFunction(t *agentguard.Tool) (responses.FunctionToolParam, error) {
	def, err := FunctionDefinition(t)
	if err != nil {
		return responses.FunctionToolParam{}, err
	}
	fn := responses.FunctionToolParam{
		Name: def.Name, Description: def.Description, Parameters: def.Parameters,
		Strict: openai.Bool(false),
	}
	if len(bytes.TrimSpace(t.OutputSchema)) > 0 {
		out, err := decodeObject(t.OutputSchema)
		if err != nil {
			return responses.FunctionToolParam{}, fmt.Errorf("openaiguard: tool %q: output schema: %w", t.Name, err)
		}
		fn.OutputSchema = out
	}
	return fn, nil
}

// objectSchema is s as parameters: with "type": "object" where it says no
// type, or the empty object schema for none. Each member's value is the
// json.RawMessage of the schema as registered (the SDK's encoder would
// write a json.Number as a string, and a float64 loses digits).
func objectSchema(s json.RawMessage) (map[string]any, error) {
	if len(bytes.TrimSpace(s)) == 0 {
		return map[string]any{"type": json.RawMessage(`"object"`), "properties": json.RawMessage(`{}`)}, nil
	}
	m, err := decodeObject(s)
	if err != nil {
		return nil, err
	}
	typ, ok := m["type"]
	if !ok {
		m["type"] = json.RawMessage(`"object"`)
		return m, nil
	}
	var name string
	if raw, _ := typ.(json.RawMessage); json.Unmarshal(raw, &name) != nil || name != "object" {
		return nil, ErrSchema
	}
	return m, nil
}

// decodeObject decodes a JSON object into its members, each kept as the
// json.RawMessage it was.
func decodeObject(s json.RawMessage) (map[string]any, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(s, &members); err != nil || members == nil {
		return nil, ErrSchema
	}
	m := make(map[string]any, len(members))
	for k, v := range members {
		m[k] = v
	}
	return m, nil
}
