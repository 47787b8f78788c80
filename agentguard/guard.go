package agentguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/audit"
)

// instrumentation is the tracer's name.
const instrumentation = "github.com/agentguard/go-sdk/agentguard"

// Guard runs every tool call through the pipeline: identify, check
// integrity, authorize, approve, credential, execute, record. Any step that
// cannot complete denies the call, and the call is audited either way.
//
// A Guard is safe for concurrent use. Close it when done: Close ends the
// tasks still open, revoking their credentials.
type Guard struct {
	cfg     config
	tracer  trace.Tracer
	metrics *metrics

	closed atomic.Bool
	mu     sync.Mutex
	tasks  map[string]*Task // open tasks by ID
	// implicit holds the open tasks of calls made outside any task, so
	// that Suspend and Close reach them too; apart from tasks, whose IDs
	// callers choose and may not repeat.
	implicit  map[*Task]struct{}
	closeOnce sync.Once
	closeErr  error

	// suspensions is the kill switch (Suspend, Resume).
	suspensions suspensions
	// identities follows the identity source, to record its changes.
	identities identityWatch
}

// New returns a guard. An identity source and a policy engine are required:
// without them New fails rather than allow everything.
func New(opts ...Option) (*Guard, error) {
	cfg := config{now: time.Now, endTimeout: 10 * time.Second, approvalTTL: 5 * time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.identity == nil {
		return nil, errors.New("agentguard: New: no identity source (WithIdentity)")
	}
	if cfg.engine == nil {
		return nil, errors.New("agentguard: New: no policy engine (WithPolicy); there is no implicit allow-all")
	}
	if err := cfg.budget.validate(); err != nil {
		return nil, fmt.Errorf("agentguard: New: %w", err)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if !cfg.depthSet {
		cfg.maxDepth = DefaultMaxDelegationDepth
	}
	if cfg.bundles == nil {
		cfg.bundles, _ = cfg.identity.(jwtbundle.Source)
	}
	if cfg.sink == nil {
		cfg.sink = audit.NewSlogSink(cfg.logger)
	}
	if cfg.pins == nil {
		// No lock given: trust on first use (see WithLock).
		cfg.pins = &pinning{lock: NewLock(), tofu: true}
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	m, err := newMetrics(cfg.mp)
	if err != nil {
		// Metrics are no security control: the guard runs without the
		// instruments it could not make.
		cfg.logger.Warn("agentguard: metric instruments not made", slog.String("error", err.Error()))
	}
	return &Guard{
		cfg:      cfg,
		tracer:   cfg.tp.Tracer(instrumentation),
		metrics:  m,
		tasks:    map[string]*Task{},
		implicit: map[*Task]struct{}{},
	}, nil
}

// Close ends every task still open (revoking its credentials), those of
// calls under way outside any task included (their contexts cancelled),
// and makes every later call fail with ErrClosed. It closes nothing it was
// given. Close is idempotent; every call returns the first one's error. As with
// Task.End, revocation does not stop because ctx is cancelled; the tasks
// end together, each bounded by WithEndTimeout.
func (g *Guard) Close(ctx context.Context) error {
	g.closeOnce.Do(func() {
		g.closed.Store(true)
		g.mu.Lock()
		open := g.openTasks()
		g.mu.Unlock()
		// Together, so that closing takes one task's end, not the sum.
		errs := make([]error, len(open))
		var wg sync.WaitGroup
		for i, t := range open {
			wg.Go(func() { errs[i] = t.end(ctx, "guard closed") })
		}
		wg.Wait()
		g.closeErr = errors.Join(errs...)
	})
	return g.closeErr
}

// track records t as open. Two open tasks may not share an ID: they would
// share leases and revoke each other's.
func (g *Guard) track(t *Task) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed.Load() {
		return ErrClosed
	}
	if _, dup := g.tasks[t.spec.ID]; dup {
		return fmt.Errorf("agentguard: start task: a task with ID %q is already open", t.spec.ID)
	}
	g.tasks[t.spec.ID] = t
	return nil
}

func (g *Guard) untrack(t *Task) {
	g.mu.Lock()
	if t.implicit {
		delete(g.implicit, t)
	} else if g.tasks[t.spec.ID] == t {
		delete(g.tasks, t.spec.ID)
	}
	g.mu.Unlock()
}

// trackImplicit records t, the task of a call made outside any task, as
// open until it ends.
func (g *Guard) trackImplicit(t *Task) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed.Load() {
		return ErrClosed
	}
	g.implicit[t] = struct{}{}
	return nil
}

// openTasks returns the open tasks, implicit ones included. g.mu is held.
func (g *Guard) openTasks() []*Task {
	open := make([]*Task, 0, len(g.tasks)+len(g.implicit))
	for _, t := range g.tasks {
		open = append(open, t)
	}
	for t := range g.implicit {
		open = append(open, t)
	}
	return open
}

// writeAudit writes e. In strict mode a failure is returned wrapping
// ErrAudit; in best-effort mode it is logged and nil is returned. The
// guard's metrics count e (a tool call, a lease event) whether or not the
// sink failed, and count the failure. A sink that panics has failed: the
// panic is recovered and returned as an ErrAudit failure, in either mode,
// so that what the record was for (a call, a suspension, a review) does
// not go ahead half done.
func (g *Guard) writeAudit(ctx context.Context, e audit.Event) error {
	return g.writeAuditEvent(ctx, e, true)
}

// rewriteAudit writes again a record whose first write failed: the metrics
// do not count its event twice, only a second failure. A panic is a
// failure, as in writeAudit.
func (g *Guard) rewriteAudit(ctx context.Context, e audit.Event) error {
	return g.writeAuditEvent(ctx, e, false)
}

// writeAuditEvent writes e and counts it in the metrics; first is false
// when e was written (and counted) before. A sink's panic is recovered and
// returned as a failed write wrapping ErrAudit, whatever the audit mode:
// what the record was to vouch for does not go ahead, and the panic does
// not reach the caller.
func (g *Guard) writeAuditEvent(ctx context.Context, e audit.Event, first bool) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &auditError{err: fmt.Errorf("%w: panic: %v", ErrInternal, v)}
		}
	}()
	return g.writeAuditOnce(ctx, e, first)
}

// writeAuditOnce is writeAuditEvent without the recovery.
func (g *Guard) writeAuditOnce(ctx context.Context, e audit.Event, first bool) error {
	var err error
	written := false
	defer func() {
		// A sink that panicked failed too, and the call it records is
		// denied whatever the mode (see run).
		g.metrics.count(ctx, e, first, err != nil || !written, !g.cfg.bestEffort || !written)
	}()
	err = g.cfg.sink.Write(context.WithoutCancel(ctx), e)
	written = true
	if err == nil {
		return nil
	}
	if g.cfg.bestEffort {
		g.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "agentguard: audit record not written",
			slog.String("kind", string(e.Kind)), slog.String("task", e.Task),
			slog.String("tool", e.Tool), slog.String("call_id", e.CallID),
			slog.String("error", err.Error()))
		return nil
	}
	return &auditError{err: err}
}

type auditError struct{ err error }

func (e *auditError) Error() string   { return ErrAudit.Error() + ": " + e.err.Error() }
func (e *auditError) Is(t error) bool { return t == ErrAudit }
func (e *auditError) Unwrap() error   { return e.err }
