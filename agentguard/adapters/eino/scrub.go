package einoguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/cloudwego/eino/schema"

	"github.com/agentguard/go-sdk/credentials"
)

// errUncheckable: a tool's output could not be checked for the values of
// its credentials, so it is not passed on.
var errUncheckable = errors.New("einoguard: output cannot be checked for credential values")

// scrubOutput removes the values of creds from a tool's output: a string
// (an invokable tool's result, a chunk of a streaming tool's) or a
// *schema.ToolResult (an enhanced tool's), whose every field is checked
// through its JSON form.
func scrubOutput(out any, creds []*credentials.Credential) (any, error) {
	if len(creds) == 0 {
		return out, nil
	}
	switch v := out.(type) {
	case string:
		return credentials.Scrub(v, creds...), nil
	case *schema.ToolResult:
		return scrubToolResult(v, creds)
	}
	return out, nil
}

// scrubToolResult is scrubOutput for an enhanced tool's result. A result
// holding no credential value is returned as it is.
func scrubToolResult(r *schema.ToolResult, creds []*credentials.Credential) (*schema.ToolResult, error) {
	if r == nil || len(creds) == 0 {
		return r, nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUncheckable, err)
	}
	clean := credentials.Scrub(string(b), creds...)
	if clean == string(b) {
		return r, nil
	}
	var out schema.ToolResult
	if err := json.Unmarshal([]byte(clean), &out); err != nil {
		return nil, fmt.Errorf("%w: %w", errUncheckable, err)
	}
	return &out, nil
}

// scrubChunk is scrubOutput for a chunk of type T.
func scrubChunk[T any](chunk T, creds []*credentials.Credential) (T, error) {
	out, err := scrubOutput(chunk, creds)
	if err != nil {
		var zero T
		return zero, err
	}
	return out.(T), nil
}

// joinChunks returns a stream's chunks as one: strings joined, tool results
// concatenated as eino does, with adjacent text parts joined too (eino
// keeps those of different chunks apart, but the model reads them one
// after the other, so a value split across them must be found).
func joinChunks[T any](chunks []T) (T, error) {
	var zero T
	switch cs := any(chunks).(type) {
	case []string:
		return any(strings.Join(cs, "")).(T), nil
	case []*schema.ToolResult:
		r, err := schema.ConcatToolResults(cs)
		if err != nil {
			return zero, err
		}
		return any(joinText(r)).(T), nil
	}
	return zero, fmt.Errorf("einoguard: chunks of type %T", zero)
}

// joinText returns r with each run of adjacent text parts made one.
func joinText(r *schema.ToolResult) *schema.ToolResult {
	out := &schema.ToolResult{}
	for _, p := range r.Parts {
		n := len(out.Parts)
		if p.Type != schema.ToolPartTypeText || n == 0 || out.Parts[n-1].Type != schema.ToolPartTypeText {
			out.Parts = append(out.Parts, p)
			continue
		}
		last := &out.Parts[n-1]
		last.Text += p.Text
		if len(p.Extra) > 0 {
			last.Extra = maps.Clone(last.Extra)
			if last.Extra == nil {
				last.Extra = map[string]any{}
			}
			maps.Copy(last.Extra, p.Extra)
		}
	}
	return out
}
