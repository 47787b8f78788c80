package policy

import (
	"encoding/json"
	"testing"
)

// TestHugeExponentRefused: numbers whose exponent cannot fit are refused
// before any exact arithmetic on them.
func TestHugeExponentRefused(t *testing.T) {
	for _, n := range []string{"1e999999", "1e-999999", "0e999999", "1.5E41"} {
		if v, err := numberToCedar(json.Number(n)); err == nil {
			t.Errorf("numberToCedar(%s) = %v, want an error", n, v)
		}
	}
	for _, n := range []string{"1e3", "2.5e1", "1.2345e2"} {
		if _, err := numberToCedar(json.Number(n)); err != nil {
			t.Errorf("numberToCedar(%s): %v", n, err)
		}
	}
}
