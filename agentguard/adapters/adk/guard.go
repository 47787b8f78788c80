package adkguard

import (
	"errors"
	"maps"
	"sync"
	"time"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/tool"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/credentials"
)

// DefaultToolset is the toolset (policy's Toolset::"adk") of a tool that
// neither a Spec nor a wrapped toolset (Guard.Toolset) names one for.
const DefaultToolset = "adk"

// Spec is what the application says of a tool beyond what ADK describes
// (name, description, parameters and whether it is long-running): how
// policy sees it and what credentials it needs.
type Spec struct {
	// Toolset is the tool's toolset (Toolset::"<Toolset>"); empty means
	// the wrapped toolset's name, else WithToolset's.
	Toolset string
	// Annotations, Risk and Labels describe the tool to policy
	// (resource.read_only, resource.risk, resource.labels, ...).
	Annotations agentguard.Annotations
	Risk        agentguard.Risk
	Labels      []string
	// OutputLabels are the taint labels every result of the tool carries.
	OutputLabels []string
	// Credentials are leased for each call; the tool finds them with
	// credentials.FromContext on its tool.Context when it is wrapped
	// (Guard.Tools, Guard.Toolset), else with Guard.Credential.
	Credentials []credentials.Requirement
	// Audit says what the audit records hold of the call's arguments.
	Audit agentguard.ArgsAudit
}

// DefaultApproverName is who answered a confirmation unless
// WithApproverName says otherwise: "adk-user:" and the session's user ID,
// the user who posted the answer. It is "" (no approver: the answer is
// not taken) for a session without a user ID.
func DefaultApproverName(ctx tool.Context) string {
	if ctx.UserID() == "" {
		return ""
	}
	return "adk-user:" + ctx.UserID()
}

// Option configures a Guard.
type Option func(*config)

type config struct {
	toolset      string
	specs        map[string]Spec
	deferred     *approval.Deferred
	approverName func(tool.Context) string
	pendingTTL   time.Duration
	pendingLimit int
}

// WithToolset sets the toolset of the tools that no Spec and no wrapped
// toolset names one for. The default is DefaultToolset.
func WithToolset(name string) Option {
	return func(c *config) { c.toolset = name }
}

// WithSpec describes the tool called name to policy beyond what ADK says of
// it. A later WithSpec for the same name replaces an earlier one.
func WithSpec(name string, s Spec) Option {
	return func(c *config) { c.specs[name] = s }
}

// WithApprovals makes approvals use ADK's tool confirmation: d must be the
// guard's Approver (agentguard.WithApprover(d)). A call that needs approval
// asks for a confirmation (tool.Context.RequestConfirmation) carrying the
// approval request; when the user answers it, the answer is given to d as
// the decision of WithApproverName's approver, and the call is checked
// again. Without it a call waiting for approval comes back to the model as
// a refusal naming the request, and no confirmation is asked for.
func WithApprovals(d *approval.Deferred) Option {
	return func(c *config) { c.deferred = d }
}

// WithApproverName sets who answered a confirmation, from the context of
// the run that carries the answer (the application puts the signed-in
// approver there). It is never taken from the model or the confirmation's
// payload. A name of "" records no answer: the call is refused.
//
// Without it the approver is "adk-user:" and the session's user ID
// (DefaultApproverName): ADK lets whoever posts to the session answer its
// confirmations, so by default the user the agent works for approves its
// calls, and the audit record says so. For approvals that someone else
// must give, set WithApproverName, or use another approver
// (approval.Queue) than ADK's confirmations.
func WithApproverName(f func(ctx tool.Context) string) Option {
	return func(c *config) { c.approverName = f }
}

// WithConfirmationLimit bounds the confirmations the adapter waits for at
// once (the oldest is forgotten first; its call is then asked about again
// when it is answered) and how long it waits for one. The defaults are
// those of approval.Deferred: approval.DefaultDeferredLimit and
// approval.DefaultDeferredTTL. Values <= 0 keep the defaults.
func WithConfirmationLimit(n int, ttl time.Duration) Option {
	return func(c *config) {
		if n > 0 {
			c.pendingLimit = n
		}
		if ttl > 0 {
			c.pendingTTL = ttl
		}
	}
}

// Guard guards the tool calls of ADK agents with an agentguard.Guard.
// Install it on an llmagent.Config (Configure) or on a runner as a plugin
// (Plugin). A Guard is safe for concurrent use, by many agents and runners.
type Guard struct {
	g   *agentguard.Guard
	cfg config

	mu sync.Mutex
	// flights are the calls allowed by BeforeTool and not yet forgotten,
	// by invocation, branch, agent and function-call ID.
	flights map[callKey]*flight
	// pending are the confirmations asked for, by session, branch, agent
	// and function-call ID.
	pending map[pendingKey]pendingRequest
	// agents are the agents built by Agent: those an agent tool may run.
	agents map[agent.Agent]bool

	// unknown holds no tool: it records the calls of tools ADK does not
	// have as lookup denials.
	unknown *agentguard.Registry

	// listing holds one registry per toolset, for the policy's listing
	// decision.
	listMu     sync.Mutex
	registries map[string]*agentguard.Registry
}

// New returns an adapter that guards ADK tool calls with g.
func New(g *agentguard.Guard, opts ...Option) (*Guard, error) {
	if g == nil {
		return nil, errors.New("adkguard: nil guard")
	}
	c := config{
		toolset:      DefaultToolset,
		specs:        map[string]Spec{},
		approverName: DefaultApproverName,
		pendingTTL:   approval.DefaultDeferredTTL,
		pendingLimit: approval.DefaultDeferredLimit,
	}
	for _, o := range opts {
		o(&c)
	}
	if c.approverName == nil {
		return nil, errors.New("adkguard: nil approver name function")
	}
	c.specs = maps.Clone(c.specs)
	return &Guard{
		g: g, cfg: c,
		flights:    map[callKey]*flight{},
		pending:    map[pendingKey]pendingRequest{},
		agents:     map[agent.Agent]bool{},
		unknown:    g.NewRegistry(c.toolset),
		registries: map[string]*agentguard.Registry{},
	}, nil
}
