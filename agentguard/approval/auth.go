package approval

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Authenticator names the approver who sent r, or returns an error when r
// does not authenticate one. The Queue's HTTP handler takes the approver's
// name only from here, never from what the request says of itself.
type Authenticator func(r *http.Request) (approver string, err error)

// tokenEntry is one bearer token, kept as its SHA-256 so that every
// comparison is between equal lengths.
type tokenEntry struct {
	sum  [sha256.Size]byte
	name string
}

// Tokens authenticates "Authorization: Bearer <token>" against tokens, a
// map from token to approver name. Tokens are compared in constant time,
// every one of them on every request, and never appear in an error. Empty
// tokens and empty names are ignored. The map is copied.
func Tokens(tokens map[string]string) Authenticator {
	entries := make([]tokenEntry, 0, len(tokens))
	for tok, name := range tokens {
		if tok == "" || name == "" {
			continue
		}
		entries = append(entries, tokenEntry{sum: sha256.Sum256([]byte(tok)), name: name})
	}
	return func(r *http.Request) (string, error) {
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", errUnauthenticated
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		name := ""
		for _, e := range entries {
			if subtle.ConstantTimeCompare(sum[:], e.sum[:]) == 1 {
				name = e.name
			}
		}
		if name == "" {
			return "", errUnauthenticated
		}
		return name, nil
	}
}
