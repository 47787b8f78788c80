package identity_test

import (
	"context"
	"fmt"

	"github.com/agentguard/go-sdk/identity"
)

// The development issuer mints real SVIDs, for local runs and tests. It is
// not for production: there, identities come from SPIRE's Workload API
// (NewSPIFFESource).
func ExampleNewDevIssuer() {
	dev, err := identity.NewDevIssuer("example.org")
	if err != nil {
		panic(err)
	}
	agent, err := dev.Agent("/agent/support-bot")
	if err != nil {
		panic(err)
	}
	id, err := agent.Identity(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Println(id)

	// A JWT-SVID presents the agent to another service; it prints redacted.
	jwt, err := agent.JWTSVID(context.Background(), "spiffe://example.org/service/payments")
	if err != nil {
		panic(err)
	}
	fmt.Println(jwt.ID, jwt.Audience, jwt)
	// Output:
	// spiffe://example.org/agent/support-bot
	// spiffe://example.org/agent/support-bot [spiffe://example.org/service/payments] [REDACTED]
}

// A handoff proves to an agent in another process which agents handed it
// the task. The recipient verifies it against the trust bundles.
func ExampleHandoff() {
	dev, _ := identity.NewDevIssuer("example.org")
	planner, _ := dev.Agent("/agent/planner")
	coder, _ := dev.Agent("/agent/coder")

	h, err := identity.NewHandoff(context.Background(), planner, nil, coder.ID())
	if err != nil {
		panic(err)
	}
	header := h.Marshal() // sent as the AgentGuard-Handoff header

	// In the coder's process:
	received, err := identity.ParseHandoff(header)
	if err != nil {
		panic(err)
	}
	chain, err := received.Verify(dev, coder.ID(), 4)
	if err != nil {
		panic(err)
	}
	fmt.Println(chain)
	_, err = received.Verify(dev, planner.ID(), 4)
	fmt.Println(err != nil)
	// Output:
	// [spiffe://example.org/agent/planner]
	// true
}
