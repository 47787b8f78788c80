package local_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

// t0 is the tests' starting time: half past a second, so that truncation
// to the second shows.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 500_000_000, time.UTC)

// clock is a manual clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const (
	agent    = "spiffe://example.org/agent/support-bot"
	audience = "https://api.example"
)

// newIssuer returns an issuer on a manual clock.
func newIssuer(t *testing.T, opts ...local.Option) (*local.Issuer, *clock) {
	t.Helper()
	clk := newClock()
	i, err := local.NewIssuer(append([]local.Option{local.WithClock(clk.Now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return i, clk
}

// request returns a valid request for task-1 with scopes read and write.
func request() credentials.Request {
	return credentials.Request{
		TaskID: "task-1",
		Agent:  agent,
		Requirement: credentials.Requirement{
			Name:     "api",
			Provider: "local",
			Audience: audience,
			Scopes:   []string{"write", "read"},
		},
	}
}

// issue issues req and returns the credential and its token.
func issue(t *testing.T, i *local.Issuer, req credentials.Request) (*credentials.Credential, string) {
	t.Helper()
	c, err := i.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return c, c.Secret.Reveal()
}

// assertNoLeak fails if s contains any 20-byte piece of token. It never
// prints the token.
func assertNoLeak(t *testing.T, what, s, token string) {
	t.Helper()
	const n = 20
	if len(token) < n {
		if token != "" && strings.Contains(s, token) {
			t.Fatalf("%s contains the token", what)
		}
		return
	}
	for k := 0; k+n <= len(token); k++ {
		if strings.Contains(s, token[k:k+n]) {
			t.Fatalf("%s contains the token's bytes %d..%d", what, k, k+n)
		}
	}
}

type jwk = jose.JSONWebKey
