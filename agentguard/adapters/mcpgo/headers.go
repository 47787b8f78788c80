package mcpgoguard

import (
	"context"

	"github.com/mark3labs/mcp-go/client/transport"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
)

// JWTSVIDHeader returns the header function for mcp-go's streamable HTTP
// client (transport.WithHTTPHeaderFunc) that presents the agent to the
// server: each request carries "Authorization: Bearer <JWT-SVID>", a
// JWT-SVID minted by issuer for audience (the server's SPIFFE ID or name,
// as its JWTSVIDContext expects). When none can be minted the request goes
// without one, and a guarded server refuses it.
func JWTSVIDHeader(issuer identity.JWTIssuer, audience string) transport.HTTPHeaderFunc {
	return func(ctx context.Context) map[string]string {
		if issuer == nil {
			return nil
		}
		svid, err := issuer.JWTSVID(ctx, audience)
		if err != nil {
			return nil
		}
		return map[string]string{"Authorization": "Bearer " + svid.Marshal()}
	}
}

// CredentialHeader returns the header function for mcp-go's streamable
// HTTP client (transport.WithHTTPHeaderFunc) that sends the credential the
// guard leased for the current call under name, as "Bearer <value>" in
// header: a Client's tools run with their call's credentials in the
// context. A request made outside a guarded call sends none.
func CredentialHeader(header, name string) transport.HTTPHeaderFunc {
	return func(ctx context.Context) map[string]string {
		c, ok := credentials.FromContext(ctx, name)
		if !ok || c.Secret.IsZero() {
			return nil
		}
		return map[string]string{header: "Bearer " + c.Secret.Reveal()}
	}
}
