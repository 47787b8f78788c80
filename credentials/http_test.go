package credentials_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
)

const htToken = "tok-" + canary + "-bearer"

// htServer counts the requests it receives and records their paths and
// Authorization headers. /redirect?to=URL answers 302 to URL.
type htServer struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
	auth  []string
}

func newHTServer(t *testing.T) *htServer {
	t.Helper()
	s := &htServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.EscapedPath())
		s.auth = append(s.auth, r.Header.Get("Authorization"))
		s.mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/redirect") {
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *htServer) seen() (paths, auth []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.paths...), append([]string(nil), s.auth...)
}

func (s *htServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.paths)
}

func (s *htServer) port() string {
	u, _ := url.Parse(s.URL)
	return u.Port()
}

func htCred(resources []string, audience string) *credentials.Credential {
	return &credentials.Credential{
		Name: "api", LeaseID: "lease-http", Audience: audience, Resources: resources,
		Secret: credentials.NewSecret(htToken), IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour),
	}
}

// htGet sends GET rawURL through rt and returns the error, closing any
// response.
func htGet(t *testing.T, rt http.RoundTripper, rawURL string) error {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatalf("NewRequest(%q): %v", rawURL, err)
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return err
}

// htRefused checks that GET rawURL fails with ErrDestination, names no
// token, and sends nothing to any of servers.
func htRefused(t *testing.T, rt http.RoundTripper, rawURL string, servers ...*htServer) {
	t.Helper()
	before := make([]int, len(servers))
	for i, s := range servers {
		before[i] = s.count()
	}
	err := htGet(t, rt, rawURL)
	if !errors.Is(err, credentials.ErrDestination) {
		t.Errorf("GET %s: %v, want ErrDestination", rawURL, err)
	}
	if err != nil && strings.Contains(err.Error(), canary) {
		t.Errorf("GET %s: error quotes the token: %v", rawURL, err)
	}
	for i, s := range servers {
		if n := s.count(); n != before[i] {
			t.Errorf("GET %s: server %s got %d request(s)", rawURL, s.URL, n-before[i])
		}
	}
}

// htAllowed checks that GET rawURL reaches s with the bearer token, at
// wantPath.
func htAllowed(t *testing.T, rt http.RoundTripper, rawURL string, s *htServer, wantPath string) {
	t.Helper()
	n := s.count()
	if err := htGet(t, rt, rawURL); err != nil {
		t.Errorf("GET %s: %v", rawURL, err)
		return
	}
	paths, auth := s.seen()
	if len(paths) != n+1 {
		t.Errorf("GET %s: server got %d requests, want 1", rawURL, len(paths)-n)
		return
	}
	if paths[n] != wantPath {
		t.Errorf("GET %s: server saw path %q, want %q", rawURL, paths[n], wantPath)
	}
	if auth[n] != "Bearer "+htToken {
		t.Errorf("GET %s: Authorization %q, want the bearer token", rawURL, auth[n])
	}
}

func TestTransportResources(t *testing.T) {
	a, other := newHTServer(t), newHTServer(t)
	c := htCred([]string{a.URL + "/api"}, "spiffe://example.org/service") // a non-http audience grants nothing
	rt := c.Transport(nil)

	for _, tc := range []struct{ url, path string }{
		{a.URL + "/api", "/api"},
		{a.URL + "/api/", "/api/"},
		{a.URL + "/api/v1/items?q=1", "/api/v1/items"},
		{a.URL + "/api/v1/../v2", "/api/v1/../v2"},
	} {
		htAllowed(t, rt, tc.url, a, tc.path)
	}
	host := strings.TrimPrefix(a.URL, "http://")
	for _, u := range []string{
		other.URL + "/api",                      // another port (another host)
		"http://localhost:" + a.port() + "/api", // another host name for the same server
		"https://" + host + "/api",              // another scheme
		"ftp://" + host + "/api",                // not http at all
		a.URL + "/apix",                         // sibling path
		a.URL + "/ap",                           // prefix of the path
		a.URL + "/",                             // parent
		a.URL,                                   // no path
		a.URL + "/admin",                        // elsewhere
		a.URL + "/api/../admin",                 // dot segments out
		a.URL + "/api/%2e%2e/admin",             // escaped dot segments
		a.URL + "/api/%2E%2E/admin",             // upper-case escapes
		a.URL + "/api/..%2fadmin",               // escaped slash
		a.URL + "/api/./../admin",               // mixed
		"http://user:pass@127.0.0.1:" + other.port() + "/api", // userinfo does not change the host
	} {
		htRefused(t, rt, u, a, other)
	}
	if _, auth := a.seen(); len(auth) != 4 {
		t.Errorf("server got %d requests, want the 4 allowed ones", len(auth))
	}
}

func TestTransportAudienceAndAllowList(t *testing.T) {
	a, b, other := newHTServer(t), newHTServer(t), newHTServer(t)

	t.Run("http audience", func(t *testing.T) {
		rt := htCred(nil, b.URL+"/svc").Transport(nil)
		htAllowed(t, rt, b.URL+"/svc/x", b, "/svc/x")
		htRefused(t, rt, b.URL+"/svcx", a, b, other)
		htRefused(t, rt, b.URL+"/other", a, b, other)
		htRefused(t, rt, a.URL+"/svc/x", a, b, other)
	})
	t.Run("audience origin", func(t *testing.T) {
		rt := htCred(nil, b.URL).Transport(nil)
		htAllowed(t, rt, b.URL+"/anything", b, "/anything")
		htRefused(t, rt, a.URL+"/anything", a, b, other)
	})
	t.Run("allow list", func(t *testing.T) {
		rt := htCred([]string{a.URL + "/api"}, "urn:example:api").Transport(nil, b.URL, "not a url", "ftp://"+strings.TrimPrefix(other.URL, "http://"))
		htAllowed(t, rt, a.URL+"/api/x", a, "/api/x")
		htAllowed(t, rt, b.URL+"/whatever/path", b, "/whatever/path")
		htRefused(t, rt, other.URL+"/api", a, b, other)
		htRefused(t, rt, a.URL+"/admin", a, b, other)
	})
	t.Run("resources narrower than the audience", func(t *testing.T) {
		// With resources, the audience's origin is not a destination.
		rt := htCred([]string{b.URL + "/api"}, b.URL).Transport(nil)
		htAllowed(t, rt, b.URL+"/api/x", b, "/api/x")
		htRefused(t, rt, b.URL+"/admin", a, b, other)
	})
	t.Run("nothing", func(t *testing.T) {
		rt := htCred(nil, "").Transport(nil)
		htRefused(t, rt, a.URL+"/", a, b, other)
	})
	t.Run("Host header for another host", func(t *testing.T) {
		rt := htCred([]string{b.URL + "/api"}, "").Transport(nil)
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, b.URL+"/api/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "internal.example"
		n := b.count()
		if _, err := rt.RoundTrip(req); !errors.Is(err, credentials.ErrDestination) {
			t.Errorf("Host %q: %v, want ErrDestination", req.Host, err)
		}
		if b.count() != n {
			t.Error("the request was sent")
		}
	})
	if n := other.count(); n != 0 {
		t.Errorf("the other server got %d requests", n)
	}
}

func TestTransportRedirects(t *testing.T) {
	a, other := newHTServer(t), newHTServer(t)
	rt := htCred([]string{a.URL + "/api"}, "").Transport(nil)

	t.Run("to another host", func(t *testing.T) {
		err := htGet(t, rt, a.URL+"/api/redirect?to="+url.QueryEscape(other.URL+"/steal"))
		if !errors.Is(err, credentials.ErrDestination) {
			t.Errorf("redirect to another host: %v, want ErrDestination", err)
		}
		if other.count() != 0 {
			t.Errorf("the other host got %d requests", other.count())
		}
	})
	t.Run("out of the resource on the same host", func(t *testing.T) {
		n := a.count()
		err := htGet(t, rt, a.URL+"/api/redirect?to=/admin")
		if !errors.Is(err, credentials.ErrDestination) {
			t.Errorf("redirect to /admin: %v, want ErrDestination", err)
		}
		if got := a.count() - n; got != 1 {
			t.Errorf("%d requests to the server, want only the first", got)
		}
	})
	t.Run("within the resource", func(t *testing.T) {
		n := a.count()
		if err := htGet(t, rt, a.URL+"/api/redirect?to=/api/next"); err != nil {
			t.Fatalf("redirect within /api: %v", err)
		}
		paths, auth := a.seen()
		if len(paths) != n+2 || paths[n+1] != "/api/next" || auth[n+1] != "Bearer "+htToken {
			t.Errorf("after redirect: paths %q auth %q", paths[n:], auth[n:])
		}
	})
	if other.count() != 0 {
		t.Errorf("the other host got %d requests", other.count())
	}
}

func TestTransportExpired(t *testing.T) {
	a := newHTServer(t)
	c := htCred([]string{a.URL + "/api"}, "")
	rt := c.Transport(nil)
	htAllowed(t, rt, a.URL+"/api/x", a, "/api/x")

	c.ExpiresAt = time.Now().Add(-time.Second)
	n := a.count()
	err := htGet(t, rt, a.URL+"/api/x")
	if !errors.Is(err, credentials.ErrExpired) {
		t.Errorf("after expiry: %v, want ErrExpired", err)
	}
	if err != nil && strings.Contains(err.Error(), canary) {
		t.Errorf("error quotes the token: %v", err)
	}
	if a.count() != n {
		t.Errorf("an expired credential was sent")
	}

	// Expired from the start, through HTTPClient.
	exp := htCred([]string{a.URL + "/api"}, "")
	exp.ExpiresAt = time.Now().Add(-time.Minute)
	hc, err := credentials.HTTPClient(credentials.NewContext(context.Background(), exp), "api")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(a.URL + "/api/x")
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, credentials.ErrExpired) {
		t.Errorf("expired credential via HTTPClient: %v, want ErrExpired", err)
	}
	if a.count() != n {
		t.Errorf("an expired credential was sent")
	}
}

func TestTransportDoesNotModifyRequest(t *testing.T) {
	a := newHTServer(t)
	rt := htCred([]string{a.URL + "/api"}, "").Transport(nil)
	for _, callerAuth := range []string{"", "Basic Y2FsbGVyOnB3"} {
		req, err := http.NewRequest(http.MethodGet, a.URL+"/api/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Caller", "1")
		if callerAuth != "" {
			req.Header.Set("Authorization", callerAuth)
		}
		hdr := req.Header.Clone()
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(req.Header) != len(hdr) || req.Header.Get("Authorization") != callerAuth || req.Header.Get("X-Caller") != "1" {
			t.Errorf("caller's headers changed to %v", req.Header)
		}
		_, auth := a.seen()
		if auth[len(auth)-1] != "Bearer "+htToken {
			t.Errorf("server saw Authorization %q", auth[len(auth)-1])
		}
	}
}

// htBody records whether it was closed.
type htBody struct {
	io.Reader
	mu     sync.Mutex
	closed bool
}

func (b *htBody) Close() error { b.mu.Lock(); b.closed = true; b.mu.Unlock(); return nil }

// TestTransportRefusedClosesBody: a RoundTripper must close the body of a
// request it does not send.
func TestTransportRefusedClosesBody(t *testing.T) {
	a := newHTServer(t)
	c := htCred([]string{a.URL + "/api"}, "")
	for _, u := range []string{a.URL + "/admin", a.URL + "/api/x"} {
		if u == a.URL+"/api/x" {
			c.ExpiresAt = time.Now().Add(-time.Second)
		}
		body := &htBody{Reader: strings.NewReader("payload")}
		req, err := http.NewRequest(http.MethodPost, u, body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Transport(nil).RoundTrip(req); err == nil {
			t.Fatalf("POST %s sent", u)
		}
		body.mu.Lock()
		if !body.closed {
			t.Errorf("POST %s: body of the refused request not closed", u)
		}
		body.mu.Unlock()
	}
	if a.count() != 0 {
		t.Errorf("%d requests sent", a.count())
	}
}

func TestHTTPClient(t *testing.T) {
	a, b := newHTServer(t), newHTServer(t)
	ctx := credentials.NewContext(context.Background(), htCred([]string{a.URL + "/api"}, ""))
	hc, err := credentials.HTTPClient(ctx, "api", b.URL)
	if err != nil {
		t.Fatal(err)
	}
	htAllowed(t, hc.Transport, a.URL+"/api/x", a, "/api/x")
	htAllowed(t, hc.Transport, b.URL+"/y", b, "/y")
	resp, err := hc.Get(a.URL + "/apix")
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, credentials.ErrDestination) {
		t.Errorf("GET /apix: %v, want ErrDestination", err)
	}

	for _, tc := range []struct {
		ctx  context.Context
		name string
	}{
		{ctx, "missing"},
		{context.Background(), "api"},
	} {
		if hc, err := credentials.HTTPClient(tc.ctx, tc.name); err == nil || hc != nil {
			t.Errorf("HTTPClient(%q) = %v, %v; want an error", tc.name, hc, err)
		}
	}
}
