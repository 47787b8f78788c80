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
	if len(bytes.Trim(raw, " \t\r\n")) == 0 {
		return map[string]any{}, nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, explain(raw))
	}
	d := decoder{b: raw}
	v, err := d.value()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return v, nil
}

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
type decoder struct {
	b []byte
	i int
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value() (any, error) {
	d.space()
	switch c := d.b[d.i]; {
	case c == '{':
		d.i++
		obj := map[string]any{}
		d.space()
		if d.b[d.i] == '}' {
			d.i++
			return obj, nil
		}
		folded := map[string]string{}
		for {
			d.space()
			key, err := d.str()
			if err != nil {
				return nil, err
			}
			if _, dup := obj[key]; dup {
				return nil, fmt.Errorf("repeated object key %q", key)
			}
			// encoding/json matches struct fields without regard to case
			// (with Unicode folding: "ſ" is "s"), and the last match wins,
			// so keys equal under folding are repeats to a Go tool.
			f := fold(key)
			if prev, dup := folded[f]; dup {
				return nil, fmt.Errorf("object keys %q and %q differ only in case", prev, key)
			}
			folded[f] = key
			d.space()
			d.i++ // ':'
			v, err := d.value()
			if err != nil {
				return nil, err
			}
			obj[key] = v
			d.space()
			c := d.b[d.i]
			d.i++
			if c == '}' {
				return obj, nil
			}
		}
	case c == '[':
		d.i++
		arr := []any{}
		d.space()
		if d.b[d.i] == ']' {
			d.i++
			return arr, nil
		}
		for {
			v, err := d.value()
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
			d.space()
			c := d.b[d.i]
			d.i++
			if c == ']' {
				return arr, nil
			}
		}
	case c == '"':
		return d.str()
	case c == 't':
		d.i += 4
		return true, nil
	case c == 'f':
		d.i += 5
		return false, nil
	case c == 'n':
		d.i += 4
		return nil, nil
	default:
		start := d.i
		for d.i < len(d.b) && strings.IndexByte("+-0123456789.eE", d.b[d.i]) >= 0 {
			d.i++
		}
		return json.Number(d.b[start:d.i]), nil
	}
}

// fold maps s to one representative of its case-folding class, so that
// strings.EqualFold(a, b) implies fold(a) == fold(b).
func fold(s string) string {
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
func (d *decoder) str() (string, error) {
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
