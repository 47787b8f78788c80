package mcpguard

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/agentguard/go-sdk/credentials"
)

// CredentialTransport returns an http.RoundTripper, for the HTTPClient of
// an mcp.StreamableClientTransport, that sends a remote tool its call's
// task credential: on each request made with a context that holds the
// credential the guard leased under name (credentials.FromContext), it
// sets header to "Bearer <value>". Requests through base (nil means
// http.DefaultTransport) made outside a guarded call, or for a tool that
// declares no such credential, go as they are, without it.
//
// The SDK (go-sdk v1.8.0) sends each JSON-RPC request with the context of
// the call that made it: the tools/call POST, and the GETs that resume its
// event stream, carry the call's context, so a Session's guarded call
// sends its credential and nothing else does (initialize, tools/list, the
// standalone stream, responses to the server's own requests). One
// exception: when the call's context ends, the SDK sends
// notifications/cancelled with a context that keeps its values, so that
// notification carries the credential to the same server too.
//
// The credential goes only where it is for, as credentials.Credential's
// Transport decides: to URLs at or under its resource indicators (or its
// audience, when that is an http(s) URL and there are none), or to the
// origins in allow (such as "https://files.example.com"). A request
// elsewhere, first or after a redirect, fails with an error matching
// credentials.ErrDestination without being sent, and one after the
// credential expired with credentials.ErrExpired: the tool call fails, and
// the server never sees it. Use a header of its own (such as
// "X-Files-Token"): with "Authorization" the credential replaces whatever
// Authorization the request had, such as the agent's JWT-SVID a guarded
// server identifies its caller by.
//
// The request given is not modified, and nothing is logged. Errors name
// the credential and its lease, never its value.
func CredentialTransport(base http.RoundTripper, name, header string, allow ...string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &credentialTransport{base: base, name: name, header: http.CanonicalHeaderKey(header), allow: append([]string(nil), allow...)}
}

type credentialTransport struct {
	base   http.RoundTripper
	name   string
	header string
	allow  []string
}

func (t *credentialTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c, ok := credentials.FromContext(r.Context(), t.name)
	if !ok || c.Secret.IsZero() {
		return t.base.RoundTrip(r)
	}
	if t.header == "" {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, fmt.Errorf("mcpguard: credential %q: no header to send it in", t.name)
	}
	// The credential's own transport checks the destination and expiry
	// and sets "Authorization: Bearer <value>" on its clone of r; move
	// that to t.header, giving back the Authorization r had.
	mv := &moveAuthorization{base: t.base, header: t.header, had: r.Header.Values("Authorization")}
	res, err := c.Transport(mv, t.allow...).RoundTrip(r)
	if err != nil && !mv.sent {
		// The credential's transport refused the request (destination,
		// expiry): it was not sent.
		return nil, fmt.Errorf("mcpguard: credential %q not sent: %w", t.name, err)
	}
	return res, err
}

// moveAuthorization moves the Authorization header the credential's
// transport set to header, then sends the request through base.
type moveAuthorization struct {
	base   http.RoundTripper
	header string
	had    []string
	sent   bool
}

func (m *moveAuthorization) RoundTrip(r *http.Request) (*http.Response, error) {
	m.sent = true
	if m.header == "Authorization" {
		return m.base.RoundTrip(r)
	}
	// r is the credential transport's clone, with a header map of its own.
	v := r.Header.Get("Authorization")
	r.Header.Del("Authorization")
	for _, h := range m.had {
		r.Header.Add("Authorization", h)
	}
	if !strings.HasPrefix(v, "Bearer ") {
		// Not what the credential's transport is documented to set:
		// send nothing rather than guess.
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, errors.New("mcpguard: credential transport set no bearer token")
	}
	r.Header.Set(m.header, v)
	return m.base.RoundTrip(r)
}
