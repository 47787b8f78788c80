package credentials

import (
	"context"
	"slices"
	"strings"
)

type ctxKey struct{}

// NewContext returns a context that carries exactly creds, found by name
// with FromContext. Credentials carried by ctx are not visible through the
// new context: a tool called from inside another tool sees only its own.
// The guard calls it before running every tool; agent code rarely needs to.
func NewContext(ctx context.Context, creds ...*Credential) context.Context {
	m := make(map[string]*Credential, len(creds))
	for _, c := range creds {
		m[c.Name] = c
	}
	return context.WithValue(ctx, ctxKey{}, m)
}

// FromContext returns the credential the tool declared under name.
func FromContext(ctx context.Context, name string) (*Credential, bool) {
	m, _ := ctx.Value(ctxKey{}).(map[string]*Credential)
	c, ok := m[name]
	return c, ok
}

// AllFromContext returns every credential ctx carries, by name: those of
// the tool being called. Adapters use it to remove their values from what
// a tool returns before a model reads it (Scrub).
func AllFromContext(ctx context.Context) []*Credential {
	m, _ := ctx.Value(ctxKey{}).(map[string]*Credential)
	out := make([]*Credential, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Credential) int { return strings.Compare(a.Name, b.Name) })
	return out
}
