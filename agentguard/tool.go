package agentguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/internal/canonical"
	"github.com/agentguard/go-sdk/policy"
)

// Handler runs a tool with its arguments, a JSON object. A guarded handler
// receives the canonical form of the arguments the policy saw, and finds its
// credentials with credentials.FromContext.
type Handler func(ctx context.Context, args json.RawMessage) (*Result, error)

// Result is what a tool returns.
type Result struct {
	// Output is the tool's result, in whatever form the agent framework uses.
	Output any
	// Labels are taint labels this result adds to the task (for example
	// "pii" when it returned personal data), beside the tool's OutputLabels.
	Labels []string
}

// Annotations describe a tool's behaviour, as MCP tool annotations do.
type Annotations struct {
	ReadOnly    bool `json:"read_only"`
	Destructive bool `json:"destructive"`
	Idempotent  bool `json:"idempotent"`
	OpenWorld   bool `json:"open_world"`
}

// Risk grades how dangerous a tool is; policy sees it as resource.risk.
type Risk = policy.Risk

// Risk levels.
const (
	RiskLow      = policy.RiskLow
	RiskMedium   = policy.RiskMedium
	RiskHigh     = policy.RiskHigh
	RiskCritical = policy.RiskCritical
)

// Tool describes one tool an agent can call.
type Tool struct {
	// Name is unique in its registry; policy names it Action::"<Name>" and
	// Tool::"<Name>".
	Name string
	// Title is a name for people, such as an MCP tool's title; empty for
	// none.
	Title       string
	Description string
	// InputSchema is the JSON Schema of the arguments, if any.
	InputSchema json.RawMessage
	// OutputSchema is the JSON Schema of the tool's structured result, if
	// it declares one (as an MCP tool may).
	OutputSchema json.RawMessage
	Annotations  Annotations
	Risk         Risk
	// Labels describe the tool for policy (resource.labels).
	Labels []string
	// OutputLabels are taint labels every result of the tool carries.
	OutputLabels []string
	// Toolset is the registry or server the tool belongs to (Toolset::"<Toolset>").
	Toolset string
	// Credentials are the credentials the tool needs for each call.
	Credentials []credentials.Requirement
	// Audit says what the audit records of the tool's calls hold of their
	// arguments: by default only their digest. It is not part of the
	// tool's definition (Fingerprint).
	Audit ArgsAudit
	// Handler runs the tool. Tools guarded through Middleware need none.
	Handler Handler
}

// ArgsAudit says what the audit record of a call holds of its arguments.
// Whatever it says, arguments never go into spans.
//
// Recorded arguments are scrubbed of the secrets the guard knows: the
// values of the call's credentials, of the credentials the calls of its
// task used (the latest 32), and of the task's user token, in the forms
// credentials.Scrub looks for. A string holding one has it replaced by
// "[REDACTED]"; should one be anywhere else (an object key, a number), the
// whole arguments are recorded as "[REDACTED]". The guard knows no other
// secret: name every other value that must not be recorded (a card number,
// a password, a token the tool is given) in Redact.
type ArgsAudit struct {
	// Record puts the canonical arguments in each call's audit record
	// (audit.Event.Args), beside their digest, with the values Redact
	// names replaced. Without it a record holds only the digest.
	Record bool
	// Redact lists the values to replace with the string "[REDACTED]",
	// whatever their type, as JSON Pointers (RFC 6901) into the
	// arguments, such as "/card/number". A segment "*" matches any
	// object member or array element, as in "/items/*/card"; "~1" stands
	// for "/" and "~0" for "~" in a segment. A segment matches an
	// object's keys as encoding/json matches them to a struct's fields,
	// without regard to case (Unicode simple folding): "/card/number"
	// also redacts {"Card":{"NUMBER":…}}, which a tool decoding into a
	// struct reads as the same field. A pointer to nothing in a call's
	// arguments redacts nothing. The whole arguments cannot be redacted
	// (""): leave Record unset instead.
	Redact []string
}

// validName reports whether name is 1 to 128 of A-Z a-z 0-9 _ . -.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// validate checks what the guard relies on. needHandler is false for tools
// whose execution is supplied by a middleware's next function.
func (t *Tool) validate(needHandler bool) error {
	if t == nil {
		return errors.New("agentguard: nil tool")
	}
	if !validName(t.Name) {
		return fmt.Errorf("agentguard: tool name %q: want 1 to 128 of A-Z a-z 0-9 _ . -", t.Name)
	}
	if policy.Reserved(t.Name) {
		return fmt.Errorf("agentguard: tool name %q is reserved for a governance action", t.Name)
	}
	if needHandler && t.Handler == nil {
		return fmt.Errorf("agentguard: tool %q has no handler", t.Name)
	}
	// What the fingerprint covers must be one-to-one with it: text that
	// is UTF-8 (else it is read with U+FFFD in place of its bad bytes),
	// and a schema that is one JSON object in canonical JSON.
	if !utf8.ValidString(t.Description) {
		return fmt.Errorf("agentguard: tool %q: description is not valid UTF-8", t.Name)
	}
	if !utf8.ValidString(t.Title) {
		return fmt.Errorf("agentguard: tool %q: title is not valid UTF-8", t.Name)
	}
	if !utf8.ValidString(t.Toolset) {
		return fmt.Errorf("agentguard: tool %q: toolset %q is not valid UTF-8", t.Name, t.Toolset)
	}
	if len(t.InputSchema) > 0 {
		if err := checkSchema(t.InputSchema); err != nil {
			return fmt.Errorf("agentguard: tool %q: input schema %w", t.Name, err)
		}
	}
	if len(t.OutputSchema) > 0 {
		if err := checkSchema(t.OutputSchema); err != nil {
			return fmt.Errorf("agentguard: tool %q: output schema %w", t.Name, err)
		}
	}
	for _, ptr := range t.Audit.Redact {
		if _, err := redactPointer(ptr); err != nil {
			return fmt.Errorf("agentguard: tool %q: Audit.Redact: %w", t.Name, err)
		}
	}
	seen := map[string]bool{}
	for _, c := range t.Credentials {
		if c.Name == "" || c.Provider == "" {
			return fmt.Errorf("agentguard: tool %q: a credential needs a name and a provider", t.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("agentguard: tool %q: credential %q declared twice", t.Name, c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// schemasOK holds input schemas checkSchema accepted: a tool called
// through Invoke or Middleware is validated at every call, and parsing its
// schema costs more than the rest of the checks. It is cleared when it
// reaches maxFingerprints entries.
var schemasOK struct {
	sync.Mutex
	m map[string]struct{}
}

// checkSchema returns an error unless s is one JSON object, in UTF-8, that
// canonical.Parse accepts.
func checkSchema(s []byte) error {
	schemasOK.Lock()
	_, ok := schemasOK.m[string(s)]
	schemasOK.Unlock()
	if ok {
		return nil
	}
	if !utf8.Valid(s) {
		return errors.New("is not valid UTF-8")
	}
	v, err := canonical.Parse(s)
	if err != nil {
		return fmt.Errorf("is not valid JSON: %w", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return errors.New("is not a JSON object")
	}
	schemasOK.Lock()
	if schemasOK.m == nil || len(schemasOK.m) >= maxFingerprints {
		schemasOK.m = make(map[string]struct{})
	}
	schemasOK.m[string(s)] = struct{}{}
	schemasOK.Unlock()
	return nil
}

// clone returns a copy of t that shares no slice with it.
func (t *Tool) clone() *Tool {
	c := *t
	c.InputSchema = slices.Clone(t.InputSchema)
	c.OutputSchema = slices.Clone(t.OutputSchema)
	c.Labels = slices.Clone(t.Labels)
	c.OutputLabels = slices.Clone(t.OutputLabels)
	c.Credentials = slices.Clone(t.Credentials)
	for i := range c.Credentials {
		c.Credentials[i].Scopes = slices.Clone(c.Credentials[i].Scopes)
	}
	c.Audit.Redact = slices.Clone(t.Audit.Redact)
	return &c
}

// pointers holds the pointers of ArgsAudit.Redact parsed so far, by
// their text, so that a call parses none: tools called through Invoke
// or Middleware are not copied, and any of their fields may change
// between calls. It is cleared when it reaches maxFingerprints entries.
var pointers struct {
	m sync.Map // pointer text → []string, never changed once stored
	n atomic.Int64
}

// redactPointer returns the unescaped segments of ptr, a JSON Pointer of
// ArgsAudit.Redact, from pointers when it was parsed before.
func redactPointer(ptr string) ([]string, error) {
	if segs, ok := pointers.m.Load(ptr); ok {
		return segs.([]string), nil
	}
	segs, err := parsePointer(ptr)
	if err != nil {
		return nil, err
	}
	if pointers.n.Add(1) > maxFingerprints {
		pointers.m.Clear()
		pointers.n.Store(1)
	}
	pointers.m.Store(ptr, segs)
	return segs, nil
}

// parsePointer returns the unescaped segments of ptr, a JSON Pointer of
// ArgsAudit.Redact.
func parsePointer(ptr string) ([]string, error) {
	switch {
	case ptr == "":
		return nil, errors.New(`pointer "" would redact the whole arguments: leave Record unset instead`)
	case ptr[0] != '/':
		return nil, fmt.Errorf("pointer %q does not start with \"/\" (RFC 6901)", ptr)
	case !utf8.ValidString(ptr):
		return nil, fmt.Errorf("pointer %q is not valid UTF-8", ptr)
	}
	segs := strings.Split(ptr[1:], "/")
	for i, seg := range segs {
		for j := 0; j < len(seg); j++ {
			if seg[j] == '~' && (j+1 == len(seg) || (seg[j+1] != '0' && seg[j+1] != '1')) {
				return nil, fmt.Errorf("pointer %q: \"~\" must be followed by 0 or 1 (RFC 6901)", ptr)
			}
		}
		segs[i] = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
	}
	return segs, nil
}

// recordedArgs returns the arguments as the tool's audit records hold
// them (ArgsAudit): args, a value from canonical.Parse, with the values
// Redact names replaced and the values sc finds scrubbed, in canonical
// JSON. Should a value sc finds not be in a string, or the result not be
// made, the whole arguments are redacted: a record never holds what it
// should not.
//
// The JSON is searched once, in one pass (sc finds a value in a string in
// its JSON-escaped form); only arguments that hold a value are walked
// string by string. So the cost is in proportion to their size, however
// many strings they hold and however many credentials sc knows.
func (t *Tool) recordedArgs(args any, sc *credentials.Scrubber) json.RawMessage {
	redacted := json.RawMessage(`"` + credentials.Redacted + `"`)
	ptrs := make([][]string, 0, len(t.Audit.Redact))
	for _, p := range t.Audit.Redact {
		segs, err := redactPointer(p)
		if err != nil {
			return redacted // validated already; fail closed all the same
		}
		ptrs = append(ptrs, segs)
	}
	v := redact(args, ptrs)
	b, err := canonical.Marshal(v)
	if err != nil {
		return redacted
	}
	if !sc.Contains(string(b)) {
		return b
	}
	v, ok := scrubStrings(v, sc)
	if !ok {
		return redacted
	}
	if b, err = canonical.Marshal(v); err != nil || sc.Contains(string(b)) {
		return redacted
	}
	return b
}

// redact returns v with the values at ptrs (the segments left of
// pointers that matched so far) replaced by credentials.Redacted. What
// no pointer reaches is shared with v, not copied.
func redact(v any, ptrs [][]string) any {
	if len(ptrs) == 0 {
		return v
	}
	for _, p := range ptrs {
		if len(p) == 0 {
			return credentials.Redacted
		}
	}
	// The pointers that go on into the member or element named seg: keys
	// as encoding/json matches them, without regard to case.
	next := func(seg string) [][]string {
		var out [][]string
		for _, p := range ptrs {
			if p[0] == "*" || strings.EqualFold(p[0], seg) {
				out = append(out, p[1:])
			}
		}
		return out
	}
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = redact(e, next(k))
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = redact(e, next(strconv.Itoa(i)))
		}
		return out
	}
	return v
}

// scrubStrings returns a copy of v with every string passed through sc.
// It reports false when a key holds a value sc finds: keys scrubbed alike
// would collide, one value hiding another, so the caller redacts it all.
func scrubStrings(v any, sc *credentials.Scrubber) (any, bool) {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if sc.Contains(k) {
				return nil, false
			}
			s, ok := scrubStrings(e, sc)
			if !ok {
				return nil, false
			}
			out[k] = s
		}
		return out, true
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			s, ok := scrubStrings(e, sc)
			if !ok {
				return nil, false
			}
			out[i] = s
		}
		return out, true
	case string:
		return sc.Scrub(t), true
	}
	return v, true
}

// Fingerprint is "sha256:<hex>" over the canonical JSON of the tool's name,
// description, input schema and annotations, and its title and output
// schema when it has them: what a model reads to decide to call it. A
// changed fingerprint means a changed tool; a tool without a title or
// output schema has the fingerprint it had before they were covered. It is
// one-to-one for the definitions the guard accepts (valid UTF-8, schemas
// that are JSON objects without keys repeated or equal under case
// folding); for others it is not, and the guard refuses them
// (ErrInvalidTool).
func (t *Tool) Fingerprint() string {
	def := map[string]any{
		"name":         t.Name,
		"description":  t.Description,
		"input_schema": schemaValue(t.InputSchema),
		"annotations":  t.Annotations,
	}
	// Title and output schema count only when set, so that the
	// fingerprints of tools without them stay what they were.
	if t.Title != "" {
		def["title"] = t.Title
	}
	if len(t.OutputSchema) > 0 {
		def["output_schema"] = schemaValue(t.OutputSchema)
	}
	b, _ := canonical.Marshal(def)
	return canonical.Digest(b)
}

// schemaValue is what a fingerprint holds of a JSON Schema: its parsed
// value, or its text when it does not parse (validate refuses such a
// tool), or nil for none.
func schemaValue(s json.RawMessage) any {
	if len(s) == 0 {
		return nil
	}
	if v, err := canonical.Parse(s); err == nil {
		return v
	}
	return string(s)
}

// PolicySchema is the Cedar schema of the SDK's model for tools: one action
// per tool, whose context.args is typed from the tool's input schema (see
// policy.NewSchema). Give it to the engine (policy.WithSchema) so that every
// policy is validated against the tools the agent has, and write it out
// (Schema.WriteFile) for review.
func PolicySchema(tools ...*Tool) (*policy.Schema, error) {
	pts := make([]policy.Tool, 0, len(tools))
	for _, t := range tools {
		if err := t.validate(false); err != nil {
			return nil, err
		}
		pts = append(pts, t.policyTool())
	}
	return policy.NewSchema(pts...)
}

// PolicyTool is what policy sees of t: the resource of its calls. A tool
// registered without a Toolset gets the registry's.
func (t *Tool) PolicyTool() policy.Tool {
	pt := t.policyTool()
	pt.Labels = slices.Clone(pt.Labels)
	pt.InputSchema = slices.Clone(pt.InputSchema)
	return pt
}

func (t *Tool) policyTool() policy.Tool {
	return policy.Tool{
		Name:        t.Name,
		Toolset:     t.Toolset,
		Description: t.Description,
		ReadOnly:    t.Annotations.ReadOnly,
		Destructive: t.Annotations.Destructive,
		Idempotent:  t.Annotations.Idempotent,
		OpenWorld:   t.Annotations.OpenWorld,
		Risk:        t.Risk,
		Labels:      t.Labels,
		InputSchema: t.InputSchema,
	}
}

// Call is one request to run a tool.
type Call struct {
	// ID identifies the call, usually the model's tool-call ID. The guard
	// makes one up when it is empty.
	ID string
	// Name is the tool's name. Registry.Call looks the tool up by it.
	Name string
	// Args are the arguments: a JSON object, or empty for none.
	Args json.RawMessage
}

// CanonicalArgs returns args in the one canonical JSON form the guard gives
// policy and tool (Handler): keys sorted, no insignificant space, strings
// in one spelling (numbers keep theirs). Adapters use it to compare the arguments of
// a call with those a human approved. It fails, matching
// ErrInvalidArguments, for what the guard would deny at its arguments
// step: invalid JSON, a repeated key (or keys equal under case folding),
// or a value that is not a JSON object.
func CanonicalArgs(args json.RawMessage) (json.RawMessage, error) {
	out, parsed, err := canonical.JSON(args)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArguments, err)
	}
	if _, ok := parsed.(map[string]any); !ok {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalidArguments)
	}
	return out, nil
}
