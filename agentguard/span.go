package agentguard

import (
	"go.opentelemetry.io/otel/attribute"
)

// Span attributes of the guard, beside the OpenTelemetry GenAI ones.
const (
	AttrDecision   = attribute.Key("agentguard.decision")
	AttrPolicies   = attribute.Key("agentguard.policies")
	AttrRevision   = attribute.Key("agentguard.policy.revision")
	AttrReason     = attribute.Key("agentguard.reason")
	AttrStep       = attribute.Key("agentguard.step")
	AttrTaskID     = attribute.Key("agentguard.task.id")
	AttrToolset    = attribute.Key("agentguard.toolset")
	AttrChain      = attribute.Key("agentguard.agent.chain")
	AttrArgsDigest = attribute.Key("agentguard.args.digest")
	AttrLeaseID    = attribute.Key("agentguard.credential.lease_id")
	AttrProvider   = attribute.Key("agentguard.credential.provider")
	AttrAudience   = attribute.Key("agentguard.credential.audience")
	AttrScopes     = attribute.Key("agentguard.credential.scopes")
	AttrExpiresAt  = attribute.Key("agentguard.credential.expires_at")
	// AttrCredentialEvent says where a call's lease came from (issued,
	// refreshed, cached) or what else happened to one (failed, revoked,
	// revoke_failed).
	AttrCredentialEvent = attribute.Key("agentguard.credential.event")
	AttrApproval        = attribute.Key("agentguard.approval.granted")
	AttrApprovers       = attribute.Key("agentguard.approval.approvers")
	// AttrApprovalStatus is how an approval ended: granted, refused,
	// timeout, error, expired, unbound, unavailable or pending.
	AttrApprovalStatus = attribute.Key("agentguard.approval.status")
	// AttrApprovalDigest binds an approval to the exact call.
	AttrApprovalDigest = attribute.Key("agentguard.approval.digest")
	AttrOutcome        = attribute.Key("agentguard.outcome")
	AttrDelegatee      = attribute.Key("agentguard.delegatee")
	AttrHops           = attribute.Key("agentguard.handoff.hops")
	// AttrShadowMode is the mode of an EventShadow: "shadow" (a shadow
	// policy set) or "log_only" (@log_only policies).
	AttrShadowMode = attribute.Key("agentguard.policy.shadow.mode")
	// AttrShadowDecision, suffixed with the mode
	// (agentguard.policy.shadow.decision.shadow, ….log_only), is what
	// policies evaluated but not enforced would have decided, set on a
	// call's span only where that differs from the enforced decision.
	AttrShadowDecision = attribute.Key("agentguard.policy.shadow.decision")
	// AttrObligations lists a decision's obligations as "name=value".
	AttrObligations = attribute.Key("agentguard.policy.obligations")
)

// Span event names.
const (
	EventAuthorize  = "agentguard.authorize"
	EventApprove    = "agentguard.approve"
	EventCredential = "agentguard.credential"
	// EventShadow records a decision of policies that are evaluated but not
	// enforced, where it differs from the enforced one.
	EventShadow = "agentguard.policy.shadow"
)
