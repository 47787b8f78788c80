package credentials

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// ErrDestination is returned by a credential's transport for a request to
// a URL the credential is not for; the request is not sent.
var ErrDestination = errors.New("credentials: request to a destination the credential is not for")

// ErrExpired is returned by a credential's transport once the credential
// has expired; the request is not sent.
var ErrExpired = errors.New("credentials: credential expired")

// Transport returns a RoundTripper that sends c as a bearer token
// ("Authorization: Bearer …") on every request through base (nil means
// http.DefaultTransport).
//
// It sends the token only where the credential is for: to URLs at or under
// one of its resource indicators (or, when it has none, its audience if
// that is an http(s) URL), and to origins listed in allow (such as
// "https://api.example.com"). A request whose Host header names another
// host than its URL is refused too.
// A request anywhere else fails with ErrDestination without being sent, so
// a URL chosen by a model cannot exfiltrate the token; redirects are checked
// the same way. After the credential expires, requests fail with ErrExpired.
// The request given is not modified.
func (c *Credential) Transport(base http.RoundTripper, allow ...string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	t := &bearerTransport{base: base, cred: c, now: time.Now}
	for _, r := range c.Resources {
		t.addPrefix(r)
	}
	if len(c.Resources) == 0 {
		t.addPrefix(c.Audience) // resources, when given, are narrower
	}
	for _, a := range allow {
		if u, err := url.Parse(a); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
			t.prefixes = append(t.prefixes, prefix{scheme: u.Scheme, host: strings.ToLower(u.Host), path: "/"})
		}
	}
	return t
}

// HTTPClient returns an http.Client whose requests carry the credential
// the tool declared under name, as [Credential.Transport] does. It fails if
// ctx carries no such credential.
func HTTPClient(ctx context.Context, name string, allow ...string) (*http.Client, error) {
	c, ok := FromContext(ctx, name)
	if !ok {
		return nil, fmt.Errorf("credentials: no credential %q in the context", name)
	}
	return &http.Client{Transport: c.Transport(nil, allow...)}, nil
}

type prefix struct{ scheme, host, path string }

type bearerTransport struct {
	base     http.RoundTripper
	cred     *Credential
	now      func() time.Time
	prefixes []prefix
}

func (t *bearerTransport) addPrefix(s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return
	}
	t.prefixes = append(t.prefixes, prefix{scheme: u.Scheme, host: strings.ToLower(u.Host), path: slash(path.Clean("/" + u.Path))})
}

// allowed reports whether u is at or under one of the credential's URLs,
// both as written and with dot segments resolved, as a server may.
func (t *bearerTransport) allowed(u *url.URL) bool {
	raw := slash(u.EscapedPath())
	clean := slash(path.Clean("/" + u.Path))
	for _, a := range t.prefixes {
		if u.Scheme == a.scheme && strings.ToLower(u.Host) == a.host &&
			strings.HasPrefix(raw, a.path) && strings.HasPrefix(clean, a.path) {
			return true
		}
	}
	return false
}

func slash(p string) string {
	if !strings.HasSuffix(p, "/") {
		return p + "/"
	}
	return p
}

func (t *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !t.allowed(r.URL) || (r.Host != "" && !strings.EqualFold(r.Host, r.URL.Host)) {
		closeBody(r)
		return nil, fmt.Errorf("%w: %s %s://%s (credential %q is for %s)", ErrDestination, r.Method, r.URL.Scheme, r.URL.Host, t.cred.Name, t.cred.Audience)
	}
	if t.cred.Expired(t.now()) {
		closeBody(r)
		return nil, fmt.Errorf("%w: credential %q (lease %s)", ErrExpired, t.cred.Name, t.cred.LeaseID)
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+t.cred.Secret.Reveal())
	return t.base.RoundTrip(r2)
}

// closeBody closes the body of a request that will not be sent, as a
// RoundTripper must.
func closeBody(r *http.Request) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
}
