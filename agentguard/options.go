package agentguard

import (
	"context"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// Option configures a Guard.
type Option func(*config)

type config struct {
	identity    identity.Source
	engine      policy.Engine
	broker      Broker
	approver    Approver
	integrity   Integrity
	sink        audit.Sink
	bestEffort  bool
	tp          trace.TracerProvider
	mp          metric.MeterProvider
	logger      *slog.Logger
	now         func() time.Time
	endTimeout  time.Duration
	requireTask bool
	approvalTTL time.Duration
	maxDepth    int
	depthSet    bool
	bundles     jwtbundle.Source
	obligations map[string]ObligationFunc
	// riskApproval is the lowest tool risk that needs an approval on every
	// call; riskApprovalSet says it was set.
	riskApproval    Risk
	riskApprovalSet bool
	// budget is every task's budget (WithBudget).
	budget Budget
	// pins is the lock tools and prompts are checked against (WithLock);
	// New makes its own, trusting on first use, when none is given.
	pins *pinning
}

// WithRiskApproval makes every call of a tool whose Risk is min or higher
// ask the Approver, whatever policy says (kind "risk-<level>", such as
// "risk-high"). Policy still decides first: approval never allows a call
// policy denies.
func WithRiskApproval(min Risk) Option {
	return func(c *config) { c.riskApproval, c.riskApprovalSet = min, true }
}

// ObligationFunc fulfils an obligation that a deciding permit policy sets
// on a call, such as @audit_copy("security") or @rate("10/min"), after
// approval and before credentials and execution. o.Value is the
// annotation's value; call is the call as policy saw it (canonical
// arguments); for a call made in a task, the task is TaskFromContext(ctx).
// A nil error lets the call go ahead; an error denies it with
// ErrObligation, and its text is recorded (scrubbed of the task's user
// token), so keep secrets out of it.
type ObligationFunc func(ctx context.Context, o policy.Obligation, call Call) error

// WithObligation sets the function that fulfils obligation name. The engine
// must report the annotation as an obligation too (policy.WithObligations).
// A call whose decision carries an obligation the guard has no function for
// is denied (fail closed). "approval" is built in: it asks the Approver.
func WithObligation(name string, f ObligationFunc) Option {
	return func(c *config) {
		if c.obligations == nil {
			c.obligations = map[string]ObligationFunc{}
		}
		c.obligations[name] = f
	}
}

// DefaultMaxDelegationDepth is how many agents may stand between the root
// agent and the one acting, unless WithMaxDelegationDepth says otherwise.
const DefaultMaxDelegationDepth = 4

// WithMaxDelegationDepth bounds delegation chains: a call, handoff or
// accepted handoff whose chain of delegating agents is longer than n is
// denied. Zero forbids delegation altogether.
func WithMaxDelegationDepth(n int) Option {
	return func(c *config) { c.maxDepth, c.depthSet = max(n, 0), true }
}

// WithTrustBundles sets the SPIFFE JWT bundles that verify handoffs from
// agents in other processes (AcceptHandoff). Without it, the identity
// source is used when it is a jwtbundle.Source, as identity.SPIFFEAgent
// and identity.DevAgent are.
func WithTrustBundles(b jwtbundle.Source) Option { return func(c *config) { c.bundles = b } }

// WithIdentity sets where the acting agent's identity comes from. Required.
func WithIdentity(s identity.Source) Option { return func(c *config) { c.identity = s } }

// WithPolicy sets the policy engine. Required: there is no implicit allow-all.
func WithPolicy(e policy.Engine) Option { return func(c *config) { c.engine = e } }

// WithBroker sets the credential broker. Without one, a tool that declares a
// credential is denied with ErrCredential.
func WithBroker(b Broker) Option { return func(c *config) { c.broker = b } }

// WithApprover sets who approves calls that policy marks @approval. Without
// one, such calls are denied with ErrApprovalRequired.
func WithApprover(a Approver) Option { return func(c *config) { c.approver = a } }

// WithIntegrity sets the check of tool definitions. Without one, every
// registered definition is accepted.
func WithIntegrity(i Integrity) Option { return func(c *config) { c.integrity = i } }

// WithAudit sets the audit sink. Without one, events go to an audit.SlogSink
// on the guard's logger.
func WithAudit(s audit.Sink) Option { return func(c *config) { c.sink = s } }

// WithBestEffortAudit makes audit failures logged instead of failing the
// call. The default, strict mode, fails any call whose record cannot be
// written.
func WithBestEffortAudit() Option { return func(c *config) { c.bestEffort = true } }

// WithTracerProvider sets where spans go. Nil means the global provider
// (a no-op unless the program set one).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// WithMeterProvider sets where the guard's metrics go: the instruments
// MetricToolCalls, MetricStepDuration, MetricCredentialLeases and
// MetricAuditFailures. Nil means the global provider (a no-op unless the
// program set one).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// WithLogger sets the logger for the guard's own warnings. Nil means
// slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithClock sets the guard's clock, for tests.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithApprovalTimeout sets how long an approval request stays valid. An
// approval that arrives later does not authorize the call. The default is
// five minutes; the approver is also bound by the call's context.
func WithApprovalTimeout(d time.Duration) Option { return func(c *config) { c.approvalTTL = d } }

// WithRequireTask denies every call made outside a task with ErrNoTask.
// Without it such a call gets a task of its own, which starts with no
// history: no calls, no tools used, no taint. Require tasks when policy
// relies on task state, so that a context that lost its task cannot wipe it.
func WithRequireTask() Option { return func(c *config) { c.requireTask = true } }

// WithEndTimeout bounds how long ending a task may take to revoke its
// credentials and write its audit records. Revocation does not stop because
// the context given to End or Close is cancelled (a lease left valid is worse
// than a late return); this bound stops it. The default is 10 seconds.
func WithEndTimeout(d time.Duration) Option { return func(c *config) { c.endTimeout = d } }

// WithLock makes the guard trust the tool definitions and prompts pinned in
// l, and nothing else until a change is reviewed and approved, which pins
// it in l. Without WithLock the guard keeps its own lock and trusts on
// first use (see Guard.Lock). A nil l is an empty lock: nothing is trusted
// until approved.
func WithLock(l *Lock) Option {
	return func(c *config) {
		if l == nil {
			l = NewLock()
		}
		c.pins = &pinning{lock: l}
	}
}

// WithBudget sets the budget of every task of the guard: how many calls a
// task may run in all, of each tool, and per minute (see Budget). A task's
// TaskSpec.Budget may tighten it, never loosen it. A call past a budget is
// denied with ErrBudget at StepBudget, before policy or an approver is
// asked. A call made outside any task has a task of its own, whose budget
// it cannot exhaust: use WithRequireTask for budgets to bind. New fails on
// a negative limit.
func WithBudget(b Budget) Option { return func(c *config) { c.budget = b.clone() } }
