package policy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/agentguard/go-sdk/internal/canonical"
)

// argsReference is the two-step decoding argsRecord replaces: parse, then
// map to Cedar.
func argsReference(raw []byte) (string, error) {
	v, err := canonical.Parse(raw)
	if err != nil {
		return "", err
	}
	if _, ok := v.(map[string]any); !ok {
		return "", errNotObject
	}
	cv, err := jsonToCedar(v)
	if err != nil {
		return "", err
	}
	return string(cv.MarshalCedar()), nil
}

func checkArgs(t *testing.T, raw []byte) {
	want, werr := argsReference(raw)
	got, gerr := argsRecord(raw)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: argsRecord error %v, reference error %v", raw, gerr, werr)
	}
	if werr != nil {
		// Both refuse (and the call is denied); which fault is named first
		// may differ: "0e100" is a number policy cannot hold to one and
		// not an object to the other.
		if errors.Is(werr, canonical.ErrInvalid) && !errors.Is(gerr, canonical.ErrInvalid) && !json.Valid(raw) {
			t.Fatalf("%q: invalid JSON, but argsRecord error %v", raw, gerr)
		}
		return
	}
	if s := string(got.MarshalCedar()); s != want {
		t.Fatalf("%q: argsRecord = %s, reference = %s", raw, s, want)
	}
}

var argsSeeds = []string{
	``, `{}`, ` { } `, `{"amount":250,"currency":"EUR"}`, `{"a":null,"b":[1,null,"x"],"c":{"d":{"e":true}}}`,
	`{"n":1.5,"m":-0.0001,"big":12345678901234567890}`, `{"x":1e400}`, `{"x":0.123456}`, `{"list":[1,2,0.123456]}`,
	`[1,2]`, `"s"`, `3`, `null`, `{"a":1,"a":2}`, `{"a":1,"A":2}`, `{"ſ":1,"s":2}`, `{"K":1,"k":2}`,
	`{"a":`, `{"a":1}x`, `0e100`, `{"a":1e999,"a":2}`, `{"esc":"\u00e9\n","ü":"ß"}`, `{"deep":[[[{"a":[]}]]]}`, `{"e":1E2,"f":-1e-2}`,
	`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"K3":3}`,
	`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17}`,
}

// TestArgsRecordMatchesReference checks that decoding straight into Cedar
// gives what parsing and then converting gives, errors included.
func TestArgsRecordMatchesReference(t *testing.T) {
	for _, s := range argsSeeds {
		checkArgs(t, []byte(s))
	}
	// Errors name where they arose.
	_, err := argsRecord([]byte(`{"outer":{"list":[1,0.123456]}}`))
	if err == nil || !strings.HasPrefix(err.Error(), "outer.list[1]: ") {
		t.Fatalf("error = %v, want one naming outer.list[1]", err)
	}
}

func FuzzArgsRecord(f *testing.F) {
	for _, s := range argsSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkArgs(t, raw) })
}
