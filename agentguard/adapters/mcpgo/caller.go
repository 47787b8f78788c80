package mcpgoguard

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/server"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"

	"github.com/agentguard/go-sdk/identity"
)

// callerKey is the context key of the verified caller of an MCP request.
type callerKey struct{}

// caller is who sent an MCP request, as verified, and until when the proof
// holds (zero: no end).
type caller struct {
	id      identity.Identity
	expires time.Time
}

// withCaller returns ctx carrying c as the verified caller of its request.
func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// Callers returns the identity source of a guard that serves MCP callers:
// the identity of each call is the caller verified for the request it
// belongs to (by JWTSVIDContext over HTTP, or WithInProcessCaller for
// in-process clients), never a name the request asserts. A request with no
// verified caller, or whose proof has expired, gets ErrNoCaller, so the
// guard denies its calls and hides every tool from it (fail closed).
//
// The guard also pins the server's own tools on first use (at their first
// listing or call) unless it has a reviewed lock (agentguard.WithLock).
// Such a pin is not a call: the guard asks the source for the record's
// agent directly, finds no caller outside a request, and records the pin
// without one; it is not audited as an identity lost.
func Callers() identity.Source {
	return identity.SourceFunc(func(ctx context.Context) (identity.Identity, error) {
		c, ok := ctx.Value(callerKey{}).(caller)
		if !ok || c.id.IsZero() {
			return identity.Identity{}, ErrNoCaller
		}
		if !c.expires.IsZero() && !time.Now().Before(c.expires) {
			return identity.Identity{}, fmt.Errorf("%w: the caller's JWT-SVID expired at %s", ErrNoCaller, c.expires.UTC().Format(time.RFC3339))
		}
		return c.id, nil
	})
}

// JWTSVIDContext returns the function to give mcp-go's streamable HTTP
// server (server.WithHTTPContextFunc) so that each request's caller is the
// agent its bearer JWT-SVID names: the token in the Authorization header
// ("Bearer <token>") must verify against bundles (SPIFFE JWT bundles, such
// as those of a SPIFFESource) and be addressed to audience, the server's
// own SPIFFE ID or name. A request without such a token gets no caller, so
// Callers refuses it. The token itself is not kept.
//
// To also set context values of your own, call it from your function:
//
//	verify := mcpgoguard.JWTSVIDContext(bundles, aud)
//	server.WithHTTPContextFunc(func(ctx context.Context, r *http.Request) context.Context {
//		return mine(verify(ctx, r), r)
//	})
func JWTSVIDContext(bundles jwtbundle.Source, audience string) server.HTTPContextFunc {
	return func(ctx context.Context, r *http.Request) context.Context {
		token, ok := bearer(r)
		if !ok || bundles == nil || audience == "" {
			return ctx
		}
		svid, err := identity.VerifyJWTSVID(token, bundles, audience)
		if err != nil {
			return ctx
		}
		return withCaller(ctx, caller{id: identity.Identity{ID: svid.ID}, expires: svid.Expiry})
	}
}

// bearer returns the token of a request's Authorization: Bearer header.
func bearer(r *http.Request) (string, bool) {
	if r == nil {
		return "", false
	}
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
