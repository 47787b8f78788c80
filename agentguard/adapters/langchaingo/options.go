package langchainguard

import (
	"encoding/json"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/credentials"
)

// TextInputSchema is the input schema of a tool whose input is free text,
// as most langchaingo tools' is: the text becomes the call's arguments
// {"input": "<text>"}, which policy reads as context.args.input.
const TextInputSchema = `{"type":"object","properties":{"input":{"type":"string"}},"required":["input"]}`

// Spec tells the guard what a langchaingo tool cannot say of itself
// (tools.Tool has only a name, a description and Call). The name and
// description always come from the tool.
type Spec struct {
	// InputSchema, when set, says that the tool's input is a JSON object
	// described by this JSON Schema: the input is passed to the guard as
	// the call's arguments as it is (policy reads context.args.<field>),
	// and the tool receives their canonical JSON. Input that is not a JSON
	// object is denied (agentguard.ErrInvalidArguments). When empty, the
	// input is free text and the schema is TextInputSchema.
	InputSchema json.RawMessage
	// Title is a name for people.
	Title string
	// Annotations, Risk and Labels describe the tool to policy (resource
	// attributes read_only, destructive, idempotent, open_world, risk,
	// labels).
	Annotations agentguard.Annotations
	Risk        agentguard.Risk
	Labels      []string
	// OutputLabels are taint labels every result of the tool carries.
	OutputLabels []string
	// Credentials are the credentials the tool gets for each call; it
	// finds them with credentials.FromContext.
	Credentials []credentials.Requirement
	// Audit says what the audit records hold of the arguments.
	Audit agentguard.ArgsAudit
}

// Option configures New.
type Option func(*config)

type config struct {
	specs          map[string]Spec
	errorsObserved bool
}

// WithSpec describes the tool of that name (its Name()) to the guard.
// A tool without a Spec is a free-text tool of low risk with no
// annotations, labels or credentials. New fails with ErrUnknownSpec when
// no tool has that name.
func WithSpec(name string, s Spec) Option {
	return func(c *config) { c.specs[name] = s }
}

// WithToolErrorsAsObservations makes a tool's own error an observation for
// the model, agentguard.Explain's text ("The tool "x" failed: ...", with
// the call's credential values removed), so that the run goes on. Without
// it a tool's error is returned to langchaingo's executor as it would be
// unguarded, which ends the run with that error (wrapped, its message
// scrubbed of credential values). Denials are observations either way.
func WithToolErrorsAsObservations() Option {
	return func(c *config) { c.errorsObserved = true }
}
