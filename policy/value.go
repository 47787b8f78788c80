package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go"

	"github.com/agentguard/go-sdk/internal/canonical"
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
		m := scratchRecord()
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
		return recordOf(m), nil
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

// recordMaps holds scratch maps for building records: cedar.NewRecord
// copies its map, so one can be reused for the next record.
var recordMaps = sync.Pool{New: func() any { return make(cedar.RecordMap, 8) }}

func scratchRecord() cedar.RecordMap { return recordMaps.Get().(cedar.RecordMap) }

// recordOf makes the record of m and returns m to the pool, unless it grew
// large.
func recordOf(m cedar.RecordMap) cedar.Record {
	r := cedar.NewRecord(m)
	if len(m) <= 32 {
		clear(m)
		recordMaps.Put(m)
	}
	return r
}

// argsRecord decodes a call's arguments, a JSON object, straight into a
// Cedar record, with canonical.Parse's rules and jsonToCedar's mapping.
func argsRecord(raw []byte) (cedar.Value, error) {
	v, err := canonical.Decode(raw, cedarBuilder{})
	if err != nil {
		return nil, err
	}
	if _, ok := v.(cedar.Record); !ok {
		return nil, errNotObject
	}
	return v, nil
}

var errNotObject = errors.New("policy: arguments are not a JSON object")

// cedarBuilder builds Cedar values as jsonToCedar maps them.
type cedarBuilder struct{}

func (cedarBuilder) Object() cedar.RecordMap { return scratchRecord() }
func (cedarBuilder) Member(o cedar.RecordMap, k string, v cedar.Value) cedar.RecordMap {
	if v != nil { // null: Cedar has none
		o[cedar.String(k)] = v
	}
	return o
}
func (cedarBuilder) EndObject(o cedar.RecordMap) (cedar.Value, error) { return recordOf(o), nil }
func (cedarBuilder) Array() []cedar.Value                             { return nil }
func (cedarBuilder) Element(a []cedar.Value, v cedar.Value) []cedar.Value {
	if v != nil {
		a = append(a, v)
	}
	return a
}
func (cedarBuilder) EndArray(a []cedar.Value) (cedar.Value, error) { return cedar.NewSet(a...), nil }
func (cedarBuilder) String(s string) cedar.Value                   { return cedar.String(s) }
func (cedarBuilder) Number(n json.Number) (cedar.Value, error)     { return numberToCedar(n) }
func (cedarBuilder) Bool(b bool) cedar.Value                       { return cedar.Boolean(b) }
func (cedarBuilder) Null() cedar.Value                             { return nil }

func numberToCedar(n json.Number) (cedar.Value, error) {
	if i, err := n.Int64(); err == nil {
		return cedar.Long(i), nil
	}
	if r, ok := numberRat(n); ok && r.IsInt() && r.Num().IsInt64() {
		return cedar.Long(r.Num().Int64()), nil // 5.0, 5e2
	}
	return numberToDecimal(n)
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
