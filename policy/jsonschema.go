package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
	sast "github.com/cedar-policy/cedar-go/x/exp/schema/ast"
)

// jsonSchemaMapper maps one tool's input JSON Schema to the Cedar type of
// context.args. What does not map is left out of the type and named in a
// warning.
type jsonSchemaMapper struct {
	tool      string
	root      any
	expanding []string // $refs being expanded, to refuse recursive types
	warnings  []string
}

// unmappable is why a JSON Schema has no Cedar type.
type unmappable struct{ reason string }

func (u *unmappable) Error() string { return u.reason }

func cannot(format string, a ...any) error { return &unmappable{fmt.Sprintf(format, a...)} }

// argsType maps raw, a tool's input schema, to a record type. An input
// schema that is not JSON, or not an object schema, is an error.
func argsType(tool string, raw json.RawMessage) (sast.RecordType, []string, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return sast.RecordType{}, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, nil, fmt.Errorf("policy: tool %q: input schema: %w", tool, err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("policy: tool %q: input schema: trailing data after the schema", tool)
	}
	m := &jsonSchemaMapper{tool: tool, root: root}
	t, _, err := m.typeOf(root, "args")
	if err != nil {
		return nil, nil, fmt.Errorf("policy: tool %q: input schema is not an object schema: %w", tool, err)
	}
	rec, ok := t.(sast.RecordType)
	if !ok {
		return nil, nil, fmt.Errorf("policy: tool %q: input schema is not an object schema: it describes %s", tool, cedarTypeString(t))
	}
	return rec, m.warnings, nil
}

func (m *jsonSchemaMapper) warn(path, format string, a ...any) {
	m.warnings = append(m.warnings, fmt.Sprintf("tool %q: %s: %s", m.tool, path, fmt.Sprintf(format, a...)))
}

// typeOf returns the Cedar type of schema s, and whether s also allows null
// (which makes an attribute optional: Cedar has no null, and a null argument
// is left out). path names s in warnings, as a policy would reach it.
func (m *jsonSchemaMapper) typeOf(s any, path string) (sast.IsType, bool, error) {
	switch s := s.(type) {
	case bool:
		if s {
			return nil, false, cannot("no type (the schema allows any value)")
		}
		return nil, false, cannot("the schema allows no value")
	case map[string]any:
		return m.objectSchema(s, path)
	}
	return nil, false, cannot("not a JSON Schema (%s)", jsonKind(s))
}

func (m *jsonSchemaMapper) objectSchema(s map[string]any, path string) (sast.IsType, bool, error) {
	nullable := s["nullable"] == true // OpenAPI 3.0
	if ref, ok := s["$ref"]; ok {
		r, ok := ref.(string)
		if !ok {
			return nil, false, cannot("$ref is not a string")
		}
		return m.ref(r, path)
	}
	if all, ok := s["allOf"]; ok {
		t, n, err := m.allOf(s, all, path)
		return t, n || nullable, err
	}
	if ty, ok := s["type"]; ok {
		t, n, err := m.typed(s, ty, path)
		return t, n || nullable, err
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		if alts, ok := s[k]; ok {
			t, n, err := m.union(k, alts, path)
			return t, n || nullable, err
		}
	}
	if c, ok := s["const"]; ok {
		t, n, err := enumType([]any{c})
		return t, n || nullable, err
	}
	if e, ok := s["enum"]; ok {
		vals, ok := e.([]any)
		if !ok {
			return nil, false, cannot("enum is not an array")
		}
		t, n, err := enumType(vals)
		return t, n || nullable, err
	}
	if hasAny(s, "properties", "additionalProperties", "patternProperties", "required") {
		t, err := m.object(s, path)
		return t, nullable, err
	}
	if hasAny(s, "items", "prefixItems") {
		t, err := m.array(s, path)
		return t, nullable, err
	}
	return nil, false, cannot("no type (the schema allows any value)")
}

func hasAny(s map[string]any, keys ...string) bool {
	for _, k := range keys {
		if _, ok := s[k]; ok {
			return true
		}
	}
	return false
}

// typed maps a schema with a "type" keyword: one type, or a list of types
// of which all but "null" must agree.
func (m *jsonSchemaMapper) typed(s map[string]any, ty any, path string) (sast.IsType, bool, error) {
	var names []string
	switch ty := ty.(type) {
	case string:
		names = []string{ty}
	case []any:
		for _, n := range ty {
			str, ok := n.(string)
			if !ok {
				return nil, false, cannot("type list holds %s", jsonKind(n))
			}
			names = append(names, str)
		}
	default:
		return nil, false, cannot("type is %s, not a string or list", jsonKind(ty))
	}
	nullable := slices.Contains(names, "null")
	names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == "null" })
	slices.Sort(names)
	names = slices.Compact(names)
	if slices.Equal(names, []string{"integer", "number"}) {
		names = []string{"number"} // every integer is a number
	}
	switch len(names) {
	case 0:
		return nil, false, cannot("null is the only type (Cedar has no null)")
	case 1:
	default:
		return nil, false, cannot("several types (%s): Cedar has no union types", strings.Join(names, ", "))
	}
	var t sast.IsType
	var err error
	switch names[0] {
	case "string":
		t = sast.String()
		err = m.checkEnum(s, t)
	case "integer":
		t = sast.Long()
		err = m.checkEnum(s, t)
	case "number":
		t = sast.Decimal()
		err = m.checkEnum(s, t)
	case "boolean":
		t = sast.Bool()
		err = m.checkEnum(s, t)
	case "object":
		t, err = m.object(s, path)
	case "array":
		t, err = m.array(s, path)
	default:
		err = cannot("unknown type %q", names[0])
	}
	if err != nil {
		return nil, false, err
	}
	return t, nullable, nil
}

// checkEnum refuses an enum or const whose values do not have type t, which
// no value could satisfy as Cedar sees it.
func (m *jsonSchemaMapper) checkEnum(s map[string]any, t sast.IsType) error {
	var vals []any
	if e, ok := s["enum"].([]any); ok {
		vals = e
	}
	if c, ok := s["const"]; ok {
		vals = append(vals, c)
	}
	if len(vals) == 0 {
		return nil
	}
	et, _, err := enumType(vals)
	if err != nil {
		return err
	}
	if sameType(et, t) || (isDecimal(t) && sameType(et, sast.Long())) {
		return nil
	}
	return cannot("enum values (%s) do not match the type (%s)", cedarTypeString(et), cedarTypeString(t))
}

func isDecimal(t sast.IsType) bool { e, ok := t.(sast.ExtensionType); return ok && e == sast.Decimal() }

// enumType is the Cedar type of an enum's values: all strings, all
// integers, all numbers or all booleans. A null member makes it nullable.
func enumType(vals []any) (sast.IsType, bool, error) {
	var kinds []string
	nullable := false
	for _, v := range vals {
		k := jsonKind(v)
		if k == "null" {
			nullable = true
			continue
		}
		if k == "a number" {
			if _, err := v.(json.Number).Int64(); err == nil {
				k = "an integer"
			}
		}
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	kinds = slices.Compact(kinds)
	if slices.Equal(kinds, []string{"a number", "an integer"}) {
		kinds = []string{"a number"}
	}
	switch {
	case len(kinds) == 0:
		return nil, false, cannot("enum holds only null (Cedar has no null)")
	case len(kinds) > 1:
		return nil, false, cannot("enum of mixed types (%s)", strings.Join(kinds, ", "))
	}
	switch kinds[0] {
	case "a string":
		return sast.String(), nullable, nil
	case "an integer":
		return sast.Long(), nullable, nil
	case "a number":
		return sast.Decimal(), nullable, nil
	case "a boolean":
		return sast.Bool(), nullable, nil
	}
	return nil, false, cannot("enum of %s values", strings.TrimPrefix(strings.TrimPrefix(kinds[0], "an "), "a "))
}

// object maps an object schema to a record: each property whose schema maps
// is an attribute, required if the schema requires it and does not allow
// null. A property that does not map is left out, with a warning.
func (m *jsonSchemaMapper) object(s map[string]any, path string) (sast.IsType, error) {
	if ty, ok := s["type"]; ok && ty != "object" {
		if l, ok := ty.([]any); !ok || !slices.Contains(l, any("object")) {
			return nil, cannot("not an object")
		}
	}
	required := map[string]bool{}
	if r, ok := s["required"]; ok {
		list, ok := r.([]any)
		if !ok {
			return nil, cannot("required is not an array")
		}
		for _, n := range list {
			if str, ok := n.(string); ok {
				required[str] = true
			}
		}
	}
	rec := sast.RecordType{}
	var props map[string]any
	if p, ok := s["properties"]; ok {
		if props, ok = p.(map[string]any); !ok {
			return nil, cannot("properties is not an object")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(props)) {
		ppath := path + attrPathSegment(name)
		t, nullable, err := m.typeOf(props[name], ppath)
		if err != nil {
			m.warn(ppath, "left out of the type: %v", err)
			continue
		}
		attr := sast.Attribute{Type: t, Optional: nullable || !required[name]}
		if ps, ok := props[name].(map[string]any); ok {
			if d, ok := ps["description"].(string); ok && firstLine(d) != "" {
				attr.Annotations = sast.Annotations{"doc": types.String(firstLine(d))}
			}
		}
		rec[types.String(name)] = attr
	}
	if ap, ok := s["additionalProperties"]; ok && ap != false {
		m.warn(path, "additionalProperties are not typed: policies cannot read properties other than those listed")
	}
	if _, ok := s["patternProperties"]; ok {
		m.warn(path, "patternProperties are not typed: policies cannot read properties other than those listed")
	}
	return rec, nil
}

// array maps an array schema to a set of its items' type.
func (m *jsonSchemaMapper) array(s map[string]any, path string) (sast.IsType, error) {
	if ty, ok := s["type"]; ok && ty != "array" {
		if l, ok := ty.([]any); !ok || !slices.Contains(l, any("array")) {
			return nil, cannot("not an array")
		}
	}
	if _, ok := s["prefixItems"]; ok {
		return nil, cannot("a tuple (prefixItems): Cedar has no lists, and a set loses the positions")
	}
	items, ok := s["items"]
	if !ok {
		return nil, cannot("an array whose items have no type")
	}
	if _, ok := items.([]any); ok {
		return nil, cannot("a tuple (items is an array): Cedar has no lists, and a set loses the positions")
	}
	t, _, err := m.typeOf(items, path+"[]")
	if err != nil {
		return nil, cannot("an array whose items do not map: %v", err)
	}
	// A null item is left out of the set, as jsonToCedar does.
	return sast.Set(t), nil
}

// union maps anyOf or oneOf: the alternatives other than null must have one
// Cedar type.
func (m *jsonSchemaMapper) union(keyword string, alts any, path string) (sast.IsType, bool, error) {
	list, ok := alts.([]any)
	if !ok || len(list) == 0 {
		return nil, false, cannot("%s is not a non-empty array", keyword)
	}
	var t sast.IsType
	nullable := false
	for _, a := range list {
		if isNullSchema(a) {
			nullable = true
			continue
		}
		at, n, err := m.typeOf(a, path)
		if err != nil {
			return nil, false, cannot("%s with an alternative that does not map: %v", keyword, err)
		}
		nullable = nullable || n
		if t != nil && !sameType(t, at) {
			return nil, false, cannot("%s of different types (%s, %s): Cedar has no union types", keyword, cedarTypeString(t), cedarTypeString(at))
		}
		if t == nil {
			t = at
		}
	}
	if t == nil {
		return nil, false, cannot("null is the only type (Cedar has no null)")
	}
	return t, nullable, nil
}

func isNullSchema(s any) bool {
	o, ok := s.(map[string]any)
	if !ok {
		return false
	}
	if o["type"] == "null" {
		return true
	}
	if l, ok := o["type"].([]any); ok && len(l) == 1 && l[0] == "null" {
		return true
	}
	if c, ok := o["const"]; ok && c == nil {
		return true
	}
	return false
}

// allOf maps allOf (with the schema's own keywords as one more part): the
// parts must all map; records are merged, other types must agree.
func (m *jsonSchemaMapper) allOf(s map[string]any, all any, path string) (sast.IsType, bool, error) {
	list, ok := all.([]any)
	if !ok || len(list) == 0 {
		return nil, false, cannot("allOf is not a non-empty array")
	}
	parts := slices.Clone(list)
	rest := maps.Clone(s)
	delete(rest, "allOf")
	if hasAny(rest, "type", "properties", "items", "enum", "const", "$ref", "anyOf", "oneOf", "required", "additionalProperties") {
		parts = append(parts, rest)
	}
	var t sast.IsType
	nullable := true
	for _, p := range parts {
		pt, n, err := m.typeOf(p, path)
		if err != nil {
			return nil, false, cannot("allOf with a part that does not map: %v", err)
		}
		nullable = nullable && n
		if t == nil {
			t = pt
			continue
		}
		r1, ok1 := t.(sast.RecordType)
		r2, ok2 := pt.(sast.RecordType)
		switch {
		case ok1 && ok2:
			merged, err := mergeRecords(r1, r2)
			if err != nil {
				return nil, false, err
			}
			t = merged
		case !sameType(t, pt):
			return nil, false, cannot("allOf of different types (%s, %s)", cedarTypeString(t), cedarTypeString(pt))
		}
	}
	return t, nullable, nil
}

// mergeRecords is the record type of a value that has both types: an
// attribute is required if either requires it.
func mergeRecords(a, b sast.RecordType) (sast.RecordType, error) {
	out := maps.Clone(a)
	for k, bv := range b {
		av, ok := out[k]
		if !ok {
			out[k] = bv
			continue
		}
		if !sameType(av.Type, bv.Type) {
			return nil, cannot("allOf gives %q different types (%s, %s)", k, cedarTypeString(av.Type), cedarTypeString(bv.Type))
		}
		av.Optional = av.Optional && bv.Optional
		if av.Annotations == nil {
			av.Annotations = bv.Annotations
		}
		out[k] = av
	}
	return out, nil
}

// ref follows a local reference (#/$defs/..., #/definitions/... or any JSON
// pointer into the same document). Cedar types cannot be recursive, so a
// reference met again while it is being expanded does not map.
func (m *jsonSchemaMapper) ref(ref, path string) (sast.IsType, bool, error) {
	if !strings.HasPrefix(ref, "#") {
		return nil, false, cannot("$ref %q is not local: only references into the same schema (#/$defs/..., #/definitions/...) are followed", ref)
	}
	if slices.Contains(m.expanding, ref) {
		return nil, false, cannot("$ref %q is recursive: Cedar types cannot be", ref)
	}
	target, err := jsonPointer(m.root, ref[1:])
	if err != nil {
		return nil, false, cannot("$ref %q: %v", ref, err)
	}
	m.expanding = append(m.expanding, ref)
	defer func() { m.expanding = m.expanding[:len(m.expanding)-1] }()
	return m.typeOf(target, path)
}

// jsonPointer resolves an RFC 6901 pointer (from a URI fragment) in doc.
func jsonPointer(doc any, ptr string) (any, error) {
	if p, err := url.PathUnescape(ptr); err == nil {
		ptr = p
	}
	if ptr == "" {
		return doc, nil
	}
	if ptr[0] != '/' {
		return nil, errors.New("not a JSON pointer (anchors are not supported)")
	}
	cur := doc
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("%q not found", tok)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("index %q not found", tok)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("%q not found", tok)
		}
	}
	return cur, nil
}

// attrPathSegment is how a policy reaches attribute name: .name, or
// ["name"] when name is not an identifier.
func attrPathSegment(name string) string {
	if isIdent(name) {
		return "." + name
	}
	return "[" + strconv.Quote(name) + "]"
}

// cedarName is name as a Cedar record type writes it: bare when it is an
// identifier, else quoted.
func cedarName(name string) string {
	if isIdent(name) {
		return name
	}
	return strconv.Quote(name)
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	switch s {
	case "true", "false", "if", "then", "else", "in", "is", "like", "has", "__cedar":
		return false
	}
	return true
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}

// sameType reports whether two schema types are the same Cedar type.
func sameType(a, b sast.IsType) bool {
	switch a := a.(type) {
	case sast.SetType:
		b, ok := b.(sast.SetType)
		return ok && sameType(a.Element, b.Element)
	case sast.RecordType:
		b, ok := b.(sast.RecordType)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, av := range a {
			bv, ok := b[k]
			if !ok || av.Optional != bv.Optional || !sameType(av.Type, bv.Type) {
				return false
			}
		}
		return true
	}
	return a == b
}

// cedarTypeString writes t as a Cedar schema would.
func cedarTypeString(t sast.IsType) string {
	switch t := t.(type) {
	case sast.StringType:
		return "String"
	case sast.LongType:
		return "Long"
	case sast.BoolType:
		return "Bool"
	case sast.ExtensionType:
		return string(t)
	case sast.SetType:
		return "Set<" + cedarTypeString(t.Element) + ">"
	case sast.RecordType:
		var b strings.Builder
		b.WriteString("{")
		for i, k := range slices.Sorted(maps.Keys(t)) {
			if i > 0 {
				b.WriteString(", ")
			}
			if isIdent(string(k)) {
				b.WriteString(string(k))
			} else {
				b.WriteString(strconv.Quote(string(k)))
			}
			if t[k].Optional {
				b.WriteString("?")
			}
			b.WriteString(": " + cedarTypeString(t[k].Type))
		}
		b.WriteString("}")
		return b.String()
	case sast.EntityTypeRef:
		return string(t)
	case sast.TypeRef:
		return string(t)
	}
	return fmt.Sprintf("%T", t)
}
