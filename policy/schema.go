package policy

import "github.com/cedar-policy/cedar-go"

// Schema is the Cedar schema of the SDK's model for a concrete set of tools.
// (Placeholder.)
type Schema struct{}

// WithSchema makes the engine validate its policies against s when it is
// built and on every reload, and convert each call's arguments to the types
// s gives them.
func WithSchema(s *Schema) CedarOption { return func(e *CedarEngine) { e.schema = s } }

// Validate checks every policy of the set against schema.
func (s *Set) Validate(schema *Schema) error { return nil }

// args converts a call's parsed JSON arguments (an object) for action into
// a Cedar record of the types the schema gives them.
func (s *Schema) args(action string, v any) (cedar.Value, error) { return jsonToCedar(v) }
