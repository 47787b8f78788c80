package credentials

import (
	"fmt"
	"io"
	"log/slog"
)

// Redacted is what a Secret prints as, in every format.
const Redacted = "[REDACTED]"

// Secret holds a credential value that must never be printed, logged, traced,
// audited or encoded. String, GoString, Format (every verb), MarshalJSON,
// MarshalText and LogValue all give [Redacted]. The value is reachable only
// through Reveal.
//
// The value is held by a closure. fmt prints a Secret in an unexported field
// of another struct by reflection, without calling its methods, and
// reflection reaches any field or pointer target, but never a closure's
// captured variables: there it prints a function address.
type Secret struct {
	v func() string
}

// NewSecret wraps value.
func NewSecret(value string) Secret { return Secret{v: func() string { return value }} }

// Reveal returns the raw value. Call it only where the value is handed to
// the service that needs it, such as an Authorization header.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return s.v()
}

// IsZero reports whether the secret holds no value.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

// String returns Redacted.
func (Secret) String() string { return Redacted }

// GoString returns Redacted, for %#v.
func (Secret) GoString() string { return Redacted }

// Format writes Redacted for every verb and flag.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, Redacted) }

// MarshalJSON returns Redacted as a JSON string.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText returns Redacted.
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue returns Redacted, so slog never sees the value.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

var (
	_ fmt.Stringer   = Secret{}
	_ fmt.GoStringer = Secret{}
	_ fmt.Formatter  = Secret{}
	_ slog.LogValuer = Secret{}
)
