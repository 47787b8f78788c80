package mcpguard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/identity"
)

// ErrNoCaller: the request being served carries no verified caller, so
// the guard of an MCP server has no identity to decide for. The call is
// denied with agentguard.ErrNoIdentity, which wraps it.
var ErrNoCaller = errors.New("mcpguard: no verified caller")

// callerKey carries the *caller of the request being served.
type callerKey struct{}

// caller is the verified caller of one request, and whether the guard
// asked for it (so that the middleware knows the guard decided for this
// caller, not for an identity of its own).
type caller struct {
	id    spiffeid.ID
	err   error
	asked atomic.Bool
}

// CallerSource returns the identity.Source for the guard of an MCP server:
// the verified caller of the request the server's Middleware is serving.
// For a request with no verified caller it returns an error wrapping
// ErrNoCaller, and the guard denies the call (agentguard.ErrNoIdentity): a
// request is never run as the server's own identity. Give it to
// agentguard.WithIdentity; the middleware refuses to run a tool when the
// guard did not ask it for the caller.
//
// outside answers for work outside any MCP request, such as an operator's
// Registry.Review of a changed tool, whose identity policy then sees (the
// server's own SVID, say). With a nil outside, such work has no identity
// and is refused.
func CallerSource(outside identity.Source) identity.Source {
	return identity.SourceFunc(func(ctx context.Context) (identity.Identity, error) {
		c, ok := ctx.Value(callerKey{}).(*caller)
		if !ok {
			if outside != nil {
				return outside.Identity(ctx)
			}
			return identity.Identity{}, fmt.Errorf("%w: not serving an MCP request", ErrNoCaller)
		}
		c.asked.Store(true)
		if c.err != nil {
			return identity.Identity{}, c.err
		}
		return identity.Identity{ID: c.id}, nil
	})
}

// jwtSVIDKey is the TokenInfo.Extra key under which VerifyJWTSVID leaves
// the verified SPIFFE ID.
const jwtSVIDKey = "agentguard.jwt_svid"

// verifiedSVID marks a TokenInfo made by VerifyJWTSVID; only this package
// can make one.
type verifiedSVID struct{ id spiffeid.ID }

// VerifyJWTSVID returns a token verifier for the SDK's bearer-token
// middleware (auth.RequireBearerToken) that accepts only a JWT-SVID signed
// by an authority of its trust domain in bundles, unexpired and addressed
// to audience (identity.VerifyJWTSVID). The request's TokenInfo then names
// the caller's SPIFFE ID as UserID (which the streamable transport also
// uses to stop another caller from taking over the session) and the token's
// expiry. A token that does not verify is refused with auth.ErrInvalidToken
// (HTTP 401); the error never holds the token.
func VerifyJWTSVID(bundles jwtbundle.Source, audience string) auth.TokenVerifier {
	return func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		svid, err := identity.VerifyJWTSVID(token, bundles, audience)
		if err != nil {
			return nil, fmt.Errorf("%w: mcpguard: JWT-SVID refused", auth.ErrInvalidToken)
		}
		return &auth.TokenInfo{
			UserID:     svid.ID.String(),
			Expiration: svid.Expiry,
			Extra:      map[string]any{jwtSVIDKey: verifiedSVID{svid.ID}},
		}, nil
	}
}

// transportCaller marks a TokenInfo made by CallerTransport; only this
// package can make one.
type transportCaller struct{ id spiffeid.ID }

// CallerTransport returns t such that every request the server reads from
// it is made by the agent id, as if verified: the requests carry a token
// info of this package's that names id. It is for the SDK's in-memory
// transport in tests and in-process servers, and for a transport the
// application connects itself to a peer it has authenticated by other
// means (the stdio of a child process it started for that agent):
//
//	ct, st := mcp.NewInMemoryTransports()
//	ss, err := server.Connect(ctx, mcpguard.CallerTransport(st, agentID), nil)
//
// Nothing is verified, so it is given per connection, never per server:
// the SDK's HTTP handlers (streamable, SSE) make their transports
// themselves, and their requests never pass through it. A request that
// already carries request information of its transport's own (the
// streamable transport's headers and token info) keeps it: CallerTransport
// never replaces a caller.
func CallerTransport(t mcp.Transport, id spiffeid.ID) mcp.Transport {
	return &callerTransport{t: t, id: id}
}

type callerTransport struct {
	t  mcp.Transport
	id spiffeid.ID
}

func (c *callerTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	if c.t == nil || c.id.IsZero() {
		return nil, errors.New("mcpguard: CallerTransport needs a transport and a SPIFFE ID")
	}
	conn, err := c.t.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &callerConn{Connection: conn, id: c.id}, nil
}

// SupportsProtocolVersion passes on the wrapped transport's answer, if it
// gives one.
func (c *callerTransport) SupportsProtocolVersion(version string) bool {
	if pvs, ok := c.t.(mcp.ProtocolVersionSupporter); ok {
		return pvs.SupportsProtocolVersion(version)
	}
	return true
}

// callerConn is a connection whose incoming requests name their caller.
type callerConn struct {
	mcp.Connection
	id spiffeid.ID
}

func (c *callerConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := c.Connection.Read(ctx)
	if req, ok := msg.(*jsonrpc.Request); ok && req.Extra == nil {
		req.Extra = &mcp.RequestExtra{TokenInfo: &auth.TokenInfo{
			UserID: c.id.String(),
			Extra:  map[string]any{jwtSVIDKey: transportCaller{c.id}},
		}}
	}
	return msg, err
}

// callerOf finds the verified caller of a request, by the rule documented
// on Server: a TokenInfo made by VerifyJWTSVID or CallerTransport names
// it; else, with WithTokenUserIDs, a UserID that is a SPIFFE ID of the
// trust domain named; else there is none.
func (s *Server) callerOf(req mcp.Request) *caller {
	var ti *auth.TokenInfo
	if extra := req.GetExtra(); extra != nil {
		ti = extra.TokenInfo
	}
	if ti == nil {
		return &caller{err: fmt.Errorf("%w: the request has no token", ErrNoCaller)}
	}
	switch v := ti.Extra[jwtSVIDKey].(type) {
	case verifiedSVID:
		if ti.UserID != v.id.String() {
			return &caller{err: fmt.Errorf("%w: token info names another user than its JWT-SVID", ErrNoCaller)}
		}
		return &caller{id: v.id}
	case transportCaller:
		if ti.UserID != v.id.String() {
			return &caller{err: fmt.Errorf("%w: token info names another user than its transport", ErrNoCaller)}
		}
		return &caller{id: v.id}
	}
	if s.cfg.userIDs.IsZero() {
		return &caller{err: fmt.Errorf("%w: the token is not a JWT-SVID verified by mcpguard.VerifyJWTSVID (see WithTokenUserIDs)", ErrNoCaller)}
	}
	id, err := spiffeid.FromString(ti.UserID)
	if err != nil {
		return &caller{err: fmt.Errorf("%w: the token's user is not a SPIFFE ID", ErrNoCaller)}
	}
	if !id.MemberOf(s.cfg.userIDs) {
		return &caller{err: fmt.Errorf("%w: the token's user is not of trust domain %s", ErrNoCaller, s.cfg.userIDs)}
	}
	return &caller{id: id}
}
