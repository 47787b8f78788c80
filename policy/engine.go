package policy

import (
	"context"
	"encoding/json"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/identity"
)

// Engine decides whether a call is allowed. Decide is called for every call
// and every listing, from many goroutines at once; implementations must be
// safe for concurrent use. A denial is a Decision with Allowed false; an
// error means no decision could be made, and the caller must deny.
type Engine interface {
	Decide(ctx context.Context, req *Request) (Decision, error)
}

// EngineFunc adapts a function to an Engine.
type EngineFunc func(ctx context.Context, req *Request) (Decision, error)

// Decide calls f.
func (f EngineFunc) Decide(ctx context.Context, req *Request) (Decision, error) { return f(ctx, req) }

// Governance actions: decisions about the agent itself rather than one tool
// call. Tool names may not take these names.
const (
	ActionCallTool      = "call_tool"
	ActionChangeToolset = "change_toolset"
	ActionChangePrompt  = "change_prompt"
	ActionDelegate      = "delegate"
)

// Reserved reports whether name is a governance action or the tool action
// group, which no tool may be named.
func Reserved(name string) bool {
	switch name {
	case ActionCallTool, ActionChangeToolset, ActionChangePrompt, ActionDelegate:
		return true
	}
	return false
}

// Request is one authorization question.
type Request struct {
	// Agent is the acting agent and its delegation chain.
	Agent identity.Identity
	// Action is a governance action; empty for a call of Tool.
	Action string
	// Tool is the tool called (the resource of a tool call), or the tool
	// added or changed for Action::"change_toolset".
	Tool Tool
	// Delegatee is the agent a task is handed to: the resource of
	// Action::"delegate", for which Tool is empty.
	Delegatee spiffeid.ID
	// Subject is the agent whose prompt changes: the resource of
	// Action::"change_prompt". Zero means the acting agent. It stays the
	// same when the agents up a delegation chain are asked in turn.
	Subject spiffeid.ID
	// Args is the call's arguments as canonical JSON (an object).
	Args json.RawMessage
	// Task is the state of the task the call belongs to.
	Task Task
	// Approval is what a human approver said, if anything yet.
	Approval Approval
	// CallID identifies the call.
	CallID string
	// Time is when the call was made.
	Time time.Time
	// Listing asks whether the agent could call the tool with some
	// arguments, to decide whether to show it: engines must ignore the
	// arguments and approval (conditions on them neither permit nor forbid).
	Listing bool
}

// ActionName is the Cedar action of the request: Action, or the tool's name.
func (r *Request) ActionName() string {
	if r.Action != "" {
		return r.Action
	}
	return r.Tool.Name
}

// Risk grades how dangerous a tool is.
type Risk int

// Risk levels; policy sees them as Long 0 to 3.
const (
	RiskLow Risk = iota
	RiskMedium
	RiskHigh
	RiskCritical
)

// Sensitivity grades the data a task handles.
type Sensitivity int

// Sensitivity levels; policy sees them as Long 0 to 3.
const (
	Public Sensitivity = iota
	Internal
	Confidential
	Restricted
)

// String returns the level's name.
func (s Sensitivity) String() string {
	switch s {
	case Public:
		return "public"
	case Internal:
		return "internal"
	case Confidential:
		return "confidential"
	case Restricted:
		return "restricted"
	}
	return "sensitivity(" + itoa(int(s)) + ")"
}

// String returns the level's name.
func (r Risk) String() string {
	switch r {
	case RiskLow:
		return "low"
	case RiskMedium:
		return "medium"
	case RiskHigh:
		return "high"
	case RiskCritical:
		return "critical"
	}
	return "risk(" + itoa(int(r)) + ")"
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// Tool is what policy knows of a tool: the resource of a call.
type Tool struct {
	Name        string
	Toolset     string
	Description string
	ReadOnly    bool
	Destructive bool
	Idempotent  bool
	OpenWorld   bool
	Risk        Risk
	Labels      []string
	// InputSchema is the JSON Schema of the tool's arguments, if any. The
	// engine does not read it per call; NewSchema types context.args from it.
	InputSchema json.RawMessage
}

// Task is the state of the task a call belongs to.
type Task struct {
	ID          string
	Purpose     string
	Sensitivity Sensitivity
	Labels      []string
	OnBehalfOf  string
	// Calls is how many calls the task has run so far (started, counting
	// those still running).
	Calls int
	// ToolCalls is how many of them called the request's tool.
	ToolCalls int
	// RecentCalls is how many of them started in the last minute.
	RecentCalls int
	// ToolsUsed names the tools the task has run, sorted.
	ToolsUsed []string
	// Taint holds the labels the task's tool results carried, sorted.
	Taint []string
}

// Approval is what policy sees of a human approval.
type Approval struct {
	Granted   bool
	Approvers []string
}

// Decision is an engine's answer.
type Decision struct {
	// Allowed is true only when the call may go ahead (subject to
	// obligations).
	Allowed bool
	// Policies are the IDs of the deciding policies: the permits that allowed
	// the call, or the forbids (or failing policies) that denied it.
	Policies []string
	// Reason says why, for people: a forbid's @reason, or the engine's words.
	Reason string
	// Errors lists the policies that could not be evaluated. Any error
	// denies.
	Errors []EvalError
	// Obligations are what the deciding permits require before the call runs.
	Obligations []Obligation
	// Revision identifies the policy set that decided (its digest).
	Revision string
	// Shadow holds what policies that are evaluated but not enforced would
	// have decided, where that differs from this decision (allow or deny,
	// or the obligations). It is for the record: never enforced.
	Shadow []ShadowDecision
}

// Shadow decision modes.
const (
	// ShadowSet is the decision of a shadow policy set
	// (CedarEngine.SetShadow).
	ShadowSet = "shadow"
	// ShadowLogOnly is the decision of the enforced set with its @log_only
	// policies enforced too.
	ShadowLogOnly = "log_only"
)

// ShadowDecision is what a set of policies that is not enforced would have
// decided.
type ShadowDecision struct {
	// Mode is ShadowSet or ShadowLogOnly.
	Mode        string
	Revision    string
	Allowed     bool
	Policies    []string
	Reason      string
	Errors      []EvalError
	Obligations []Obligation
}

// EvalError is a policy that failed to evaluate.
type EvalError struct {
	PolicyID string
	Message  string
}

// Obligation is an annotation of a deciding permit policy that the guard must
// act on, such as @approval("two-person").
type Obligation struct {
	Name     string
	Value    string
	PolicyID string
}

// ObligationApproval is the obligation to get a human approval before the
// call runs. Its value names the kind of approval.
const ObligationApproval = "approval"
