package langchainguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tmc/langchaingo/tools"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/credentials"
)

// guardedTool is a langchaingo tool whose every call runs through the
// guard. Name and Description are the ones registered, so the model reads
// the definition the guard pinned.
type guardedTool struct {
	set         *Toolset
	inner       tools.Tool
	name        string
	description string
	// json: the input is a JSON object (Spec.InputSchema), not free text.
	json bool
}

var _ tools.Tool = (*guardedTool)(nil)

// Name returns the tool's name.
func (t *guardedTool) Name() string { return t.name }

// Description returns the tool's description as registered.
func (t *guardedTool) Description() string { return t.description }

// Call runs the tool through the guard. A denial is returned as the
// observation, with a nil error, so the agent's run goes on; so is a
// tool's failure with WithToolErrorsAsObservations.
func (t *guardedTool) Call(ctx context.Context, input string) (string, error) {
	args, err := argsOf(t.json, input)
	if err != nil {
		return "", fmt.Errorf("langchainguard: tool %q: arguments: %w", t.name, err)
	}
	res, err := t.set.registry.Call(ctx, agentguard.Call{ID: t.set.ids.take(ctx, t.name, input), Name: t.name, Args: args})
	return t.set.observation(t.name, res, err)
}

// observation turns the guard's answer into what langchaingo's executor
// expects of a tool.
func (s *Toolset) observation(name string, res *agentguard.Result, err error) (string, error) {
	var toolErr *agentguard.ToolError
	switch {
	case err == nil:
		if res == nil {
			return "", nil
		}
		out, ok := res.Output.(string)
		if !ok {
			// Only the handler below makes results, always strings.
			return "", fmt.Errorf("langchainguard: tool %q: result of type %T", name, res.Output)
		}
		return out, nil
	case errors.Is(err, agentguard.ErrDenied):
		return agentguard.Explain(err), nil
	case errors.As(err, &toolErr) && s.observe:
		return agentguard.Explain(err), nil
	}
	return "", fmt.Errorf("langchainguard: %w", err)
}

// definition describes t to the guard.
func (t *guardedTool) definition(toolset string, spec Spec) (*agentguard.Tool, error) {
	schema := json.RawMessage(TextInputSchema)
	if t.json {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(spec.InputSchema, &obj); err != nil {
			return nil, fmt.Errorf("%w: tool %q: input schema is not a JSON object: %w", ErrInvalidSpec, t.name, err)
		}
		schema = spec.InputSchema
	}
	return &agentguard.Tool{
		Name:         t.name,
		Title:        spec.Title,
		Description:  t.description,
		InputSchema:  schema,
		Annotations:  spec.Annotations,
		Risk:         spec.Risk,
		Labels:       spec.Labels,
		OutputLabels: spec.OutputLabels,
		Toolset:      toolset,
		Credentials:  spec.Credentials,
		Audit:        spec.Audit,
		Handler:      t.handle,
	}, nil
}

// handle runs the langchaingo tool once the guard has allowed the call:
// with the input the policy saw (the canonical arguments), and with the
// values of its credentials removed from its output, should it echo them.
func (t *guardedTool) handle(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
	input := string(args)
	if !t.json {
		var a textArgs
		if err := json.Unmarshal(args, &a); err != nil || a.Input == nil {
			return nil, fmt.Errorf("langchainguard: tool %q: arguments hold no input text", t.name)
		}
		input = *a.Input
	}
	out, err := t.inner.Call(ctx, input)
	if err != nil {
		return nil, err
	}
	return &agentguard.Result{Output: credentials.Scrub(out, credentials.AllFromContext(ctx)...)}, nil
}
