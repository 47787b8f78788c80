package local

import (
	"encoding/json"
	"net/http"
)

// Paths the issuer's Handler serves, relative to its base URL.
const (
	JWKSPath    = "/.well-known/jwks.json"
	RevokedPath = "/revoked"
)

// revokedDoc is the body of GET /revoked.
type revokedDoc struct {
	Revoked []Revocation `json:"revoked"`
}

// Handler serves the issuer's public state, for remote verifiers:
//
//	GET /.well-known/jwks.json  the JWKS (application/json), public keys only
//	GET /revoked                {"revoked":[{"jti":…,"exp":…},…]}
//
// HEAD works as GET; other methods get 405 and other paths 404. Responses
// are not to be cached. Neither holds a secret: no token and no private key.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+JWKSPath, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, i.JWKS())
	})
	mux.HandleFunc("GET "+RevokedPath, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, revokedDoc{Revoked: i.Revoked()})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}
