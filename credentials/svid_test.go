package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
)

func svAgents(t *testing.T, opts ...identity.DevOption) (*identity.DevIssuer, *identity.DevAgent, *identity.DevAgent) {
	t.Helper()
	d, err := identity.NewDevIssuer("example.org", opts...)
	if err != nil {
		t.Fatal(err)
	}
	a, err := d.Agent("/agent/x")
	if err != nil {
		t.Fatal(err)
	}
	o, err := d.Agent("/agent/other")
	if err != nil {
		t.Fatal(err)
	}
	return d, a, o
}

func svReq(a *identity.DevAgent) credentials.Request {
	return credentials.Request{
		Requirement: credentials.Requirement{
			Name: "svc", Provider: "svid", Audience: "https://svc.example.com",
			Resources: []string{"https://svc.example.com/v1", "https://files.example.com/"},
		},
		TaskID: "task-svid", Agent: a.ID().String(), JWTIssuer: a,
	}
}

func TestSVIDProviderIssue(t *testing.T) {
	d, a, _ := svAgents(t)
	p := credentials.NewSVIDProvider()
	req := svReq(a)
	before := time.Now()
	c, err := p.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	tok := c.Secret.Reveal()
	for _, aud := range append([]string{req.Audience}, req.Resources...) {
		s, err := identity.VerifyJWTSVID(tok, d, aud)
		if err != nil {
			t.Errorf("SVID does not verify for %q: %v", aud, err)
			continue
		}
		if s.ID != a.ID() {
			t.Errorf("SVID names %s, want %s", s.ID, a.ID())
		}
		if !c.ExpiresAt.Equal(s.Expiry) {
			t.Errorf("ExpiresAt %s, SVID expiry %s", c.ExpiresAt, s.Expiry)
		}
	}
	if _, err := identity.VerifyJWTSVID(tok, d, "https://elsewhere.example.com"); err == nil {
		t.Errorf("SVID verifies for an audience it was not minted for")
	}
	if c.IssuedAt.Before(before.Add(-time.Second)) || !c.ExpiresAt.After(time.Now()) {
		t.Errorf("IssuedAt %s ExpiresAt %s", c.IssuedAt, c.ExpiresAt)
	}
	if len(c.Scopes) != 0 {
		t.Errorf("Scopes %q", c.Scopes)
	}
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, tok) || strings.Contains(s, tok[strings.LastIndex(tok, ".")+1:]) {
			t.Errorf("printed credential shows the SVID: %s", s)
		}
	}
}

func TestSVIDProviderRefusals(t *testing.T) {
	_, a, o := svAgents(t)
	p := credentials.NewSVIDProvider()
	for _, tc := range []struct {
		name string
		edit func(*credentials.Request)
	}{
		{"scopes", func(r *credentials.Request) { r.Scopes = []string{"read"} }},
		{"nil JWTIssuer", func(r *credentials.Request) { r.JWTIssuer = nil }},
		{"another agent's issuer", func(r *credentials.Request) { r.JWTIssuer = o }},
		{"no audience", func(r *credentials.Request) { r.Audience = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := svReq(a)
			tc.edit(&req)
			if c, err := p.Issue(context.Background(), req); err == nil || c != nil {
				t.Errorf("Issue = %v, %v; want a refusal", c, err)
			}
		})
	}
}

func TestSVIDProviderRevoke(t *testing.T) {
	_, a, _ := svAgents(t)
	p := credentials.NewSVIDProvider()
	c, err := p.Issue(context.Background(), svReq(a))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Revoke(context.Background(), c); !errors.Is(err, credentials.ErrNotRevocable) {
		t.Errorf("Revoke = %v, want ErrNotRevocable", err)
	}
}

func TestSVIDProviderBroker(t *testing.T) {
	d, a, _ := svAgents(t)
	b := credentials.NewBroker(credentials.WithProvider("svid", credentials.NewSVIDProvider()),
		credentials.WithRetry(3, time.Millisecond), credentials.WithAttemptTimeout(50*time.Millisecond))
	req := svReq(a)
	c, err := b.Lease(context.Background(), req)
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	if _, err := identity.VerifyJWTSVID(c.Secret.Reveal(), d, req.Audience); err != nil {
		t.Errorf("leased SVID: %v", err)
	}
	if c.Name != "svc" || c.TaskID != req.TaskID || c.Agent != req.Agent || c.LeaseID == "" {
		t.Errorf("lease metadata %+v", c)
	}
	revs, err := b.Revoke(context.Background(), req.TaskID)
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if len(revs) != 1 || !revs[0].NotRevocable || revs[0].Err != nil || revs[0].Attempts != 1 {
		t.Errorf("revocations %+v; want one NotRevocable after 1 attempt", revs)
	}

	// Scopes are refused through the broker too, and not retried.
	req.TaskID, req.Scopes = "task-svid-2", []string{"read"}
	if c, err := b.Lease(context.Background(), req); err == nil {
		t.Errorf("Lease with scopes = %v", c)
	}
}

// TestSVIDProviderExpired: an identity source minting already expired
// SVIDs (its clock is an hour behind) gets no lease.
func TestSVIDProviderExpired(t *testing.T) {
	d, a, _ := svAgents(t, identity.WithDevClock(func() time.Time { return time.Now().Add(-time.Hour) }), identity.WithDevTTL(0, time.Minute))
	p := credentials.NewSVIDProvider()
	req := svReq(a)
	c, err := p.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if _, err := identity.VerifyJWTSVID(c.Secret.Reveal(), d, req.Audience); err == nil {
		t.Fatalf("an expired SVID verifies")
	}
	b := credentials.NewBroker(credentials.WithProvider("svid", p), credentials.WithRetry(3, time.Millisecond))
	if c, err := b.Lease(context.Background(), req); err == nil {
		t.Errorf("Lease of an expired SVID = %v (expires %s)", c, c.ExpiresAt)
	}
}
