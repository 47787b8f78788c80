package mcpguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/policy"
)

// ErrInvalidTool matches the error of an MCP tool definition the guard
// cannot take: a bad or reserved name, text that is not UTF-8, a schema
// that is not one JSON object, or a name listed twice. Such a tool is left
// out of the toolset, so it can be neither listed nor called.
var ErrInvalidTool = errors.New("mcpguard: invalid tool definition")

// Tool returns what the guard knows of the MCP tool t in toolset: its
// name, title (t.Title, else t.Annotations.Title), description, input and
// output schemas and annotations, which make its fingerprint (what a model
// reads, and so what is pinned), with MCP's defaults for absent hints:
// destructive (unless read-only) and open-world when not said otherwise.
// It has no Handler.
// An operator pins a server's tools ahead of time with Lock.PinTool on
// these (see PinTools).
func Tool(t *mcp.Tool, toolset string) (*agentguard.Tool, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: nil tool", ErrInvalidTool)
	}
	if err := checkName(t.Name); err != nil {
		return nil, err
	}
	at := &agentguard.Tool{
		Name:        t.Name,
		Title:       t.Title,
		Description: t.Description,
		Toolset:     toolset,
		Annotations: agentguard.Annotations{Destructive: true, OpenWorld: true},
	}
	if a := t.Annotations; a != nil {
		if at.Title == "" {
			at.Title = a.Title
		}
		at.Annotations.ReadOnly = a.ReadOnlyHint
		at.Annotations.Idempotent = a.IdempotentHint
		switch {
		case a.DestructiveHint != nil:
			at.Annotations.Destructive = *a.DestructiveHint
		case a.ReadOnlyHint:
			// MCP: the destructive hint means something only for a tool
			// that is not read-only.
			at.Annotations.Destructive = false
		}
		if a.OpenWorldHint != nil {
			at.Annotations.OpenWorld = *a.OpenWorldHint
		}
	}
	if !utf8.ValidString(at.Title) || !utf8.ValidString(at.Description) {
		return nil, fmt.Errorf("%w: tool %q: text is not valid UTF-8", ErrInvalidTool, t.Name)
	}
	var err error
	if at.InputSchema, err = schema(t.InputSchema); err != nil {
		return nil, fmt.Errorf("%w: tool %q: input schema %w", ErrInvalidTool, t.Name, err)
	}
	if at.OutputSchema, err = schema(t.OutputSchema); err != nil {
		return nil, fmt.Errorf("%w: tool %q: output schema %w", ErrInvalidTool, t.Name, err)
	}
	return at, nil
}

// checkName applies the guard's rule for tool names: 1 to 128 of
// A-Z a-z 0-9 _ . - and not a governance action.
func checkName(name string) error {
	if len(name) == 0 || len(name) > 128 {
		return fmt.Errorf("%w: tool name of %d bytes", ErrInvalidTool, len(name))
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return fmt.Errorf("%w: tool name %q: want A-Z a-z 0-9 _ . -", ErrInvalidTool, name)
		}
	}
	if policy.Reserved(name) {
		return fmt.Errorf("%w: tool name %q is reserved for a governance action", ErrInvalidTool, name)
	}
	return nil
}

// schema returns the JSON of an MCP schema field (a map from the wire,
// json.RawMessage or any value that marshals to JSON): nil for none, an
// error unless it is one JSON object.
func schema(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	var b []byte
	if raw, ok := v.(json.RawMessage); ok {
		b = raw
	} else {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("does not marshal: %w", err)
		}
	}
	if string(b) == "null" {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return nil, errors.New("is not a JSON object")
	}
	return b, nil
}

// mcpTool is the MCP form of t for a model's tool list: exactly the fields
// its fingerprint covers, so that a model reads nothing that was not
// pinned.
func mcpTool(t *agentguard.Tool) *mcp.Tool {
	destructive, openWorld := t.Annotations.Destructive, t.Annotations.OpenWorld
	out := &mcp.Tool{
		Name:        t.Name,
		Title:       t.Title,
		Description: t.Description,
		Annotations: &mcp.ToolAnnotations{
			ReadOnlyHint:    t.Annotations.ReadOnly,
			DestructiveHint: &destructive,
			IdempotentHint:  t.Annotations.Idempotent,
			OpenWorldHint:   &openWorld,
		},
	}
	// As the SDK's client gives schemas: the default JSON decoding.
	out.InputSchema = decodeSchema(t.InputSchema)
	if len(t.OutputSchema) > 0 {
		out.OutputSchema = decodeSchema(t.OutputSchema)
	}
	return out
}

func decodeSchema(b json.RawMessage) map[string]any {
	m := map[string]any{}
	if len(b) > 0 {
		// Tool accepted only JSON objects.
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// convert maps a tools/list onto guard tools, leaving out (and reporting,
// joined) those the guard cannot take and every copy of a name listed
// twice, since it is unclear which one the server would run. configure,
// if set, sees each tool; it may set anything but its name and toolset.
func convert(list []*mcp.Tool, toolset string, configure func(*agentguard.Tool)) ([]*agentguard.Tool, error) {
	count := make(map[string]int, len(list))
	for _, t := range list {
		if t != nil {
			count[t.Name]++
		}
	}
	var errs []error
	reported := map[string]bool{}
	out := make([]*agentguard.Tool, 0, len(list))
	for _, t := range list {
		if t != nil && count[t.Name] > 1 {
			if !reported[t.Name] {
				reported[t.Name] = true
				errs = append(errs, fmt.Errorf("%w: tool %q listed %d times", ErrInvalidTool, t.Name, count[t.Name]))
			}
			continue
		}
		at, err := Tool(t, toolset)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if configure != nil {
			configure(at)
			at.Name, at.Toolset = t.Name, toolset
		}
		out = append(out, at)
	}
	return out, errors.Join(errs...)
}
