package mcpgoguard

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/identity"
)

func TestCallers(t *testing.T) {
	id := identity.MustParse("spiffe://example.org/agent/a")
	src := Callers()
	tests := []struct {
		name string
		ctx  context.Context
		ok   bool
	}{
		{"no caller", context.Background(), false},
		{"verified", withCaller(context.Background(), caller{id: id, expires: time.Now().Add(time.Minute)}), true},
		{"no end", withCaller(context.Background(), caller{id: id}), true},
		{"expired", withCaller(context.Background(), caller{id: id, expires: time.Now().Add(-time.Second)}), false},
		{"zero identity", withCaller(context.Background(), caller{}), false},
	}
	for _, tc := range tests {
		got, err := src.Identity(tc.ctx)
		if tc.ok != (err == nil) || (tc.ok && got.ID != id.ID) {
			t.Errorf("%s: %v, %v", tc.name, got, err)
		}
		if !tc.ok && !errors.Is(err, ErrNoCaller) {
			t.Errorf("%s: %v, want ErrNoCaller", tc.name, err)
		}
	}
}

func TestBearer(t *testing.T) {
	tests := map[string]string{
		"Bearer abc":  "abc",
		"bearer  abc": "abc",
		"Basic abc":   "",
		"Bearer":      "",
		"Bearer   ":   "",
		"":            "",
	}
	for h, want := range tests {
		r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		got, ok := bearer(r)
		if got != want || ok != (want != "") {
			t.Errorf("bearer(%q) = %q, %v", h, got, ok)
		}
	}
}
