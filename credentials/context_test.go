package credentials_test

import (
	"context"
	"testing"

	"github.com/agentguard/go-sdk/credentials"
)

func TestContext(t *testing.T) {
	a := &credentials.Credential{Name: "a", LeaseID: "la"}
	b := &credentials.Credential{Name: "b", LeaseID: "lb"}
	b2 := &credentials.Credential{Name: "b", LeaseID: "lb2"}
	c := &credentials.Credential{Name: "c", LeaseID: "lc"}

	bg := context.Background()
	if got, ok := credentials.FromContext(bg, "a"); ok || got != nil {
		t.Errorf("FromContext(empty) = %v, %v", got, ok)
	}

	outer := credentials.NewContext(bg, a, b)
	inner := credentials.NewContext(outer, b2, c)
	none := credentials.NewContext(outer)

	tests := []struct {
		name string
		ctx  context.Context
		key  string
		want *credentials.Credential
	}{
		{name: "outer a", ctx: outer, key: "a", want: a},
		{name: "outer b", ctx: outer, key: "b", want: b},
		{name: "outer has no c", ctx: outer, key: "c", want: nil},
		{name: "inner hides outer a", ctx: inner, key: "a", want: nil},
		{name: "inner has its own b", ctx: inner, key: "b", want: b2},
		{name: "inner has c", ctx: inner, key: "c", want: c},
		{name: "empty set hides outer", ctx: none, key: "a", want: nil},
		{name: "unknown name", ctx: inner, key: "zzz", want: nil},
		{name: "empty name", ctx: inner, key: "", want: nil},
		{name: "derived context", ctx: context.WithValue(inner, struct{}{}, 1), key: "c", want: c},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := credentials.FromContext(tc.ctx, tc.key)
			if got != tc.want || ok != (tc.want != nil) {
				t.Errorf("FromContext(%q) = %v, %v; want %v", tc.key, got, ok, tc.want)
			}
		})
	}

	// A later credential of the same name in one call wins.
	same := credentials.NewContext(bg, b, b2)
	if got, _ := credentials.FromContext(same, "b"); got != b2 {
		t.Errorf("FromContext after NewContext(b, b2) = %v, want b2", got)
	}
}

// TestAllFromContext: a context gives exactly the credentials of the call
// it was made for, by name, never an outer call's.
func TestAllFromContext(t *testing.T) {
	a := &credentials.Credential{Name: "a"}
	b := &credentials.Credential{Name: "b"}
	c := &credentials.Credential{Name: "c"}
	if got := credentials.AllFromContext(context.Background()); len(got) != 0 {
		t.Errorf("empty context: %v", got)
	}
	outer := credentials.NewContext(context.Background(), a)
	inner := credentials.NewContext(outer, c, b)
	if got := credentials.AllFromContext(inner); len(got) != 2 || got[0] != b || got[1] != c {
		t.Errorf("AllFromContext = %v, want b and c", got)
	}
	if got := credentials.AllFromContext(credentials.NewContext(outer)); len(got) != 0 {
		t.Errorf("an empty set hides the outer call's: %v", got)
	}
}
