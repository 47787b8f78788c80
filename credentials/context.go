package credentials

import "context"

type ctxKey struct{}

// NewContext returns a context that carries creds, found by name with
// FromContext. The guard calls it before running a tool; agent code rarely
// needs to.
func NewContext(ctx context.Context, creds ...*Credential) context.Context {
	if len(creds) == 0 {
		return ctx
	}
	m := make(map[string]*Credential, len(creds))
	if prev, ok := ctx.Value(ctxKey{}).(map[string]*Credential); ok {
		for k, v := range prev {
			m[k] = v
		}
	}
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
