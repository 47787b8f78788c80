package canonical

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestValidNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-0": true, "12": true, "1.5": true, "-1.50e+3": true, "1E9": true,
		"": false, "-": false, "01": false, "1.": false, ".5": false, "1e": false, "+1": false,
		`1,"x":2`: false, `"1"`: false, "1 ": false, "NaN": false, "0x10": false,
	} {
		if got := validNumber(s); got != want {
			t.Errorf("validNumber(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestMarshalRefusesForgedNumber: a json.Number that did not come from
// Parse cannot inject JSON into the canonical form.
func TestMarshalRefusesForgedNumber(t *testing.T) {
	_, err := Marshal(map[string]any{"n": json.Number(`1,"admin":true`)})
	if err == nil {
		t.Fatal("Marshal wrote a forged number")
	}
}

// TestParseOnlyJSONWhitespaceIsEmpty: only JSON's white space makes an
// empty document; other Unicode spaces are invalid JSON.
func TestParseOnlyJSONWhitespaceIsEmpty(t *testing.T) {
	for _, in := range []string{" \t\r\n", ""} {
		if v, err := Parse([]byte(in)); err != nil || len(v.(map[string]any)) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want {}", in, v, err)
		}
	}
	for _, in := range []string{"\f", "\v", "\u00a0", "\u0085", "\u2028", "\u3000"} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) err = %v, want ErrInvalid", in, err)
		}
	}
}

// TestParseRefusesCaseFoldedKeys: encoding/json gives a struct field the
// last key that matches it without regard to case, so such keys are repeats.
func TestParseRefusesCaseFoldedKeys(t *testing.T) {
	for _, in := range []string{
		`{"host":1,"HOST":2}`,
		`{"host":1,"ho\u017ft":2}`, // ſ folds to s
		`{"kind":1,"\u212aind":2}`, // Kelvin sign folds to k
		`{"a":{"Id":1,"iD":2}}`,
	} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%s) err = %v, want ErrInvalid", in, err)
		}
	}
	for _, in := range []string{`{"a":1,"b":2}`, `{"é":1,"e":2}`, `{"a":{"x":1},"b":{"x":2}}`} {
		if _, err := Parse([]byte(in)); err != nil {
			t.Errorf("Parse(%s) = %v, want it accepted", in, err)
		}
	}
}
