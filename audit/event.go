package audit

import (
	"log/slog"
	"time"
)

// Kind says what an event records.
type Kind string

// The kinds of event the guard writes.
const (
	KindToolCall         Kind = "tool_call"
	KindTaskStart        Kind = "task_start"
	KindTaskEnd          Kind = "task_end"
	KindCredentialRevoke Kind = "credential_revoke"
	// KindDelegate records an agent handing a task to another agent.
	KindDelegate Kind = "delegate"
	// KindHandoffAccept records an agent accepting a task handed to it from
	// another process.
	KindHandoffAccept Kind = "handoff_accept"
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

	// Decision is Allow or Deny; Policies the deciding policy IDs.
	Decision string   `json:"decision,omitempty"`
	Policies []string `json:"policies,omitempty"`
	// Step is the pipeline step that denied or failed the call.
	Step   string `json:"step,omitempty"`
	Reason string `json:"reason,omitempty"`

	Approval *Approval `json:"approval,omitempty"`
	// Leases are the IDs of the credential leases the call used or the event concerns.
	Leases []string `json:"leases,omitempty"`

	Outcome  string        `json:"outcome,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`

	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`
}

// Approval records a human approval step.
type Approval struct {
	Required  bool     `json:"required"`
	Granted   bool     `json:"granted"`
	Approvers []string `json:"approvers,omitempty"`
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
	add("decision", e.Decision)
	if len(e.Policies) > 0 {
		a = append(a, slog.Any("policies", e.Policies))
	}
	add("step", e.Step)
	add("reason", e.Reason)
	if e.Approval != nil {
		a = append(a, slog.Group("approval",
			slog.Bool("required", e.Approval.Required),
			slog.Bool("granted", e.Approval.Granted),
			slog.Any("approvers", e.Approval.Approvers)))
	}
	if len(e.Leases) > 0 {
		a = append(a, slog.Any("leases", e.Leases))
	}
	add("outcome", e.Outcome)
	add("error", e.Error)
	if e.Duration > 0 {
		a = append(a, slog.Duration("duration", e.Duration))
	}
	add("trace_id", e.TraceID)
	add("span_id", e.SpanID)
	return slog.GroupValue(a...)
}
