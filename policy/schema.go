package policy

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	cschema "github.com/cedar-policy/cedar-go/x/exp/schema"
	sast "github.com/cedar-policy/cedar-go/x/exp/schema/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// Schema is a Cedar schema of the SDK's model: the entity types and
// governance actions of every deployment, and one action per tool whose
// context.args is typed from the tool's input JSON Schema. Policies are
// validated against it, and a call's arguments are converted to the types
// it declares. A Schema is immutable and safe for concurrent use.
type Schema struct {
	ast       *sast.Schema
	resolved  *resolved.Schema
	conv      map[string]*argConv // action name -> conversion of context.args
	warnings  []string
	generated bool
}

// Common type names of the generated schema.
const (
	typeTask       = "Task"
	typeDelegation = "Delegation"
	typeApproval   = "Approval"
	typeRequest    = "Request"
)

func doc(s string) sast.Annotations { return sast.Annotations{"doc": types.String(s)} }

func attrs(kv ...any) sast.RecordType {
	r := sast.RecordType{}
	for i := 0; i < len(kv); i += 2 {
		r[types.String(kv[i].(string))] = sast.Attribute{Type: kv[i+1].(sast.IsType)}
	}
	return r
}

// baseAST is the schema without tools.
func baseAST() *sast.Schema {
	agent := sast.EntityType(TypeAgent)
	strs := sast.Set(sast.String())
	return &sast.Schema{
		CommonTypes: sast.CommonTypes{
			typeTask: {
				Annotations: doc("the task the call belongs to"),
				Type: attrs("id", sast.String(), "purpose", sast.String(), "sensitivity", sast.Long(),
					"labels", strs, "calls", sast.Long(), "tool_calls", sast.Long(), "calls_last_minute", sast.Long(),
					"tools_used", strs, "taint", strs),
			},
			typeDelegation: {
				Annotations: doc("the agents the task was delegated through"),
				Type:        attrs("depth", sast.Long(), "chain", sast.Set(agent), "on_behalf_of", sast.String()),
			},
			typeApproval: {
				Annotations: doc("what a human approver said"),
				Type:        attrs("granted", sast.Bool(), "approvers", strs),
			},
			typeRequest: {
				Annotations: doc("the call itself"),
				Type:        attrs("time", sast.Datetime(), "call_id", sast.String()),
			},
		},
		Entities: sast.Entities{
			sast.Ident(TypeTrustDomain): {Annotations: doc("a SPIFFE trust domain")},
			sast.Ident(TypeAgentGroup):  {Annotations: doc("a group of agents, from configuration")},
			sast.Ident(TypeAgent): {
				Annotations: doc("an agent, by SPIFFE ID"),
				ParentTypes: []sast.EntityTypeRef{sast.EntityType(TypeAgentGroup), sast.EntityType(TypeTrustDomain)},
				Shape:       attrs("trust_domain", sast.String(), "path", sast.String(), "name", sast.String()),
			},
			sast.Ident(TypeToolset): {Annotations: doc("a tool registry or server")},
			sast.Ident(TypeTool): {
				Annotations: doc("a tool, by name"),
				ParentTypes: []sast.EntityTypeRef{sast.EntityType(TypeToolset)},
				Shape: attrs("name", sast.String(), "toolset", sast.String(),
					"read_only", sast.Bool(), "destructive", sast.Bool(), "idempotent", sast.Bool(), "open_world", sast.Bool(),
					"risk", sast.Long(), "labels", strs),
			},
		},
		Actions: sast.Actions{
			ActionCallTool: {Annotations: doc("the group of every tool action")},
			ActionChangeToolset: {
				Annotations: doc("add or change a tool (the resource) an agent has; args.change is \"added\" or \"changed\""),
				AppliesTo: appliesTo(TypeTool, attrs("change", sast.String(), "toolset", sast.String(),
					"fingerprint", sast.String(), "previous", sast.String())),
			},
			ActionChangePrompt: {
				Annotations: doc("change an agent's prompt (the resource is the agent itself); args.change is \"added\" or \"changed\""),
				AppliesTo: appliesTo(TypeAgent, attrs("change", sast.String(), "name", sast.String(),
					"fingerprint", sast.String(), "previous", sast.String())),
			},
			ActionDelegate: {
				Annotations: doc("hand a task to another agent (the resource)"),
				AppliesTo:   appliesTo(TypeAgent, sast.RecordType{}),
			},
		},
	}
}

// appliesTo is an action of Agent on resource, with the context of every
// action and args of the given type.
func appliesTo(resource cedar.EntityType, args sast.RecordType) *sast.AppliesTo {
	return &sast.AppliesTo{
		Principals: []sast.EntityTypeRef{sast.EntityType(TypeAgent)},
		Resources:  []sast.EntityTypeRef{sast.EntityType(resource)},
		Context: sast.RecordType{
			"args":       {Type: args},
			"task":       {Type: sast.Type(typeTask)},
			"delegation": {Type: sast.Type(typeDelegation)},
			"approval":   {Type: sast.Type(typeApproval)},
			"request":    {Type: sast.Type(typeRequest)},
		},
	}
}

// NewSchema returns the schema of the SDK's model for tools: one action per
// tool, in Action::"call_tool", whose context.args is typed from the tool's
// input schema ({} if it has none). A tool without a name, with a reserved
// name (see Reserved) or a repeated one, or whose input schema is not JSON
// or not an object schema, is an error. Parts of an input schema that have
// no Cedar type are left out and named by Warnings.
func NewSchema(tools ...Tool) (*Schema, error) {
	a := baseAST()
	var warnings []string
	sorted := slices.Clone(tools)
	slices.SortStableFunc(sorted, func(x, y Tool) int { return strings.Compare(x.Name, y.Name) })
	for i, t := range sorted {
		switch {
		case t.Name == "":
			return nil, errors.New("policy: schema: a tool has no name")
		case Reserved(t.Name):
			return nil, fmt.Errorf("policy: schema: tool name %q is reserved", t.Name)
		case i > 0 && sorted[i-1].Name == t.Name:
			return nil, fmt.Errorf("policy: schema: tool %q is listed twice", t.Name)
		}
		args, w, err := argsType(t.Name, t.InputSchema)
		if err != nil {
			return nil, err
		}
		warnings = append(warnings, w...)
		act := sast.Action{
			Parents:   []sast.ParentRef{sast.ParentRefFromID(ActionCallTool)},
			AppliesTo: appliesTo(TypeTool, args),
		}
		if d := firstLine(t.Description); d != "" {
			act.Annotations = doc(d)
		}
		a.Actions[types.String(t.Name)] = act
	}
	s, err := newSchema(a)
	if err != nil {
		return nil, err
	}
	s.warnings = warnings
	s.generated = true
	return s, nil
}

// firstLine is the first non-empty line of a description, which is what
// the schema keeps of it.
func firstLine(s string) string {
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

func newSchema(a *sast.Schema) (*Schema, error) {
	res, err := resolved.Resolve(a)
	if err != nil {
		return nil, fmt.Errorf("policy: schema: %w", err)
	}
	s := &Schema{ast: a, resolved: res, conv: map[string]*argConv{}}
	for uid, act := range res.Actions {
		if uid.Type != TypeAction || act.AppliesTo == nil {
			continue
		}
		if args, ok := act.AppliesTo.Context["args"]; ok {
			s.conv[string(uid.ID)] = newArgConv(args.Type)
		}
	}
	return s, nil
}

var baseSchema = sync.OnceValue(func() *Schema {
	s, err := NewSchema()
	if err != nil {
		panic(err)
	}
	return s
})

// BaseSchema is the schema of the SDK's model with no tools: the entity
// types, Action::"call_tool" and the governance actions.
func BaseSchema() *Schema { return baseSchema() }

// ParseSchema parses a Cedar schema in the human-readable format, such as
// one that MarshalCedar wrote and a person then edited. name is the file
// name that errors refer to. A call's arguments are converted to the types
// the schema gives its action's context.args. Where the schema departs from
// the SDK's model (entity attributes, or the types of context.task,
// delegation, approval and request), policies it accepts may fail at run
// time; Warnings names each such difference.
func ParseSchema(name string, text []byte) (*Schema, error) {
	var cs cschema.Schema
	cs.SetFilename(name)
	if err := cs.UnmarshalCedar(text); err != nil {
		return nil, fmt.Errorf("policy: schema: %w", err)
	}
	s, err := newSchema(cs.AST())
	if err != nil {
		return nil, fmt.Errorf("policy: schema %s: %w", name, errors.Unwrap(err))
	}
	s.warnings = conformance(s.resolved, BaseSchema().resolved)
	return s, nil
}

// conformance names where got departs from the SDK's model in base: what
// the engine builds at run time would not have the declared type.
func conformance(got, base *resolved.Schema) []string {
	var w []string
	for _, et := range slices.Sorted(maps.Keys(base.Entities)) {
		be := base.Entities[et]
		ge, ok := got.Entities[et]
		switch {
		case !ok:
			w = append(w, fmt.Sprintf("entity type %s is not declared", et))
		case !sameResolved(shapeOrEmpty(ge.Shape), shapeOrEmpty(be.Shape)):
			w = append(w, fmt.Sprintf("entity type %s: attributes differ from the SDK's %s", et, resolvedString(shapeOrEmpty(be.Shape))))
		case !sameSet(ge.ParentTypes, be.ParentTypes):
			w = append(w, fmt.Sprintf("entity type %s: parent types differ from the SDK's %v", et, be.ParentTypes))
		}
	}
	for _, ga := range slices.SortedFunc(maps.Keys(base.Actions), compareUID) {
		if _, ok := got.Actions[ga]; !ok {
			w = append(w, fmt.Sprintf("action %s is not declared", ga))
		}
	}
	want := base.Actions[cedar.NewEntityUID(TypeAction, ActionDelegate)].AppliesTo.Context
	for _, uid := range slices.SortedFunc(maps.Keys(got.Actions), compareUID) {
		act := got.Actions[uid]
		if act.AppliesTo == nil {
			continue
		}
		if uid.Type != TypeAction {
			w = append(w, fmt.Sprintf("action %s: the engine only asks about actions of type Action", uid))
			continue
		}
		if slices.Contains(act.AppliesTo.Resources, TypeTool) && !act.Entity.Parents.Contains(callToolUID) && !Reserved(string(uid.ID)) {
			w = append(w, fmt.Sprintf("action %s: not in %s, as the engine makes every tool action", uid, callToolUID))
		}
		ctx := act.AppliesTo.Context
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if k == "args" {
				continue
			}
			if a, ok := ctx[k]; !ok || a.Optional || !sameResolved(a.Type, want[k].Type) {
				w = append(w, fmt.Sprintf("action %s: context.%s is not %s", uid, k, resolvedString(want[k].Type)))
			}
		}
		if a, ok := ctx["args"]; !ok || a.Optional {
			w = append(w, fmt.Sprintf("action %s: context.args is not a required record", uid))
		} else if _, ok := a.Type.(resolved.RecordType); !ok {
			w = append(w, fmt.Sprintf("action %s: context.args is not a record", uid))
		}
	}
	return w
}

func compareUID(a, b cedar.EntityUID) int {
	return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.ID, b.ID))
}

func shapeOrEmpty(r resolved.RecordType) resolved.RecordType {
	if r == nil {
		return resolved.RecordType{}
	}
	return r
}

func sameSet[T cmp.Ordered](a, b []T) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

func sameResolved(a, b resolved.IsType) bool {
	switch a := a.(type) {
	case resolved.SetType:
		b, ok := b.(resolved.SetType)
		return ok && sameResolved(a.Element, b.Element)
	case resolved.RecordType:
		b, ok := b.(resolved.RecordType)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, av := range a {
			bv, ok := b[k]
			if !ok || av.Optional != bv.Optional || !sameResolved(av.Type, bv.Type) {
				return false
			}
		}
		return true
	}
	return a == b
}

func resolvedString(t resolved.IsType) string {
	switch t := t.(type) {
	case resolved.StringType:
		return "String"
	case resolved.LongType:
		return "Long"
	case resolved.BoolType:
		return "Bool"
	case resolved.ExtensionType:
		return string(t)
	case resolved.EntityType:
		return string(t)
	case resolved.SetType:
		return "Set<" + resolvedString(t.Element) + ">"
	case resolved.RecordType:
		var b strings.Builder
		b.WriteString("{")
		for i, k := range slices.Sorted(maps.Keys(t)) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(cedarName(string(k)))
			if t[k].Optional {
				b.WriteString("?")
			}
			b.WriteString(": " + resolvedString(t[k].Type))
		}
		b.WriteString("}")
		return b.String()
	}
	return fmt.Sprintf("%T", t)
}

// Warnings names what the schema could not type: for NewSchema, each part
// of a tool's input schema left out of context.args (policies cannot read
// it) and each additionalProperties or patternProperties not typed; for
// ParseSchema, each departure from the SDK's model.
func (s *Schema) Warnings() []string { return slices.Clone(s.warnings) }

// MarshalCedar returns the schema in Cedar's human-readable format, in a
// fixed order (declarations and attributes sorted by name) so that it can be
// reviewed and diffed. A generated schema starts with a comment listing its
// warnings. Comments of a parsed schema are not kept.
func (s *Schema) MarshalCedar() []byte {
	body, _ := cschema.NewSchemaFromAST(s.ast).MarshalCedar()
	if !s.generated {
		return body
	}
	var b bytes.Buffer
	b.WriteString("// Cedar schema of the AgentGuard policy model, generated by\n")
	b.WriteString("// github.com/agentguard/go-sdk/policy.NewSchema.\n")
	if len(s.warnings) > 0 {
		b.WriteString("//\n// Not typed, so policies cannot read them:\n")
		for _, w := range s.warnings {
			b.WriteString("//   " + strings.ReplaceAll(w, "\n", " ") + "\n")
		}
	}
	b.WriteString("\n")
	b.Write(body)
	return b.Bytes()
}

// WriteFile writes MarshalCedar's text to path.
func (s *Schema) WriteFile(path string) error {
	if err := os.WriteFile(path, s.MarshalCedar(), 0o644); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	return nil
}

// WithSchema makes the engine validate its policies against s when it is
// built and on every reload, and convert each call's arguments to the types
// s gives them.
func WithSchema(s *Schema) CedarOption { return func(e *CedarEngine) { e.schema = s } }

// args converts a call's parsed JSON arguments (an object) for action into
// a Cedar record of the types the schema gives them. For an action the
// schema does not know, the arguments are converted as without a schema.
func (s *Schema) args(action string, v any) (cedar.Value, error) {
	c, ok := s.conv[action]
	if !ok {
		return jsonToCedar(v)
	}
	return c.convert(v)
}

// Problem is one reason a policy does not validate.
type Problem struct {
	PolicyID string
	Position cedar.Position
	Message  string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: policy %q: %s", posString(p.Position), p.PolicyID, p.Message)
}

// ValidationError lists the problems validation found, sorted by file,
// position and message.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "policy: " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "policy: %d validation problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// Validate checks every policy of the set against schema in Cedar's strict
// mode: unknown entity types, actions and attributes, attributes read
// without `has` where they are optional, and operations on the wrong types
// are errors. The error is a *ValidationError naming each problem's policy
// and position.
func (s *Set) Validate(schema *Schema) error {
	if schema == nil || schema.resolved == nil {
		return errors.New("policy: no schema (use NewSchema, BaseSchema or ParseSchema)")
	}
	v := validate.New(schema.resolved, validate.WithStrict())
	var probs []Problem
	for _, id := range s.ids {
		p := s.ps.Get(cedar.PolicyID(id))
		for _, msg := range validatePolicy(v, p) {
			probs = append(probs, Problem{PolicyID: id, Position: p.Position(), Message: msg})
		}
	}
	if len(probs) == 0 {
		return nil
	}
	slices.SortStableFunc(probs, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(a.Position.Filename, b.Position.Filename),
			cmp.Compare(a.Position.Line, b.Position.Line),
			cmp.Compare(a.Position.Column, b.Position.Column),
			cmp.Compare(a.PolicyID, b.PolicyID),
			cmp.Compare(a.Message, b.Message),
		)
	})
	return &ValidationError{Problems: probs}
}

// validatePolicy returns the validator's messages for p, each once.
func validatePolicy(v *validate.Validator, p *cedar.Policy) (msgs []string) {
	defer func() {
		// The validator is experimental: a panic in it is a failed
		// validation, not a crashed program.
		if r := recover(); r != nil {
			msgs = []string{fmt.Sprintf("the validator failed: %v", r)}
		}
	}()
	// An empty ID keeps the validator from prefixing "for policy `id`, ":
	// the Problem names the policy.
	err := v.Policy("", (*xast.Policy)(p.AST()))
	for _, e := range flatten(err) {
		if m := e.Error(); !slices.Contains(msgs, m) {
			msgs = append(msgs, m)
		}
	}
	return msgs
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
