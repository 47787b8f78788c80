package agentguard

import (
	"context"

	"github.com/agentguard/go-sdk/credentials"
)

// Broker leases credentials to tasks; *credentials.Broker is one. Both
// methods are called from many goroutines at once.
type Broker interface {
	// Lease returns a credential for req, reusing the task's lease when valid.
	Lease(ctx context.Context, req credentials.Request) (*credentials.Credential, error)
	// Revoke revokes every lease of the task run whose requests carried
	// taskKey as their TaskKey.
	Revoke(ctx context.Context, taskKey string) ([]credentials.Revocation, error)
}

var _ Broker = (*credentials.Broker)(nil)

// Integrity decides whether a tool's definition is trusted. An error denies
// the call with ErrIntegrity.
type Integrity interface {
	Verify(ctx context.Context, t *Tool) error
}

// IntegrityFunc adapts a function to Integrity.
type IntegrityFunc func(ctx context.Context, t *Tool) error

// Verify calls f.
func (f IntegrityFunc) Verify(ctx context.Context, t *Tool) error { return f(ctx, t) }
