package agentguard_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
)

// TestCanonicalArgs: two spellings of the same arguments have one form,
// and what the guard would deny at its arguments step is refused.
func TestCanonicalArgs(t *testing.T) {
	a, err := agentguard.CanonicalArgs(json.RawMessage(`{ "b" : 1, "a" : "\u0078" }`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := agentguard.CanonicalArgs(json.RawMessage(`{"a":"x","b":1}`))
	if err != nil || string(a) != string(b) {
		t.Fatalf("canonical forms differ: %s, %s (%v)", a, b, err)
	}
	if e, err := agentguard.CanonicalArgs(nil); err != nil || string(e) != "{}" {
		t.Fatalf("no arguments: %s, %v; want {}", e, err)
	}
	for _, bad := range []string{`[1]`, `{"a":1,"a":2}`, `{"A":1,"a":2}`, `{`, `"x"`} {
		if _, err := agentguard.CanonicalArgs(json.RawMessage(bad)); !errors.Is(err, agentguard.ErrInvalidArguments) {
			t.Errorf("CanonicalArgs(%s) = %v, want ErrInvalidArguments", bad, err)
		}
	}
}
