package mcpguard

import (
	"context"
	"log/slog"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

// config holds the options of a Session (client side) and a Server
// (server side); each option says which it applies to.
type config struct {
	// Both sides.
	configure func(*agentguard.Tool)

	// Session.
	toolset   string
	onRefresh func(context.Context, []agentguard.ToolChange, error)
	maxTools  int
	logger    *slog.Logger

	// Server.
	userIDs  spiffeid.TrustDomain
	deferred *approval.Deferred
}

// Option configures a Session or a Server.
type Option func(*config)

// WithToolset names a Session's toolset (policy's Toolset::"<name>" and
// the Lock's toolset column) in place of the server's name from its
// initialize result. Name it when a server's self-chosen name could clash
// with another toolset's. Session only: NewServer takes its toolset's name.
func WithToolset(name string) Option {
	return func(c *config) { c.toolset = name }
}

// WithToolConfig sets a function that sees each MCP tool's guard
// description before the guard does, to give it what the MCP definition
// cannot say: its Risk, Labels, OutputLabels, the Credentials its calls
// need and what the audit records of its arguments (Audit). Changing its
// description, schemas or annotations changes its fingerprint; its name and
// toolset stay. Session and Server.
func WithToolConfig(f func(t *agentguard.Tool)) Option {
	return func(c *config) { c.configure = f }
}

// WithRefreshHook sets a function called after every refresh of a
// Session with what changed (added, changed or removed) and the refresh's
// error: the place to tell an operator that changed tools wait for Review.
// It runs on the goroutine that refreshed (for a list_changed
// notification, the client's notification handler) and may call Pending
// and Review, but not Refresh. Session only.
func WithRefreshHook(f func(ctx context.Context, changes []agentguard.ToolChange, err error)) Option {
	return func(c *config) { c.onRefresh = f }
}

// WithMaxTools bounds how many tools a Session's listing may hold
// (DefaultMaxTools unless set); a listing with more fails, and the session
// holds no tools until a refresh succeeds. Session only.
func WithMaxTools(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxTools = n
		}
	}
}

// WithLogger sets where a Session logs the errors of refreshes prompted by
// list_changed notifications when it has no refresh hook. Nil means
// slog.Default(). Session only.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithTokenUserIDs makes a Server accept as the caller of a request the
// UserID of token info that another verifier than VerifyJWTSVID set (an
// OAuth server's, through auth.RequireBearerToken), when that UserID is a
// SPIFFE ID of trust domain td. Use it only when the verifier is the
// application's own and vouches for such user IDs: any subject it lets
// through whose name is "spiffe://<td>/..." then acts as that agent.
// Without it, only JWT-SVIDs that VerifyJWTSVID verified (and requests
// through CallerTransport) have a caller. Server only.
func WithTokenUserIDs(td spiffeid.TrustDomain) Option {
	return func(c *config) { c.userIDs = td }
}
