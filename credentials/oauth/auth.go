package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
)

// ClientAssertionTypeJWT is the RFC 7523 client assertion type.
const ClientAssertionTypeJWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// ClientAuth is how the agent authenticates to the authorization server's
// token and revocation endpoints. Make one with [ClientSecretBasic],
// [ClientSecretPost] or [SVIDAssertion].
type ClientAuth struct {
	kind   authKind
	id     string
	secret credentials.Secret
}

type authKind int

const (
	authNone authKind = iota
	authBasic
	authPost
	authSVID
)

// ClientSecretBasic authenticates with a client ID and secret in an HTTP
// Basic Authorization header (client_secret_basic).
func ClientSecretBasic(clientID string, secret credentials.Secret) ClientAuth {
	return ClientAuth{kind: authBasic, id: clientID, secret: secret}
}

// ClientSecretPost authenticates with a client ID and secret in the request
// body (client_secret_post).
func ClientSecretPost(clientID string, secret credentials.Secret) ClientAuth {
	return ClientAuth{kind: authPost, id: clientID, secret: secret}
}

// SVIDAssertion authenticates with the acting agent's JWT-SVID as an RFC
// 7523 client assertion, addressed to Config.SVIDAudience: no static secret
// exists to leak. clientID is the client the server knows the agent as;
// empty means the agent's SPIFFE ID.
//
// It needs a SPIFFE-aware authorization server, one that verifies the
// assertion against the SPIFFE trust bundle and maps its subject (the
// SPIFFE ID) to the client: a JWT-SVID has no "iss" claim, so a server
// that insists on RFC 7523's iss == sub == client_id with a key registered
// per client refuses it.
func SVIDAssertion(clientID string) ClientAuth { return ClientAuth{kind: authSVID, id: clientID} }

// String describes the method, never the secret.
func (a ClientAuth) String() string {
	switch a.kind {
	case authBasic:
		return "client_secret_basic(" + a.id + ")"
	case authPost:
		return "client_secret_post(" + a.id + ")"
	case authSVID:
		return "jwt-svid assertion(" + a.id + ")"
	}
	return "none"
}

// errNoAuth is returned when a Config sets no client authentication.
var errNoAuth = errors.New("oauth: no client authentication configured")

// svid returns a JWT-SVID of the agent for audience, checking that the
// issuer speaks for the agent the request names.
func svid(ctx context.Context, iss identity.JWTIssuer, agent, audience string) (*identity.JWTSVID, error) {
	if iss == nil {
		return nil, errors.New("oauth: the agent's identity source cannot mint JWT-SVIDs")
	}
	s, err := iss.JWTSVID(ctx, audience)
	if err != nil {
		return nil, fmt.Errorf("oauth: JWT-SVID: %w", err)
	}
	if agent != "" && s.ID.String() != agent {
		return nil, fmt.Errorf("oauth: JWT-SVID names %s, not the acting agent %s", s.ID, agent)
	}
	return s, nil
}

// apply authenticates a request to the server: it adds form values or a
// header, and returns the values it sent that must be scrubbed from any
// error text.
func (a ClientAuth) apply(ctx context.Context, iss identity.JWTIssuer, agent, audience string, form url.Values, h http.Header) ([]string, error) {
	switch a.kind {
	case authBasic:
		b := basic(a.id, a.secret.Reveal())
		h.Set("Authorization", "Basic "+b)
		// A server may quote the header: its value encodes the secret too.
		return []string{a.secret.Reveal(), b}, nil
	case authPost:
		form.Set("client_id", a.id)
		form.Set("client_secret", a.secret.Reveal())
		return []string{a.secret.Reveal()}, nil
	case authSVID:
		s, err := svid(ctx, iss, agent, audience)
		if err != nil {
			return nil, err
		}
		id := a.id
		if id == "" {
			id = s.ID.String()
		}
		form.Set("client_id", id)
		form.Set("client_assertion_type", ClientAssertionTypeJWT)
		form.Set("client_assertion", s.Marshal())
		return []string{s.Marshal()}, nil
	}
	return nil, errNoAuth
}

// basic encodes RFC 6749 §2.3.1 client credentials for a Basic header:
// each form-urlencoded, then joined and base64 encoded.
func basic(id, secret string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return r.Header.Get("Authorization")[len("Basic "):]
}
