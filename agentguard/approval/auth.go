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
// every one of them on every request, and never appear in an error. The
// map is copied.
//
// An empty token is ignored. A token whose name is empty or blank, or
// begins or ends with white space, authenticates nobody: the Authenticator
// refuses it (the handler answers 401) with an error saying the name is
// unusable, rather than let "alice " pass for another approver than
// "alice". The Queue compares names without regard to case, so tokens
// named "bob" and "Bob" are one approver.
func Tokens(tokens map[string]string) Authenticator {
	entries := make([]tokenEntry, 0, len(tokens))
	for tok, name := range tokens {
		if tok == "" {
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
		found, name := false, ""
		for _, e := range entries {
			if subtle.ConstantTimeCompare(sum[:], e.sum[:]) == 1 {
				found, name = true, e.name
			}
		}
		switch {
		case !found:
			return "", errUnauthenticated
		case !usableName(name):
			return "", errUnusableName
		}
		return name, nil
	}
}

// usableName reports whether name can name an approver: not empty, and
// without white space around it.
func usableName(name string) bool {
	return name != "" && strings.TrimSpace(name) == name
}
