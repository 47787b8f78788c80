// Package canonical puts JSON documents into one canonical form, so that two
// encodings of the same arguments have the same bytes and the same digest, and
// so that policy and tool always see the very same value.
package canonical

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid is returned for input that is not one well-formed JSON value, or
// that has an object with a repeated key.
var ErrInvalid = errors.New("canonical: invalid JSON")

// Parse decodes one JSON value. Numbers stay json.Number so that no precision
// is lost. An object with a repeated key is refused: two parsers that keep
// different copies of a repeated key are a classic way to make a policy check
// one value while the tool acts on another. Empty input is the empty object.
//
// The syntax is checked by json.Valid first, so the decoder below walks input
// known to be well formed; strings with escapes or invalid UTF-8 are decoded
// by encoding/json, so every string means what encoding/json says it means.
func Parse(raw []byte) (any, error) {
	return Decode[any](raw, anyBuilder{})
}

// Builder makes values of type T from the parts of a document, as Decode
// walks it. O is an object being built, A an array.
type Builder[T, O, A any] interface {
	Object() O
	Member(o O, key string, v T) O
	EndObject(o O) (T, error)
	Array() A
	Element(a A, v T) A
	EndArray(a A) (T, error)
	String(s string) T
	Number(n json.Number) (T, error)
	Bool(b bool) T
	Null() T
}

// Decode decodes one JSON value with the rules of Parse (well formed,
// no repeated keys, none that differ only in case; empty input is the
// empty object), building it with b. An error from b names where in the
// document it arose.
func Decode[T, O, A any](raw []byte, b Builder[T, O, A]) (T, error) {
	var zero T
	if len(bytes.Trim(raw, " \t\r\n")) == 0 {
		return b.EndObject(b.Object())
	}
	if !json.Valid(raw) {
		return zero, fmt.Errorf("%w: %v", ErrInvalid, explain(raw))
	}
	d := decoder[T, O, A]{b: raw, build: b}
	v, err := d.value()
	if err != nil {
		var pe *PathError
		if errors.As(err, &pe) {
			return zero, err // the builder's, with where it arose
		}
		return zero, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return v, nil
}

// PathError is an error about the value at a path in a document, such as
// items[2].price. Decode returns a builder's errors as PathErrors.
type PathError struct {
	// Path is where: keys joined by ".", indexes in brackets, a key that is
	// not a plain name quoted. Empty for the document itself.
	Path string
	Err  error
}

func (e *PathError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

func (e *PathError) Unwrap() error { return e.Err }

// AtKey puts err at member key of an object: in front of its path if it is
// a PathError, else as a PathError of its own.
func AtKey(err error, key string) error {
	if !plainName(key) {
		key = strconv.Quote(key)
	}
	return at(err, key)
}

// AtIndex puts err at element i of an array, as AtKey does.
func AtIndex(err error, i int) error { return at(err, "["+strconv.Itoa(i)+"]") }

func at(err error, step string) error {
	var pe *PathError
	if !errors.As(err, &pe) {
		return &PathError{Path: step, Err: err}
	}
	switch {
	case pe.Path == "":
		return &PathError{Path: step, Err: pe.Err}
	case strings.HasPrefix(pe.Path, "["):
		return &PathError{Path: step + pe.Path, Err: pe.Err}
	}
	return &PathError{Path: step + "." + pe.Path, Err: pe.Err}
}

// plainName reports whether key is a letter or underscore followed by
// letters, digits and underscores, written unquoted in a path.
func plainName(key string) bool {
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return key != ""
}

// anyBuilder builds what Parse returns.
type anyBuilder struct{}

func (anyBuilder) Object() map[string]any { return map[string]any{} }
func (anyBuilder) Member(o map[string]any, k string, v any) map[string]any {
	o[k] = v
	return o
}
func (anyBuilder) EndObject(o map[string]any) (any, error) { return o, nil }
func (anyBuilder) Array() []any                            { return []any{} }
func (anyBuilder) Element(a []any, v any) []any            { return append(a, v) }
func (anyBuilder) EndArray(a []any) (any, error)           { return a, nil }
func (anyBuilder) String(s string) any                     { return s }
func (anyBuilder) Number(n json.Number) (any, error)       { return n, nil }
func (anyBuilder) Bool(b bool) any                         { return b }
func (anyBuilder) Null() any                               { return nil }

// explain says what is wrong with raw, which json.Valid refused.
func explain(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the value")
	}
	return errors.New("not valid JSON")
}

// decoder walks a document already known to be valid JSON.
type decoder[T, O, A any] struct {
	b     []byte
	i     int
	build Builder[T, O, A]
}

func (d *decoder[T, O, A]) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder[T, O, A]) value() (T, error) {
	var zero T
	d.space()
	switch c := d.b[d.i]; {
	case c == '{':
		d.i++
		obj := d.build.Object()
		d.space()
		if d.b[d.i] == '}' {
			d.i++
			return d.built(d.build.EndObject(obj))
		}
		// Keys so far, to refuse repeats and keys equal under case
		// folding: compared pairwise while there are few (no allocation),
		// then by their fold.
		var small [smallObject]string
		keys := small[:0]
		var folded map[string]string
		for {
			d.space()
			key, err := d.str()
			if err != nil {
				return zero, err
			}
			// encoding/json matches struct fields without regard to case
			// (with Unicode folding: "ſ" is "s"), and the last match wins,
			// so keys equal under folding are repeats to a Go tool.
			if folded == nil && len(keys) < smallObject {
				for _, prev := range keys {
					if prev == key {
						return zero, fmt.Errorf("repeated object key %q", key)
					}
					if strings.EqualFold(prev, key) {
						return zero, fmt.Errorf("object keys %q and %q differ only in case", prev, key)
					}
				}
				keys = append(keys, key)
			} else {
				if folded == nil {
					folded = make(map[string]string, 2*smallObject)
					for _, k := range keys {
						folded[Fold(k)] = k
					}
				}
				f := Fold(key)
				if prev, dup := folded[f]; dup {
					if prev == key {
						return zero, fmt.Errorf("repeated object key %q", key)
					}
					return zero, fmt.Errorf("object keys %q and %q differ only in case", prev, key)
				}
				folded[f] = key
			}
			d.space()
			d.i++ // ':'
			v, err := d.value()
			if err != nil {
				return zero, nested(err, func(err error) error { return AtKey(err, key) })
			}
			obj = d.build.Member(obj, key, v)
			d.space()
			c := d.b[d.i]
			d.i++
			if c == '}' {
				return d.built(d.build.EndObject(obj))
			}
		}
	case c == '[':
		d.i++
		arr := d.build.Array()
		d.space()
		if d.b[d.i] == ']' {
			d.i++
			return d.built(d.build.EndArray(arr))
		}
		for n := 0; ; n++ {
			v, err := d.value()
			if err != nil {
				return zero, nested(err, func(err error) error { return AtIndex(err, n) })
			}
			arr = d.build.Element(arr, v)
			d.space()
			c := d.b[d.i]
			d.i++
			if c == ']' {
				return d.built(d.build.EndArray(arr))
			}
		}
	case c == '"':
		s, err := d.str()
		if err != nil {
			return zero, err
		}
		return d.build.String(s), nil
	case c == 't':
		d.i += 4
		return d.build.Bool(true), nil
	case c == 'f':
		d.i += 5
		return d.build.Bool(false), nil
	case c == 'n':
		d.i += 4
		return d.build.Null(), nil
	default:
		start := d.i
		for d.i < len(d.b) && strings.IndexByte("+-0123456789.eE", d.b[d.i]) >= 0 {
			d.i++
		}
		return d.built(d.build.Number(json.Number(d.b[start:d.i])))
	}
}

// nested places a builder's error (a PathError) in its enclosing value; an
// error of the document itself passes through.
func nested(err error, place func(error) error) error {
	var pe *PathError
	if errors.As(err, &pe) {
		return place(err)
	}
	return err
}

// built marks an error of the builder as such: a PathError.
func (d *decoder[T, O, A]) built(v T, err error) (T, error) {
	if err != nil {
		var pe *PathError
		if errors.As(err, &pe) {
			return v, err
		}
		return v, &PathError{Err: err}
	}
	return v, nil
}

// smallObject is how many keys an object has before they are checked for
// repeats under case folding by a map rather than by pairwise comparison.
const smallObject = 16

// Fold maps s to one representative of its case-folding class, so that
// strings.EqualFold(a, b) implies Fold(a) == Fold(b).
func Fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(s) // an ASCII letter's orbit starts upper case
	}
	var b strings.Builder
	for _, r := range s {
		// The smallest rune of r's simple-fold orbit.
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		b.WriteRune(low)
	}
	return b.String()
}

// str decodes the string starting at d.i.
func (d *decoder[T, O, A]) str() (string, error) {
	start := d.i
	d.i++
	plain := true
	for {
		c := d.b[d.i]
		if c == '\\' {
			plain = false
			d.i += 2
			continue
		}
		d.i++
		if c == '"' {
			break
		}
	}
	lit := d.b[start:d.i]
	if plain && utf8.Valid(lit) {
		return string(lit[1 : len(lit)-1]), nil
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return "", err
	}
	return s, nil
}

// Marshal writes v in canonical form: object keys sorted by their bytes, no
// insignificant white space, numbers as written, strings escaped as
// encoding/json escapes them but without HTML escaping. v is a value as
// produced by Parse; other values go through encoding/json first.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := write(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func write(buf *bytes.Buffer, v any) error {
	switch t := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		if t {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case json.Number:
		// Parse only makes valid numbers; anything else could inject JSON.
		if !validNumber(string(t)) {
			return fmt.Errorf("canonical: invalid number %q", string(t))
		}
		buf.WriteString(string(t))
	case string:
		return writeString(buf, t)
	case []any:
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := write(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeString(buf, k); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := write(buf, t[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		// Not from Parse: take encoding/json's view of it, then canonicalize.
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		pv, err := Parse(b)
		if err != nil {
			return err
		}
		return write(buf, pv)
	}
	return nil
}

// validNumber reports whether s is one JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if i < len(s) && s[i] >= '1' && s[i] <= '9' {
		digits()
	} else {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// writeString writes s quoted. Printable ASCII without quote or backslash is
// written as is; anything else is escaped by encoding/json.
func writeString(buf *bytes.Buffer, s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			enc := json.NewEncoder(buf)
			enc.SetEscapeHTML(false)
			err := enc.Encode(s)
			buf.Truncate(buf.Len() - 1) // Encode's newline
			return err
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
	return nil
}

// JSON returns the canonical form of raw and its parsed value.
func JSON(raw []byte) ([]byte, any, error) {
	v, err := Parse(raw)
	if err != nil {
		return nil, nil, err
	}
	b, err := Marshal(v)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return b, v, nil
}

// Digest returns "sha256:" and the hex SHA-256 of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// SortedSet returns the distinct, non-empty strings of the inputs, sorted.
func SortedSet(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, s := range l {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
