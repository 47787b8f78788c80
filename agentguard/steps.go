package agentguard

import (
	"context"
	"encoding/json"
	"time"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
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

// Approver asks a human whether a call may run. It is called only when the
// deciding policies carry an @approval obligation. It may block until the
// human answers; it must honour ctx. An error, or an approval not granted,
// denies the call.
type Approver interface {
	Approve(ctx context.Context, req *ApprovalRequest) (Approval, error)
}

// ApproverFunc adapts a function to an Approver.
type ApproverFunc func(ctx context.Context, req *ApprovalRequest) (Approval, error)

// Approve calls f.
func (f ApproverFunc) Approve(ctx context.Context, req *ApprovalRequest) (Approval, error) {
	return f(ctx, req)
}

// ApprovalRequest shows an approver exactly what would run.
type ApprovalRequest struct {
	Agent  identity.Identity
	TaskID string
	Tool   string
	CallID string
	// Args are the canonical JSON arguments.
	Args json.RawMessage
	// Digest binds the approval to this exact call: "sha256:<hex>" over the
	// canonical tool, arguments, task and agent.
	Digest string
	// Kind is the obligation's value, e.g. "two-person".
	Kind string
	// Policies are the permits that asked for approval.
	Policies []string
	// ExpiresAt is when the request lapses.
	ExpiresAt time.Time
}

// Approval is an approver's answer.
type Approval struct {
	Granted bool
	// Approvers name who decided.
	Approvers []string
	// Reason is the approver's comment.
	Reason string
}
