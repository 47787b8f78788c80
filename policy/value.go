package policy

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// jsonToCedar converts a value parsed from JSON (with json.Number) into a
// Cedar value: objects become records, arrays sets, strings strings, booleans
// booleans, integers Long and other numbers decimal. A null member is left
// out, since Cedar has no null (so `context.args has x` is false for it). A
// number that fits neither Long nor decimal (at most four fractional digits)
// is an error rather than a rounded value: policy must see what the tool gets.
func jsonToCedar(v any) (cedar.Value, error) {
	switch t := v.(type) {
	case map[string]any:
		m := make(cedar.RecordMap, len(t))
		for k, e := range t {
			if e == nil {
				continue
			}
			cv, err := jsonToCedar(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m[cedar.String(k)] = cv
		}
		return cedar.NewRecord(m), nil
	case []any:
		s := make([]cedar.Value, 0, len(t))
		for i, e := range t {
			if e == nil {
				continue
			}
			cv, err := jsonToCedar(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			s = append(s, cv)
		}
		return cedar.NewSet(s...), nil
	case string:
		return cedar.String(t), nil
	case bool:
		return cedar.Boolean(t), nil
	case json.Number:
		return numberToCedar(t)
	}
	return nil, fmt.Errorf("unsupported JSON value %T", v)
}

func numberToCedar(n json.Number) (cedar.Value, error) {
	if i, err := n.Int64(); err == nil {
		return cedar.Long(i), nil
	}
	// A huge exponent makes big.Rat slow (1e999999 takes tens of ms) and
	// can never fit a Long or a decimal anyway.
	if i := strings.IndexAny(n.String(), "eE"); i >= 0 {
		if e, err := strconv.Atoi(n.String()[i+1:]); err != nil || e > 40 || e < -40 {
			return nil, fmt.Errorf("number %s is not representable in policy", n)
		}
	}
	r, ok := new(big.Rat).SetString(n.String())
	if !ok {
		return nil, fmt.Errorf("number %s is not representable in policy", n)
	}
	if r.IsInt() && r.Num().IsInt64() {
		return cedar.Long(r.Num().Int64()), nil
	}
	// Decimal holds four fractional digits: scale by 10^4 and require an
	// exact integer that fits.
	scaled := new(big.Rat).Mul(r, big.NewRat(10000, 1))
	if !scaled.IsInt() || !scaled.Num().IsInt64() {
		return nil, fmt.Errorf("number %s is not representable in policy (decimals hold four fractional digits)", n)
	}
	d, err := types.NewDecimal(scaled.Num().Int64(), -4)
	if err != nil {
		return nil, fmt.Errorf("number %s: %w", n, err)
	}
	return d, nil
}

func stringSet(ss []string) cedar.Set {
	vs := make([]cedar.Value, len(ss))
	for i, s := range ss {
		vs[i] = cedar.String(s)
	}
	return cedar.NewSet(vs...)
}

// lastSegment is the last segment of a SPIFFE ID path, the agent's name.
func lastSegment(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
