package local_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/local"
)

// The local issuer as a broker's provider: the broker leases a token to a
// task, a tool's server verifies it, and ending the task revokes it.
func Example() {
	iss, err := local.NewIssuer()
	if err != nil {
		panic(err)
	}
	broker := credentials.NewBroker(credentials.WithProvider("local", iss))
	ctx := context.Background()

	c, err := broker.Lease(ctx, credentials.Request{
		TaskID: "task-42",
		Agent:  "spiffe://example.org/agent/support-bot",
		Requirement: credentials.Requirement{
			Name:     "tickets",
			Provider: "local",
			Audience: "https://tickets.example",
			Scopes:   []string{"tickets:read"},
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Secret) // a credential never prints its token

	// The tool presents c.Secret.Reveal(); the server checks it.
	v := iss.Verifier()
	claims, err := v.Verify(ctx, c.Secret.Reveal(), "https://tickets.example", "tickets:read")
	if err != nil {
		panic(err)
	}
	fmt.Println(claims.Subject, claims.TaskID, claims.Scopes, claims.ID == c.LeaseID)

	_, err = v.Verify(ctx, c.Secret.Reveal(), "https://tickets.example", "tickets:write")
	fmt.Println(errors.Is(err, local.ErrScope))

	if _, err := broker.Revoke(ctx, "task-42"); err != nil {
		panic(err)
	}
	_, err = v.Verify(ctx, c.Secret.Reveal(), "https://tickets.example", "tickets:read")
	fmt.Println(errors.Is(err, credentials.ErrRevoked))
	// Output:
	// [REDACTED]
	// spiffe://example.org/agent/support-bot task-42 [tickets:read] true
	// true
	// true
}

// A test server in another process verifies tokens with a remote verifier
// pointed at the issuer's Handler.
func ExampleNewRemoteVerifier() {
	iss, err := local.NewIssuer()
	if err != nil {
		panic(err)
	}
	issuerSrv := httptest.NewServer(iss.Handler())
	defer issuerSrv.Close()

	v := local.NewRemoteVerifier(issuerSrv.URL)
	api := httptest.NewServer(v.Middleware("https://tickets.example", "tickets:read")(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims, _ := local.ClaimsFromContext(r.Context())
			fmt.Fprintln(w, "hello", claims.Subject)
		})))
	defer api.Close()

	c, err := iss.Issue(context.Background(), credentials.Request{
		TaskID:      "task-42",
		Agent:       "spiffe://example.org/agent/support-bot",
		Requirement: credentials.Requirement{Audience: "https://tickets.example", Scopes: []string{"tickets:read"}},
	})
	if err != nil {
		panic(err)
	}
	for _, token := range []string{c.Secret.Reveal(), ""} {
		req, _ := http.NewRequest(http.MethodGet, api.URL, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s %q\n", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	// Output:
	// 200  "hello spiffe://example.org/agent/support-bot\n"
	// 401 Bearer "Unauthorized\n"
}
