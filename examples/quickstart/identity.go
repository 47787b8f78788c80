package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/identity"
)

// agentSource is an identity the quickstart's agents can use: a verified
// SVID that can also mint JWT-SVIDs.
type agentSource interface {
	identity.Source
	identity.JWTIssuer
}

// identities are the quickstart's two agents: the support bot and the
// order-lookup sub-agent it hands work to (nil when there is no SVID for it).
type identities struct {
	agent agentSource
	sub   agentSource
	close func()
}

// newIdentities gets the agents' identities from the SPIFFE Workload API
// named by SPIFFE_ENDPOINT_SOCKET, or else from the development issuer.
func newIdentities(ctx context.Context, out io.Writer) (*identities, error) {
	if os.Getenv(identity.EndpointSocketEnv) == "" {
		// NOT FOR PRODUCTION: an in-memory CA that signs whatever it is
		// asked to. It mints real X.509-SVIDs and JWT-SVIDs so the guard
		// verifies them exactly as it verifies SPIRE's.
		dev, err := identity.NewDevIssuer("example.org")
		if err != nil {
			return nil, err
		}
		agent, err := dev.Agent("/agent/support-bot")
		if err != nil {
			return nil, err
		}
		sub, err := dev.Agent("/agent/order-lookup")
		if err != nil {
			return nil, err
		}
		svid, err := agent.SVID()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "identity: development issuer for example.org (in memory, not for production); X.509-SVID valid until %s\n",
			svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339))
		return &identities{agent: agent, sub: sub, close: func() {}}, nil
	}

	wait := 20 * time.Second
	if s := os.Getenv("AGENTGUARD_SPIFFE_START_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("AGENTGUARD_SPIFFE_START_TIMEOUT: %w", err)
		}
		wait = d
	}
	src, err := identity.NewSPIFFESource(ctx, identity.WithStartTimeout(wait))
	if err != nil {
		return nil, err
	}
	sel := identity.OnlySVID()
	if s := os.Getenv("AGENTGUARD_SPIFFE_ID"); s != "" {
		id, err := spiffeid.FromString(s)
		if err != nil {
			src.Close()
			return nil, fmt.Errorf("AGENTGUARD_SPIFFE_ID: %w", err)
		}
		sel = identity.ByID(id)
	} else if len(src.IDs()) > 1 {
		sel = identity.ByHint("support-bot")
	}
	agent, err := src.Agent(sel)
	if err != nil {
		src.Close()
		return nil, err
	}
	ids := &identities{agent: agent, close: func() { _ = src.Close() }}
	if sub, err := src.Agent(identity.ByHint("order-lookup")); err == nil {
		ids.sub = sub
	} else if !errors.Is(err, identity.ErrNoIdentity) {
		src.Close()
		return nil, err
	}
	svid, err := agent.SVID()
	if err != nil {
		src.Close()
		return nil, err
	}
	fmt.Fprintf(out, "identity: SPIFFE Workload API at %s; X.509-SVID valid until %s\n",
		os.Getenv(identity.EndpointSocketEnv), svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339))
	return ids, nil
}
