package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"

	"github.com/agentguard/go-sdk/internal/canonical"
)

// argKind is what a conversion node makes of a JSON value.
type argKind uint8

const (
	argAny      argKind = iota // no declared type that JSON can express: jsonToCedar
	argString                  // a JSON string
	argLong                    // a JSON number with an integer value
	argBool                    // a JSON boolean
	argDecimal                 // a JSON number with at most four fractional digits
	argDatetime                // a JSON string in Cedar's datetime syntax
	argDuration                // a JSON string in Cedar's duration syntax
	argIPAddr                  // a JSON string in Cedar's ipaddr syntax
	argSet                     // a JSON array
	argRecord                  // a JSON object
)

// argConv converts a JSON value to the Cedar type a schema declares. It is
// built once per action when the schema is made, so a call only walks it.
type argConv struct {
	kind  argKind
	elem  *argConv  // argSet
	attrs []argAttr // argRecord, sorted by name
}

type argAttr struct {
	name     string
	key      cedar.String
	optional bool
	conv     *argConv
}

// declared reports whether a record conversion declares attribute name.
func (c *argConv) declared(name string) bool {
	_, ok := slices.BinarySearchFunc(c.attrs, name, func(a argAttr, n string) int { return strings.Compare(a.name, n) })
	return ok
}

// newArgConv builds the conversion for a resolved Cedar type.
func newArgConv(t resolved.IsType) *argConv {
	switch t := t.(type) {
	case resolved.StringType:
		return &argConv{kind: argString}
	case resolved.LongType:
		return &argConv{kind: argLong}
	case resolved.BoolType:
		return &argConv{kind: argBool}
	case resolved.ExtensionType:
		switch t {
		case "decimal":
			return &argConv{kind: argDecimal}
		case "datetime":
			return &argConv{kind: argDatetime}
		case "duration":
			return &argConv{kind: argDuration}
		case "ipaddr":
			return &argConv{kind: argIPAddr}
		}
	case resolved.SetType:
		return &argConv{kind: argSet, elem: newArgConv(t.Element)}
	case resolved.RecordType:
		c := &argConv{kind: argRecord}
		for _, name := range slices.Sorted(maps.Keys(t)) {
			a := t[name]
			c.attrs = append(c.attrs, argAttr{name: string(name), key: name, optional: a.Optional, conv: newArgConv(a.Type)})
		}
		return c
	}
	// Entity references (possible only in a hand-written schema) have no
	// JSON form here.
	return &argConv{kind: argAny}
}

func mismatch(want string, got any) error {
	return fmt.Errorf("expected %s, got %s", want, jsonKind(got))
}

// convert converts v, a value parsed from JSON with json.Number, to the
// node's type.
func (c *argConv) convert(v any) (cedar.Value, error) {
	switch c.kind {
	case argAny:
		return jsonToCedar(v)
	case argString:
		if s, ok := v.(string); ok {
			return cedar.String(s), nil
		}
		return nil, mismatch("a string", v)
	case argBool:
		if b, ok := v.(bool); ok {
			return cedar.Boolean(b), nil
		}
		return nil, mismatch("a boolean", v)
	case argLong:
		n, ok := v.(json.Number)
		if !ok {
			return nil, mismatch("an integer", v)
		}
		return numberToLong(n)
	case argDecimal:
		n, ok := v.(json.Number)
		if !ok {
			return nil, mismatch("a number", v)
		}
		return numberToDecimal(n)
	case argDatetime, argDuration, argIPAddr:
		s, ok := v.(string)
		if !ok {
			return nil, mismatch("a string", v)
		}
		var out cedar.Value
		var err error
		switch c.kind {
		case argDatetime:
			out, err = types.ParseDatetime(s)
		case argDuration:
			out, err = types.ParseDuration(s)
		default:
			out, err = types.ParseIPAddr(s)
		}
		if err != nil {
			// cedar-go's message quotes the value: say only what was expected.
			return nil, errors.New("expected " + [...]string{argDatetime: "a datetime", argDuration: "a duration", argIPAddr: "an IP address"}[c.kind])
		}
		return out, nil
	case argSet:
		a, ok := v.([]any)
		if !ok {
			return nil, mismatch("an array", v)
		}
		s := make([]cedar.Value, 0, len(a))
		for i, e := range a {
			if e == nil {
				continue // Cedar has no null, as in jsonToCedar
			}
			cv, err := c.elem.convert(e)
			if err != nil {
				return nil, canonical.AtIndex(err, i)
			}
			s = append(s, cv)
		}
		return cedar.NewSet(s...), nil
	case argRecord:
		o, ok := v.(map[string]any)
		if !ok {
			return nil, mismatch("an object", v)
		}
		m := scratchRecord()
		// Undeclared properties are kept, untyped: the tool gets them, so
		// `context.args has x` must be true for policy too (the validator
		// types it false, and would let a forbid on it pass as one that can
		// never apply). A property whose name differs from a declared one
		// only in case is refused: a Go tool (encoding/json) would read it
		// as the declared one, which policy would not see.
		for k, e := range o {
			if e == nil || c.declared(k) {
				continue
			}
			for i := range c.attrs {
				if strings.EqualFold(k, c.attrs[i].name) {
					return nil, canonical.AtKey(fmt.Errorf("argument name differs only in case from the declared %s", cedarName(c.attrs[i].name)), k)
				}
			}
			cv, err := jsonToCedar(e)
			if err != nil {
				return nil, canonical.AtKey(err, k)
			}
			m[cedar.String(k)] = cv
		}
		for i := range c.attrs {
			a := &c.attrs[i]
			e, ok := o[a.name]
			if !ok || e == nil {
				if a.optional {
					continue
				}
				return nil, canonical.AtKey(errors.New("required argument is missing"), a.name)
			}
			cv, err := a.conv.convert(e)
			if err != nil {
				return nil, canonical.AtKey(err, a.name)
			}
			m[a.key] = cv
		}
		return recordOf(m), nil
	}
	return nil, fmt.Errorf("policy: unknown argument conversion %d", c.kind)
}

// numberRat parses n exactly, refusing exponents so large that no Long or
// decimal could hold the value (big.Rat would take long over them).
func numberRat(n json.Number) (*big.Rat, bool) {
	s := n.String()
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		if e, err := strconv.Atoi(s[i+1:]); err != nil || e > 40 || e < -40 {
			return nil, false
		}
	}
	return new(big.Rat).SetString(s)
}

// numberToLong converts a JSON number with an integer value (5, 5.0, 5e2)
// to a Long.
func numberToLong(n json.Number) (cedar.Value, error) {
	if i, err := n.Int64(); err == nil {
		return cedar.Long(i), nil
	}
	if v, ok := plainDecimal(n.String()); ok && v%10000 == 0 {
		return cedar.Long(v / 10000), nil
	}
	r, ok := numberRat(n)
	if !ok || !r.IsInt() {
		return nil, errors.New("expected an integer, got a number with a fractional part")
	}
	if !r.Num().IsInt64() {
		return nil, errors.New("integer is out of range for policy (64 bits)")
	}
	return cedar.Long(r.Num().Int64()), nil
}

// numberToDecimal converts a JSON number to a decimal, which holds four
// fractional digits: anything else is an error, not a rounded value.
func numberToDecimal(n json.Number) (cedar.Value, error) {
	if v, ok := plainDecimal(n.String()); ok {
		if d, err := types.NewDecimal(v, -4); err == nil {
			return d, nil
		}
	}
	r, ok := numberRat(n)
	if ok {
		scaled := new(big.Rat).Mul(r, big.NewRat(10000, 1))
		if scaled.IsInt() && scaled.Num().IsInt64() {
			if d, err := types.NewDecimal(scaled.Num().Int64(), -4); err == nil {
				return d, nil
			}
		}
	}
	return nil, errors.New("number is not representable in policy (decimals hold four fractional digits, up to about 9.2e14)")
}

// plainDecimal reads a number written without an exponent and with at most
// four fractional digits as ten-thousandths: the common case, without
// big.Rat. It reports false for anything else, which takes the slow path.
func plainDecimal(s string) (int64, bool) {
	intPart, frac, _ := strings.Cut(s, ".")
	if len(frac) > 4 || len(intPart)+4 > 18 || strings.ContainsAny(s, "eE") {
		return 0, false
	}
	digits := intPart + frac + "0000"[len(frac):]
	v, err := strconv.ParseInt(digits, 10, 64)
	return v, err == nil
}
