package mcpgoguard

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/agentguard/go-sdk/agentguard"
)

// ToolConfig adds to the guard's description of a tool what MCP does not
// say: its Risk, Labels, OutputLabels, Credentials and Audit. It may not
// change what the tool's definition says (name, title, description,
// schemas, annotations, toolset): those are set again from the MCP tool
// after it runs, so that the pinned fingerprint is always the
// definition's.
type ToolConfig func(t *agentguard.Tool)

// Describe returns the guard's description of an MCP tool, as a tool of
// toolset: its name, title (the tool's, else its annotations' title),
// description, input and output schemas as mcp-go encodes them (what a
// model is shown), and its annotations with MCP's defaults for hints the
// tool leaves out (read-only false, destructive true, idempotent false,
// open-world true). As MCP says the destructive hint means something only
// for a tool that is not read-only, a read-only tool is never destructive.
// The result has no Handler. A tool mcp-go cannot encode is an error
// wrapping ErrDefinition.
func Describe(toolset string, t mcp.Tool) (*agentguard.Tool, error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("%w: tool %q: %w", ErrDefinition, t.Name, err)
	}
	var wire struct {
		InputSchema  json.RawMessage `json:"inputSchema"`
		OutputSchema json.RawMessage `json:"outputSchema"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		return nil, fmt.Errorf("%w: tool %q: %w", ErrDefinition, t.Name, err)
	}
	title := t.Title
	if title == "" {
		title = t.Annotations.Title
	}
	readOnly := hint(t.Annotations.ReadOnlyHint, false)
	return &agentguard.Tool{
		Name:         t.Name,
		Title:        title,
		Description:  t.Description,
		InputSchema:  nullToEmpty(wire.InputSchema),
		OutputSchema: nullToEmpty(wire.OutputSchema),
		Annotations: agentguard.Annotations{
			ReadOnly:    readOnly,
			Destructive: !readOnly && hint(t.Annotations.DestructiveHint, true),
			Idempotent:  hint(t.Annotations.IdempotentHint, false),
			OpenWorld:   hint(t.Annotations.OpenWorldHint, true),
		},
		Toolset: toolset,
	}, nil
}

// describe is Describe followed by the application's configuration, which
// cannot change the definition.
func describe(toolset string, t mcp.Tool, config ToolConfig) (*agentguard.Tool, error) {
	at, err := Describe(toolset, t)
	if err != nil {
		return nil, err
	}
	if config == nil {
		return at, nil
	}
	def := *at
	config(at)
	at.Name, at.Title, at.Description = def.Name, def.Title, def.Description
	at.InputSchema, at.OutputSchema = def.InputSchema, def.OutputSchema
	at.Annotations, at.Toolset, at.Handler = def.Annotations, def.Toolset, nil
	return at, nil
}

func hint(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

func nullToEmpty(m json.RawMessage) json.RawMessage {
	if string(m) == "null" {
		return nil
	}
	return m
}

// argsJSON returns the arguments of a tools/call request as JSON: the bytes
// the client sent when mcp-go kept them, else the encoding of Arguments.
// No arguments (absent, or null) are an empty object.
func argsJSON(req mcp.CallToolRequest) (json.RawMessage, error) {
	if raw := bytes.TrimSpace(req.Params.RawArguments); len(raw) > 0 {
		if string(raw) == "null" {
			return json.RawMessage("{}"), nil
		}
		return req.Params.RawArguments, nil
	}
	if req.Params.Arguments == nil {
		return json.RawMessage("{}"), nil
	}
	b, err := json.Marshal(req.Params.Arguments)
	if err != nil {
		return nil, fmt.Errorf("mcpgoguard: encode arguments: %w", err)
	}
	return b, nil
}

// withArgs returns req with args, the canonical arguments the guard
// checked, in place of the ones it came with, so that the tool acts on
// exactly what policy saw.
func withArgs(req mcp.CallToolRequest, args json.RawMessage) (mcp.CallToolRequest, error) {
	var m map[string]any
	if err := json.Unmarshal(args, &m); err != nil {
		return req, fmt.Errorf("mcpgoguard: decode arguments: %w", err)
	}
	req.Params.RawArguments = append(json.RawMessage(nil), args...)
	req.Params.Arguments = m
	return req, nil
}

// errorResult is the tool result a model is given for a call that the
// guard refused or that failed: isError, with Explain's text.
func errorResult(err error) *mcp.CallToolResult {
	return mcp.NewToolResultError(agentguard.Explain(err))
}

// resultText joins the text content of a result, for the error a tool
// reported with isError.
func resultText(r *mcp.CallToolResult) string {
	var s string
	for _, c := range r.Content {
		var text string
		switch tc := c.(type) {
		case mcp.TextContent:
			text = tc.Text
		case *mcp.TextContent:
			text = tc.Text
		default:
			continue
		}
		if s != "" {
			s += "\n"
		}
		s += text
	}
	if s == "" {
		s = "no message"
	}
	return s
}
