package local

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/agentguard/go-sdk/credentials"
)

type claimsKey struct{}

// ClaimsFromContext returns the verified claims Middleware put in a
// request's context.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// Middleware returns middleware that lets a request through only with an
// "Authorization: Bearer <token>" header whose token Verify accepts for
// audience and scopes, and puts the token's *Claims in the request's
// context (see ClaimsFromContext). It answers, as RFC 6750 describes:
//
//   - 401 with WWW-Authenticate: Bearer, without an error code, when the
//     request has no bearer token at all (section 3.1);
//   - 401 with Bearer error="invalid_token" when the token is malformed,
//     invalid, expired, revoked or for another audience;
//   - 403 with Bearer error="insufficient_scope" and the scopes needed
//     when it lacks one of scopes;
//   - 503 when a remote verifier cannot reach the issuer (it fails closed).
//
// Neither the response nor anything else it writes contains the token.
// Middleware panics if audience is empty, as that is a programming error.
func (v *Verifier) Middleware(audience string, scopes ...string) func(http.Handler) http.Handler {
	if audience == "" {
		panic("local: Middleware needs an audience")
	}
	scopes = sortedSet(scopes)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, bearer := bearerToken(r)
			if !bearer {
				deny(w, http.StatusUnauthorized, "Bearer")
				return
			}
			claims, err := v.Verify(r.Context(), token, audience, scopes...)
			switch {
			case err == nil:
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
			case errors.Is(err, ErrScope):
				deny(w, http.StatusForbidden, `Bearer error="insufficient_scope", error_description="The access token lacks a required scope", scope=`+quote(strings.Join(scopes, " ")))
			case errors.Is(err, ErrUnavailable):
				deny(w, http.StatusServiceUnavailable, "")
			default:
				deny(w, http.StatusUnauthorized, `Bearer error="invalid_token", error_description=`+quote(describe(err)))
			}
		})
	}
}

// bearerToken returns the request's bearer token, and whether it has an
// Authorization header of the Bearer scheme at all.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// describe gives a fixed error description for err: never the error text.
func describe(err error) string {
	switch {
	case errors.Is(err, ErrExpired):
		return "The access token expired"
	case errors.Is(err, credentials.ErrRevoked):
		return "The access token was revoked"
	case errors.Is(err, ErrAudience):
		return "The access token is not for this resource"
	default:
		return "The access token is invalid"
	}
}

func deny(w http.ResponseWriter, code int, challenge string) {
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, http.StatusText(code), code)
}

// quote returns s as an HTTP quoted-string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
