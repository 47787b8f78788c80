package genkitguard

import (
	"encoding/json"
	"slices"

	"github.com/firebase/genkit/go/ai"

	"github.com/agentguard/go-sdk/agentguard"
)

// unusableSchema stands in for a schema that could not be encoded: the
// guard refuses a tool whose schema is not a JSON object (ErrInvalidTool),
// and audits the refusal, so such a tool never runs.
var unusableSchema = json.RawMessage("null")

// describe returns the guard's description of genkit tool t: its
// definition as the model reads it (name, description, input and output
// schemas), with what Describe added for its name.
func (m *Middleware) describe(t ai.Tool) *agentguard.Tool {
	d := &agentguard.Tool{Name: t.Name(), Toolset: m.toolset}
	if decl, ok := m.tools[d.Name]; ok {
		if decl.Toolset != "" {
			d.Toolset = decl.Toolset
		}
		d.Title = decl.Title
		d.Annotations = decl.Annotations
		d.Risk = decl.Risk
		d.Labels = slices.Clone(decl.Labels)
		d.OutputLabels = slices.Clone(decl.OutputLabels)
		d.Credentials = slices.Clone(decl.Credentials)
		d.Audit = agentguard.ArgsAudit{Record: decl.Audit.Record, Redact: slices.Clone(decl.Audit.Redact)}
	}
	def := t.Definition()
	if def == nil {
		d.InputSchema = unusableSchema
		return d
	}
	d.Description = def.Description
	d.InputSchema = schema(def.InputSchema)
	d.OutputSchema = schema(def.OutputSchema)
	return d
}

// schema encodes a JSON Schema held as a map: nil for none.
func schema(s map[string]any) json.RawMessage {
	if len(s) == 0 {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return unusableSchema
	}
	return b
}
