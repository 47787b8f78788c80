package audit

import (
	"encoding/json"
	"log/slog"
	"time"
)

// Kind says what an event records.
type Kind string

// The kinds of event the guard writes.
const (
	// KindToolCall records one tool call: its decision, the step that
	// denied it, and the outcome.
	KindToolCall Kind = "tool_call"
	// KindTaskStart records a task's start (Decision allow) and also a
	// refused start (Decision deny, with Step and Reason): count started
	// tasks by the records with Decision allow.
	KindTaskStart Kind = "task_start"
	// KindTaskEnd records a task's end, Reason saying why ("ended" by
	// Task.End, its context done, the guard closed, its agent suspended);
	// Outcome error when a revocation or its record failed.
	KindTaskEnd Kind = "task_end"
	// KindCredentialIssue, KindCredentialRefresh, KindCredentialFail and
	// KindCredentialRevoke record what happened to a credential lease: a
	// new lease, a new lease replacing one near expiry, a lease that could
	// not be had, and the end of a lease. They carry Credential, never the
	// credential's value.
	KindCredentialIssue   Kind = "credential_issue"
	KindCredentialRefresh Kind = "credential_refresh"
	KindCredentialFail    Kind = "credential_fail"
	KindCredentialRevoke  Kind = "credential_revoke"
	// KindDelegate records an agent handing a task to another agent.
	KindDelegate Kind = "delegate"
	// KindHandoffAccept records an agent accepting a task handed to it from
	// another process.
	KindHandoffAccept Kind = "handoff_accept"
	// KindPolicyLoad records a new version of the policies swapped in, and
	// KindPolicyReject one refused (it did not parse or validate), the
	// last good version staying in force. They carry PolicyChange.
	KindPolicyLoad   Kind = "policy_load"
	KindPolicyReject Kind = "policy_reject"
	// KindToolsetChange records a new or changed tool definition reviewed
	// (policy's Action::"change_toolset" and an approver): Decision allow
	// when it was pinned, deny when it stays blocked. It carries Change.
	KindToolsetChange Kind = "toolset_change"
	// KindPromptChange records a new or changed prompt reviewed likewise
	// (Action::"change_prompt"). It carries Change, never the prompt.
	KindPromptChange Kind = "prompt_change"
	// KindSuspend and KindResume record an agent or a trust domain (Target)
	// suspended, all its calls denied, and resumed.
	KindSuspend Kind = "suspend"
	KindResume  Kind = "resume"
	// KindIdentityChange records a change in the identity the guard's
	// source gives: each SPIFFE ID the first time it is seen, a rotated
	// X.509-SVID of one, and the identity lost (the source fails after
	// having succeeded) or regained. Agent is the new identity (empty when
	// lost); it carries Identity.
	KindIdentityChange Kind = "identity_change"
	// KindToolList records a tool listing (Registry.List) that was
	// refused, with Decision deny, Step and Reason. Listings that succeed
	// are not recorded: they grant nothing, and every call is authorized
	// and recorded in full.
	KindToolList Kind = "tool_list"
)

// Decision values.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Outcome values.
const (
	OutcomeOK     = "ok"     // the tool ran and returned a result
	OutcomeDenied = "denied" // the guard refused the call; the tool did not run
	OutcomeError  = "error"  // the tool ran and failed, or a step after it failed
)

// Event is one audit record.
type Event struct {
	Time time.Time `json:"time"`
	Kind Kind      `json:"kind"`

	// Agent is the acting agent's SPIFFE ID; Chain the delegating agents, root first.
	Agent string   `json:"agent,omitempty"`
	Chain []string `json:"chain,omitempty"`

	Task       string `json:"task,omitempty"`
	OnBehalfOf string `json:"on_behalf_of,omitempty"`
	// Delegatee is the agent a task is handed to, for KindDelegate and
	// KindHandoffAccept.
	Delegatee string `json:"delegatee,omitempty"`
	Tool      string `json:"tool,omitempty"`
	Toolset   string `json:"toolset,omitempty"`
	CallID    string `json:"call_id,omitempty"`
	// ArgsDigest is "sha256:<hex>" of the canonical JSON arguments.
	ArgsDigest string `json:"args_digest,omitempty"`
	// Args are the canonical JSON arguments, recorded only for tools that
	// ask for it (agentguard.Tool's Audit), with the values the tool
	// declares redacted replaced by "[REDACTED]" and the secrets the guard
	// knows (the call's and its task's credentials, the task's user
	// token) removed; see agentguard.ArgsAudit. Most records have only
	// ArgsDigest.
	Args json.RawMessage `json:"args,omitempty"`

	// Decision is Allow or Deny; Policies the deciding policy IDs.
	Decision string   `json:"decision,omitempty"`
	Policies []string `json:"policies,omitempty"`
	// Revision is the digest of the policy set that decided.
	Revision string `json:"policy_revision,omitempty"`
	// Shadow records what policies evaluated but not enforced (a shadow
	// set, or @log_only policies) would have decided, where it differs.
	Shadow []Shadow `json:"shadow,omitempty"`
	// Step is the pipeline step that denied or failed the call.
	Step   string `json:"step,omitempty"`
	Reason string `json:"reason,omitempty"`

	Approval *Approval `json:"approval,omitempty"`
	// Leases are the IDs of the credential leases the call used or the event concerns.
	Leases []string `json:"leases,omitempty"`
	// Credential describes the lease of a credential event.
	Credential *Credential `json:"credential,omitempty"`
	// PolicyChange describes a policy reload, for KindPolicyLoad and
	// KindPolicyReject.
	PolicyChange *PolicyChange `json:"policy_change,omitempty"`
	// Change describes a reviewed tool or prompt change, for
	// KindToolsetChange and KindPromptChange.
	Change *Change `json:"change,omitempty"`
	// Target is the SPIFFE ID of the agent, or of the trust domain
	// (spiffe://<td>), that KindSuspend and KindResume concern.
	Target string `json:"target,omitempty"`
	// Tasks are the tasks a suspension ended.
	Tasks []string `json:"tasks,omitempty"`
	// Identity describes an identity change, for KindIdentityChange.
	Identity *IdentityChange `json:"identity,omitempty"`

	Outcome  string        `json:"outcome,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`

	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`

	// Truncated names what a sink cut from an event too large for one
	// record, each with its size, such as "error:17825792 bytes",
	// "args:20000000 bytes" (Args dropped; ArgsDigest stays) or
	// "policies:5000 items" (see FileSink.Write). Empty for nearly every
	// event.
	Truncated []string `json:"truncated,omitempty"`
}

// Approval records a human approval step.
type Approval struct {
	Required bool `json:"required"`
	Granted  bool `json:"granted"`
	// Status is how it ended: granted, refused, timeout, error, expired
	// (answered too late), unbound (the answer named another request),
	// unavailable (no approver) or pending (passed to a human who answers
	// later, out of band; the call may be made again then).
	Status string `json:"status,omitempty"`
	// Kind is the kind of approval asked for, such as "two-person".
	Kind string `json:"kind,omitempty"`
	// RequestID and Digest identify the request and bind it to the call.
	RequestID string `json:"request_id,omitempty"`
	Digest    string `json:"digest,omitempty"`
	// Approvers name who decided; Reason is their comment.
	Approvers []string `json:"approvers,omitempty"`
	Reason    string   `json:"reason,omitempty"`
}

// Change is a tool definition or a prompt that was new or changed, and
// reviewed.
type Change struct {
	// Action is "change_toolset" or "change_prompt".
	Action string `json:"action"`
	// Name is the tool's or prompt's name; Toolset the tool's toolset.
	Name    string `json:"name"`
	Toolset string `json:"toolset,omitempty"`
	// Fingerprint is "sha256:<hex>" of the new definition or prompt;
	// Previous that of the one pinned before, empty for a new one.
	Fingerprint string `json:"fingerprint"`
	Previous    string `json:"previous,omitempty"`
}

// IdentityChange describes a change in the agent's identity, for
// KindIdentityChange. The event's Agent is the new SPIFFE ID. A guard may
// serve several agents (its identity source answering per context): it
// records the first sight of each SPIFFE ID, and each SVID rotation, once.
type IdentityChange struct {
	// Previous is the SPIFFE ID the change concerns, before it: the same
	// ID for a rotation; the ID recorded last for a loss and a regain;
	// empty for an identity acquired (it replaces none).
	Previous string `json:"previous,omitempty"`
	// Serial is the serial number (hex) of the X.509-SVID that proves the
	// new identity, and NotAfter its expiry; PreviousSerial that of the
	// SVID before. They are empty for identity sources without SVIDs.
	Serial         string    `json:"serial,omitempty"`
	PreviousSerial string    `json:"previous_serial,omitempty"`
	NotAfter       time.Time `json:"not_after,omitzero"`
	// Reason says what changed, one of "identity acquired", "SVID
	// rotated", "identity lost" (the source's error is in the event's
	// Error), "identity regained" and "identity regained as another
	// agent".
	Reason string `json:"reason"`
}

// Credential is what a credential event says about the lease: what it
// grants and until when. Never the value.
type Credential struct {
	Name      string    `json:"name,omitempty"`
	Provider  string    `json:"provider"`
	Audience  string    `json:"audience,omitempty"`
	Resources []string  `json:"resources,omitempty"`
	Scopes    []string  `json:"scopes,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Replaces is the lease a refresh replaces.
	Replaces string `json:"replaces,omitempty"`
	// Attempts is how many times the issuer was asked.
	Attempts int `json:"attempts,omitempty"`
	// NotRevocable is set on a revocation the issuer cannot do: the
	// credential stays valid until ExpiresAt.
	NotRevocable bool `json:"not_revocable,omitempty"`
}

// Shadow is what policies that are evaluated but not enforced would have
// decided.
type Shadow struct {
	// Mode is "shadow" (a shadow policy set) or "log_only" (the enforced
	// set with its @log_only policies enforced too).
	Mode     string   `json:"mode"`
	Revision string   `json:"revision,omitempty"`
	Decision string   `json:"decision"`
	Policies []string `json:"policies,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	// Obligations are the obligations the shadow decision would have set.
	Obligations []Obligation `json:"obligations,omitempty"`
}

// Obligation is an obligation a policy sets on a call, such as
// @approval("two-person").
type Obligation struct {
	Name   string `json:"name"`
	Value  string `json:"value,omitempty"`
	Policy string `json:"policy,omitempty"`
}

// PolicyChange describes a new version of the policies, loaded or refused.
type PolicyChange struct {
	// Source names where the policies come from, such as a directory.
	Source string `json:"source,omitempty"`
	// OldRevision is the digest of the set in force before; NewRevision
	// the digest of the new set, when it parsed.
	OldRevision string `json:"old_revision,omitempty"`
	NewRevision string `json:"new_revision,omitempty"`
	// Files is "sha256:<hex>" over the new version's files (names and
	// contents): it identifies a version that did not parse.
	Files string `json:"files,omitempty"`
	// Policies is how many policies the new set has.
	Policies int `json:"policies,omitempty"`
}

// LogValue renders the event's set fields as a slog group.
func (e Event) LogValue() slog.Value {
	a := make([]slog.Attr, 0, 20)
	add := func(k, v string) {
		if v != "" {
			a = append(a, slog.String(k, v))
		}
	}
	if !e.Time.IsZero() {
		a = append(a, slog.Time("time", e.Time))
	}
	add("kind", string(e.Kind))
	add("agent", e.Agent)
	if len(e.Chain) > 0 {
		a = append(a, slog.Any("chain", e.Chain))
	}
	add("task", e.Task)
	add("on_behalf_of", e.OnBehalfOf)
	add("delegatee", e.Delegatee)
	add("tool", e.Tool)
	add("toolset", e.Toolset)
	add("call_id", e.CallID)
	add("args_digest", e.ArgsDigest)
	if len(e.Args) > 0 {
		// Nested JSON for a JSON handler, text for a text handler.
		if json.Valid(e.Args) {
			a = append(a, slog.Any("args", e.Args))
		} else {
			a = append(a, slog.String("args", string(e.Args)))
		}
	}
	add("decision", e.Decision)
	if len(e.Policies) > 0 {
		a = append(a, slog.Any("policies", e.Policies))
	}
	add("policy_revision", e.Revision)
	if len(e.Shadow) > 0 {
		a = append(a, slog.Any("shadow", e.Shadow))
	}
	add("step", e.Step)
	add("reason", e.Reason)
	if ap := e.Approval; ap != nil {
		aa := []any{slog.Bool("required", ap.Required), slog.Bool("granted", ap.Granted)}
		for _, kv := range [][2]string{{"status", ap.Status}, {"kind", ap.Kind}, {"request_id", ap.RequestID}, {"digest", ap.Digest}} {
			if kv[1] != "" {
				aa = append(aa, slog.String(kv[0], kv[1]))
			}
		}
		if len(ap.Approvers) > 0 {
			aa = append(aa, slog.Any("approvers", ap.Approvers))
		}
		if ap.Reason != "" {
			aa = append(aa, slog.String("reason", ap.Reason))
		}
		a = append(a, slog.Group("approval", aa...))
	}
	if len(e.Leases) > 0 {
		a = append(a, slog.Any("leases", e.Leases))
	}
	if c := e.Credential; c != nil {
		ca := []any{slog.String("provider", c.Provider)}
		if c.Name != "" {
			ca = append(ca, slog.String("name", c.Name))
		}
		if c.Audience != "" {
			ca = append(ca, slog.String("audience", c.Audience))
		}
		if len(c.Resources) > 0 {
			ca = append(ca, slog.Any("resources", c.Resources))
		}
		if len(c.Scopes) > 0 {
			ca = append(ca, slog.Any("scopes", c.Scopes))
		}
		if !c.ExpiresAt.IsZero() {
			ca = append(ca, slog.Time("expires_at", c.ExpiresAt))
		}
		if c.Replaces != "" {
			ca = append(ca, slog.String("replaces", c.Replaces))
		}
		if c.Attempts > 0 {
			ca = append(ca, slog.Int("attempts", c.Attempts))
		}
		if c.NotRevocable {
			ca = append(ca, slog.Bool("not_revocable", true))
		}
		a = append(a, slog.Group("credential", ca...))
	}
	if pc := e.PolicyChange; pc != nil {
		pa := []any{}
		for _, kv := range [][2]string{{"source", pc.Source}, {"old_revision", pc.OldRevision}, {"new_revision", pc.NewRevision}, {"files", pc.Files}} {
			if kv[1] != "" {
				pa = append(pa, slog.String(kv[0], kv[1]))
			}
		}
		if pc.Policies > 0 {
			pa = append(pa, slog.Int("policies", pc.Policies))
		}
		a = append(a, slog.Group("policy_change", pa...))
	}
	if c := e.Change; c != nil {
		ca := []any{slog.String("action", c.Action), slog.String("name", c.Name)}
		if c.Toolset != "" {
			ca = append(ca, slog.String("toolset", c.Toolset))
		}
		ca = append(ca, slog.String("fingerprint", c.Fingerprint))
		if c.Previous != "" {
			ca = append(ca, slog.String("previous", c.Previous))
		}
		a = append(a, slog.Group("change", ca...))
	}
	add("target", e.Target)
	if len(e.Tasks) > 0 {
		a = append(a, slog.Any("tasks", e.Tasks))
	}
	if id := e.Identity; id != nil {
		ia := []any{}
		for _, kv := range [][2]string{{"previous", id.Previous}, {"serial", id.Serial}, {"previous_serial", id.PreviousSerial}} {
			if kv[1] != "" {
				ia = append(ia, slog.String(kv[0], kv[1]))
			}
		}
		if !id.NotAfter.IsZero() {
			ia = append(ia, slog.Time("not_after", id.NotAfter))
		}
		ia = append(ia, slog.String("reason", id.Reason))
		a = append(a, slog.Group("identity", ia...))
	}
	add("outcome", e.Outcome)
	add("error", e.Error)
	if e.Duration > 0 {
		a = append(a, slog.Duration("duration", e.Duration))
	}
	add("trace_id", e.TraceID)
	add("span_id", e.SpanID)
	if len(e.Truncated) > 0 {
		a = append(a, slog.Any("truncated", e.Truncated))
	}
	return slog.GroupValue(a...)
}
