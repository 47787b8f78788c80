package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
)

// Config says where the authorization server is and how the agent
// authenticates to it.
type Config struct {
	// TokenURL is the server's token endpoint. Required.
	TokenURL string
	// RevocationURL is the server's RFC 7009 revocation endpoint. Without
	// it a lease cannot be revoked, and ending its task reports that.
	RevocationURL string
	// Auth is how the agent authenticates. Required.
	Auth ClientAuth
	// SVIDAudience is the audience of the JWT-SVIDs the agent presents to
	// the server (client assertions, subject and actor tokens). The
	// default is TokenURL.
	SVIDAudience string
	// HTTPClient sends the requests; nil means http.DefaultClient. The
	// broker bounds each attempt with its own timeout.
	HTTPClient *http.Client
}

func (c *Config) check() error {
	if c.TokenURL == "" {
		return errors.New("oauth: no token URL")
	}
	for name, u := range map[string]string{"token": c.TokenURL, "revocation": c.RevocationURL} {
		if err := checkEndpoint(u); u != "" && err != nil {
			return fmt.Errorf("oauth: %s URL: %w", name, err)
		}
	}
	if c.Auth.kind == authNone {
		return errNoAuth
	}
	return nil
}

// checkEndpoint requires https, or http to a loopback address (a server
// in the same host or test): secrets and tokens go in the request body.
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return errors.New("plain http to a remote host would expose secrets; use https")
	}
	return fmt.Errorf("scheme %q: use https", u.Scheme)
}

// client returns the HTTP client for the server's endpoints: the
// configured one, made never to follow redirects, which would resend the
// form (secrets, subject tokens, the token to revoke) to another origin.
func (c *Config) client() *http.Client {
	base := c.HTTPClient
	if base == nil {
		base = http.DefaultClient
	}
	cl := *base
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cl
}

func (c *Config) svidAudience() string {
	if c.SVIDAudience != "" {
		return c.SVIDAudience
	}
	return c.TokenURL
}

// Error is a refusal from the authorization server (RFC 6749 §5.2).
type Error struct {
	// Endpoint is "token" or "revocation".
	Endpoint string
	// StatusCode is the HTTP status.
	StatusCode int
	// Code and Description are the server's "error" and
	// "error_description", scrubbed of anything the agent sent.
	Code        string
	Description string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("oauth: %s endpoint answered %d", e.Endpoint, e.StatusCode)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// maxDescription bounds how much of a server's error description is kept.
const maxDescription = 200

// newError builds the error of an unsuccessful answer. 5xx and 429 are
// temporary. The body is read for RFC 6749's error fields only; values in
// sent are scrubbed from them.
func newError(endpoint string, status int, body []byte, sent []string) error {
	var f struct {
		Code        string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &f)
	e := &Error{Endpoint: endpoint, StatusCode: status, Code: clip(scrub(f.Code, sent), 64), Description: clip(scrub(f.Description, sent), maxDescription)}
	if status >= 500 || status == http.StatusTooManyRequests {
		return fmt.Errorf("%w: %w", credentials.ErrUnavailable, e)
	}
	return e
}

// clip shortens s to n bytes. Scrub before clipping: a secret cut in two
// no longer matches.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// scrub removes the values the agent sent from server-provided text.
func scrub(s string, sent []string) string {
	for _, v := range sent {
		s = credentials.Scrub(s, &credentials.Credential{Secret: credentials.NewSecret(v)})
	}
	return s
}

// transportError classifies an error of sending a request: every network
// failure is temporary, unless the caller's context is done. The URL error
// names the endpoint, never the body.
func transportError(ctx context.Context, endpoint string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("oauth: %s endpoint: %w", endpoint, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%w: oauth: %s endpoint: %v", credentials.ErrUnavailable, endpoint, err)
}

// post sends form to endpoint, authenticated, and returns the answer's
// status and body (at most 1 MiB).
func (c *Config) post(ctx context.Context, name, endpoint string, form url.Values, authz string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, fmt.Errorf("oauth: %s endpoint: bad URL", name)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return 0, nil, transportError(ctx, name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, transportError(ctx, name, err)
	}
	return resp.StatusCode, body, nil
}

// tokenResponse is a successful token endpoint answer (RFC 6749 §5.1, RFC
// 8693 §2.2.1).
type tokenResponse struct {
	AccessToken     string          `json:"access_token"`
	TokenType       string          `json:"token_type"`
	ExpiresIn       json.RawMessage `json:"expires_in"`
	Scope           string          `json:"scope"`
	IssuedTokenType string          `json:"issued_token_type"`
}

// credential makes the credential of a token the server issued, expiring
// after expiresIn (or the requirement's TTL when the server did not say).
// Granted scopes are those the server named, if it did.
func credential(tok string, expiresIn time.Duration, scope string, req credentials.Request, now time.Time) *credentials.Credential {
	if expiresIn <= 0 {
		expiresIn = req.TTL
		if expiresIn <= 0 {
			expiresIn = credentials.DefaultTTL
		}
	}
	c := &credentials.Credential{
		LeaseID:   credentials.NewLeaseID(),
		Secret:    credentials.NewSecret(tok),
		IssuedAt:  now,
		ExpiresAt: now.Add(expiresIn),
	}
	if scope = strings.TrimSpace(scope); scope != "" {
		c.Scopes = strings.Fields(scope)
	}
	return c
}

// revoker revokes the tokens a provider issued, with RFC 7009. It keeps,
// per lease, the agent's JWT-SVID source, for client assertions.
type revoker struct {
	cfg    *Config
	mu     sync.Mutex
	issued map[string]lease
}

type lease struct {
	iss   identity.JWTIssuer
	agent string
}

func (r *revoker) remember(c *credentials.Credential, req credentials.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.issued == nil {
		r.issued = map[string]lease{}
	}
	r.issued[c.LeaseID] = lease{iss: req.JWTIssuer, agent: req.Agent}
}

// Revoke revokes c at the server's revocation endpoint.
func (r *revoker) Revoke(ctx context.Context, c *credentials.Credential) error {
	if r.cfg.RevocationURL == "" {
		return errors.New("oauth: no revocation endpoint configured: the token stays valid until it expires")
	}
	r.mu.Lock()
	l, ok := r.issued[c.LeaseID]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("oauth: lease %s was not issued by this provider", c.LeaseID)
	}
	form := url.Values{"token": {c.Secret.Reveal()}, "token_type_hint": {"access_token"}}
	h := http.Header{}
	sent, err := r.cfg.Auth.apply(ctx, l.iss, l.agent, r.cfg.svidAudience(), form, h)
	if err != nil {
		return err
	}
	sent = append(sent, c.Secret.Reveal())
	status, body, err := r.cfg.post(ctx, "revocation", r.cfg.RevocationURL, form, h.Get("Authorization"))
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return newError("revocation", status, body, sent)
	}
	r.mu.Lock()
	delete(r.issued, c.LeaseID)
	r.mu.Unlock()
	return nil
}
