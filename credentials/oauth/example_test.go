package oauth_test

import (
	"context"
	"log"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/oauth"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// An agent whose tools get tokens by RFC 8693 token exchange: its JWT-SVID
// (from SPIRE's Workload API) authenticates it and is the subject token,
// so no client secret exists anywhere. Each task's tokens are revoked with
// RFC 7009 when the task ends.
func Example() {
	ctx := context.Background()
	src, err := identity.NewSPIFFESource(ctx) // SPIFFE_ENDPOINT_SOCKET
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	agent, err := src.Agent(identity.ByHint("billing-agent"))
	if err != nil {
		log.Fatal(err)
	}

	exchange, err := oauth.NewTokenExchange(oauth.Config{
		TokenURL:      "https://auth.example.com/oauth/token",
		RevocationURL: "https://auth.example.com/oauth/revoke",
		Auth:          oauth.SVIDAssertion(""), // client_id = the agent's SPIFFE ID
	}, oauth.AsAgent)
	if err != nil {
		log.Fatal(err)
	}
	guard, err := agentguard.New(
		agentguard.WithIdentity(agent), // also mints the JWT-SVIDs the exchange presents
		agentguard.WithPolicy(policytest.AllowAll()),
		agentguard.WithBroker(credentials.NewBroker(credentials.WithProvider("billing", exchange))),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer guard.Close(ctx)
	// Tools declare credentials.Requirement{Provider: "billing", ...} and
	// send the token with credentials.HTTPClient(ctx, name).
}

// On behalf of a user: the user's token is the subject, the agent's
// JWT-SVID the actor; the issued token names the agent in its "act" claim.
func ExampleNewTokenExchange_onBehalfOf() {
	exchange, err := oauth.NewTokenExchange(oauth.Config{
		TokenURL:      "https://auth.example.com/oauth/token",
		RevocationURL: "https://auth.example.com/oauth/revoke",
		Auth:          oauth.ClientSecretBasic("billing-agent", credentials.NewSecret("from your secret store")),
	}, oauth.OnBehalfOfUser)
	if err != nil {
		log.Fatal(err)
	}
	_ = exchange
	// The task carries the user's token:
	//   guard.StartTask(ctx, agentguard.TaskSpec{OnBehalfOf: "alice", UserToken: credentials.NewSecret(tok)})
}
