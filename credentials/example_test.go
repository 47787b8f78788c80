package credentials_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/agentguard/go-sdk/credentials"
)

// A Secret prints, logs and encodes as [REDACTED] in every format; only
// Reveal gives the value.
func ExampleSecret() {
	s := credentials.NewSecret("s3cr3t-token")
	b, _ := json.Marshal(map[string]any{"token": s})
	fmt.Println(s)
	fmt.Printf("%q %#v %x\n", s, s, s)
	fmt.Println(string(b))
	fmt.Println(len(s.Reveal()))
	// Output:
	// [REDACTED]
	// [REDACTED] [REDACTED] [REDACTED]
	// {"token":"[REDACTED]"}
	// 12
}

// A broker leases one credential per task and scope, and revokes them all
// when the task ends.
func ExampleBroker() {
	p := credentials.NewStaticProvider("token")
	b := credentials.NewBroker(credentials.WithProvider("static", p))
	ctx := context.Background()
	req := credentials.Request{
		TaskID:      "task-1",
		Requirement: credentials.Requirement{Name: "api", Provider: "static", Audience: "api.example", Scopes: []string{"read"}},
	}
	c1, _ := b.Lease(ctx, req)
	c2, _ := b.Lease(ctx, req)
	fmt.Println(c1.LeaseID == c2.LeaseID, p.Issued())

	revs, err := b.Revoke(ctx, "task-1")
	fmt.Println(len(revs), err, p.Check(c1.LeaseID))
	// Output:
	// true 1
	// 1 <nil> credentials: revoked
}
