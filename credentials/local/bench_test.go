package local_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

func benchRequest() credentials.Request {
	return credentials.Request{
		Requirement: credentials.Requirement{Name: "c", Provider: "local", Audience: "https://api.example", Scopes: []string{"read"}, TTL: time.Minute},
		TaskID:      "task-1", Agent: "spiffe://example.org/agent/a",
	}
}

// BenchmarkIssue signs one access token (ES256).
func BenchmarkIssue(b *testing.B) {
	iss, err := local.NewIssuer()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := iss.Issue(ctx, benchRequest()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is what a service pays per request: one ES256
// signature check, claims and the revocation list, in-process.
func BenchmarkVerify(b *testing.B) {
	iss, err := local.NewIssuer()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c, err := iss.Issue(ctx, benchRequest())
	if err != nil {
		b.Fatal(err)
	}
	tok, v := c.Secret.Reveal(), iss.Verifier()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok, "https://api.example", "read"); err != nil {
			b.Fatal(err)
		}
	}
}
