package credentials_test

import (
	"context"
	"testing"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/credentialstest"
)

// BenchmarkLeaseCached is the hot path of every call after the first:
// a lease served from the task's cache, no provider, no I/O.
func BenchmarkLeaseCached(b *testing.B) {
	p := credentialstest.NewProvider()
	br := credentials.NewBroker(credentials.WithProvider("p", p))
	req := credentials.Request{
		Requirement: credentials.Requirement{Name: "c", Provider: "p", Audience: "https://api.example", Scopes: []string{"b", "a"}},
		TaskID:      "t", Agent: "spiffe://example.org/a",
	}
	ctx := context.Background()
	if _, err := br.Lease(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := br.Lease(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if p.Issued() != 1 {
		b.Fatalf("%d issuances, want 1", p.Issued())
	}
}

// BenchmarkLeaseNewTask is a task's first lease: one issuance by a
// provider that does no I/O, and its revocation.
func BenchmarkLeaseNewTask(b *testing.B) {
	p := credentialstest.NewProvider()
	br := credentials.NewBroker(credentials.WithProvider("p", p))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		req := credentials.Request{
			Requirement: credentials.Requirement{Name: "c", Provider: "p", Audience: "https://api.example", Scopes: []string{"a"}},
			TaskID:      "t", Agent: "spiffe://example.org/a",
		}
		if _, err := br.Lease(ctx, req); err != nil {
			b.Fatal(err)
		}
		if _, err := br.Revoke(ctx, "t"); err != nil {
			b.Fatal(err)
		}
	}
}
