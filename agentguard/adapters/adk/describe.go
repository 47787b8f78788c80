package adkguard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/adk/tool"
	"google.golang.org/genai"

	"github.com/agentguard/go-sdk/agentguard"
)

// LabelLongRunning is the label (policy's resource.labels) of a tool that
// ADK runs as a long-running operation (tool.Tool.IsLongRunning).
const LabelLongRunning = "adk:long_running"

// declarer is a tool that declares its function to the model, as every
// tool ADK runs does.
type declarer interface {
	Declaration() *genai.FunctionDeclaration
}

// describe returns the guard's description of t: what the model reads of
// it (its declaration's name, description, parameters and response
// schema), whether it is long-running, and the application's Spec.
func (g *Guard) describe(t tool.Tool) (*agentguard.Tool, error) {
	toolset := ""
	if w, ok := t.(*guardedTool); ok {
		toolset = w.toolset
		t = w.inner
	}
	name := t.Name()
	at := &agentguard.Tool{Name: name, Description: t.Description()}
	if d, ok := t.(declarer); ok {
		if decl := d.Declaration(); decl != nil {
			at.Description = decl.Description
			var err error
			switch {
			case decl.ParametersJsonSchema != nil:
				at.InputSchema, err = schemaJSON(decl.ParametersJsonSchema, false)
			case decl.Parameters != nil:
				at.InputSchema, err = schemaJSON(decl.Parameters, true)
			}
			if err != nil {
				return nil, fmt.Errorf("%w: tool %q: parameters: %w", ErrNotDescribable, name, err)
			}
			switch {
			case decl.ResponseJsonSchema != nil:
				at.OutputSchema, err = schemaJSON(decl.ResponseJsonSchema, false)
			case decl.Response != nil:
				at.OutputSchema, err = schemaJSON(decl.Response, true)
			}
			if err != nil {
				return nil, fmt.Errorf("%w: tool %q: response: %w", ErrNotDescribable, name, err)
			}
		}
	}
	spec := g.cfg.specs[name]
	at.Toolset = spec.Toolset
	if at.Toolset == "" {
		at.Toolset = toolset
	}
	if at.Toolset == "" {
		at.Toolset = g.cfg.toolset
	}
	at.Annotations = spec.Annotations
	at.Risk = spec.Risk
	at.Labels = slices.Clone(spec.Labels)
	if t.IsLongRunning() && !slices.Contains(at.Labels, LabelLongRunning) {
		at.Labels = append(at.Labels, LabelLongRunning)
	}
	at.OutputLabels = slices.Clone(spec.OutputLabels)
	at.Credentials = slices.Clone(spec.Credentials)
	at.Audit = spec.Audit
	return at, nil
}

// schemaJSON returns schema as one canonical JSON object. A genai.Schema
// (typed, OpenAPI style) names its types in upper case ("OBJECT"); as
// JSON Schema they are lower case.
func schemaJSON(schema any, typed bool) (json.RawMessage, error) {
	raw, err := json.Marshal(schema)
	if err != nil {
		return nil, err
	}
	if !typed {
		return agentguard.CanonicalArgs(raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("not a JSON object")
	}
	lowerTypes(v)
	if raw, err = json.Marshal(v); err != nil {
		return nil, err
	}
	return agentguard.CanonicalArgs(raw)
}

// lowerTypes puts the "type" members of a genai.Schema's JSON in lower case.
func lowerTypes(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "type" {
				v[k] = strings.ToLower(s)
				continue
			}
			lowerTypes(e)
		}
	case []any:
		for _, e := range v {
			lowerTypes(e)
		}
	}
}

// callArgs returns the arguments ADK gives the tool as JSON: nil for none.
func callArgs(args map[string]any) (json.RawMessage, error) {
	if len(args) == 0 {
		return nil, nil
	}
	return json.Marshal(args)
}

// Describe returns the guard's description of t, as policy sees it: for
// agentguard.PolicySchema, to type context.args of a Cedar schema from the
// agent's ADK tools.
func (g *Guard) Describe(t tool.Tool) (*agentguard.Tool, error) {
	return g.describe(t)
}
