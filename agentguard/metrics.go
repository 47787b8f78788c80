package agentguard

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
)

// The guard's metric instruments (see WithMeterProvider).
const (
	// MetricToolCalls counts tool calls ({call}) by gen_ai.tool.name,
	// agentguard.decision, agentguard.outcome and, for a call denied or
	// failed, agentguard.step. A call denied at StepLookup (a Registry
	// call naming no registered tool, or an Invoke whose Call.Name is not
	// its Tool's name) is counted under the tool name "_OTHER", since that
	// name may be the model's. Other calls are counted under their Tool's
	// name, so the number of series grows only with the tools the program
	// passes to Invoke, Wrap and Register.
	MetricToolCalls = "agentguard.tool.calls"
	// MetricStepDuration is how long each step of a call took (s), by
	// agentguard.step (identify, authorize, approve, credential, execute)
	// and gen_ai.tool.name: one sample for each step that ran, recorded
	// when the call ends. identify includes the time spent recording an
	// identity change the call noticed, or waiting for another call to
	// record one. authorize is the policy engine's time; a call that was
	// approved is decided again, and its one authorize sample is the sum of
	// both decisions. approve is the time the approver took.
	MetricStepDuration = "agentguard.step.duration"
	// MetricCredentialLeases counts credential lease events ({lease}) by
	// agentguard.credential.event (issued, refreshed, revoked, failed),
	// agentguard.credential.provider and agentguard.outcome (ok, error).
	MetricCredentialLeases = "agentguard.credential.leases"
	// MetricAuditFailures counts audit records the sink refused
	// ({record}), by agentguard.audit.kind, in strict and best-effort mode
	// alike.
	MetricAuditFailures = "agentguard.audit.failures"
)

// AttrAuditKind is the kind of audit record an audit failure concerns.
const AttrAuditKind = attribute.Key("agentguard.audit.kind")

// otherTool is the tool name of every call denied at StepLookup: a
// Registry call naming no registered tool, and an Invoke whose Call.Name
// differs from the Tool's name (the tool is known, but the name the call
// gives may be the model's). Either name could be anything, which would
// make the metrics' cardinality unbounded.
const otherTool = "_OTHER"

// maxAttrSets bounds the attribute sets each instrument caches, and so the
// memory a program with very many tool names can make the guard hold. Past
// it, a measurement with an attribute set not cached builds its options
// (a few allocations) and takes no lock; the sets cached stay.
const maxAttrSets = 4096

// stepBuckets are the step histogram's bucket bounds in seconds: from the
// microseconds policy takes to the minutes a human approver may.
var stepBuckets = []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// timedStep is a step whose duration is measured.
type timedStep uint8

const (
	timeIdentify timedStep = iota
	timeAuthorize
	timeApprove
	timeCredential
	timeExecute
	numTimedSteps
)

var timedStepNames = [numTimedSteps]string{StepIdentify, StepAuthorize, StepApprove, StepCredential, StepExecute}

// stepTimes are the durations of a call's timed steps.
type stepTimes struct {
	// on says durations are measured: the histogram records.
	on  bool
	ran uint8 // bit i set when step i ran
	dur [numTimedSteps]time.Duration
}

// metrics are the guard's instruments. Counts are derived from the audit
// events the guard writes (count), so that every path is covered once.
type metrics struct {
	calls         metric.Int64Counter
	stepDuration  metric.Float64Histogram
	leases        metric.Int64Counter
	auditFailures metric.Int64Counter

	callSets  attrSets[callKey]
	stepSets  attrSets[stepKey]
	leaseSets attrSets[leaseKey]
	auditSets attrSets[audit.Kind]
}

type callKey struct{ tool, decision, outcome, step string }
type stepKey struct {
	tool string
	step timedStep
}
type leaseKey struct{ event, provider, outcome string }

// newMetrics makes the instruments of mp. An instrument mp fails to make is
// a no-op, and the failure is returned for the guard to log.
func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter(instrumentation)
	var errs []error
	calls, err := m.Int64Counter(MetricToolCalls, metric.WithUnit("{call}"),
		metric.WithDescription("Tool calls run through the guard, by decision and outcome."))
	errs = append(errs, err)
	steps, err := m.Float64Histogram(MetricStepDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of the guard's steps of a tool call."),
		metric.WithExplicitBucketBoundaries(stepBuckets...))
	errs = append(errs, err)
	leases, err := m.Int64Counter(MetricCredentialLeases, metric.WithUnit("{lease}"),
		metric.WithDescription("Credential leases issued, refreshed, revoked or failed for tasks."))
	errs = append(errs, err)
	failures, err := m.Int64Counter(MetricAuditFailures, metric.WithUnit("{record}"),
		metric.WithDescription("Audit records the audit sink failed to write."))
	errs = append(errs, err)

	var nop noop.Meter
	if calls == nil {
		calls, _ = nop.Int64Counter(MetricToolCalls)
	}
	if steps == nil {
		steps, _ = nop.Float64Histogram(MetricStepDuration)
	}
	if leases == nil {
		leases, _ = nop.Int64Counter(MetricCredentialLeases)
	}
	if failures == nil {
		failures, _ = nop.Int64Counter(MetricAuditFailures)
	}
	out := &metrics{calls: calls, stepDuration: steps, leases: leases, auditFailures: failures}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("agentguard: metrics: %w", err)
	}
	return out, nil
}

// count measures an audit event as it is written: a tool call, a lease
// event, and the sink's failure. first is false when the event is written
// again after a failure, so it is not counted twice (its failure is).
// withheld says a call's result is withheld because its record failed: the
// call is counted as denied at StepAudit, as its caller sees it.
func (m *metrics) count(ctx context.Context, e audit.Event, first, failed, withheld bool) {
	if first {
		switch e.Kind {
		case audit.KindToolCall:
			m.countCall(ctx, e, failed && withheld)
		case audit.KindCredentialIssue, audit.KindCredentialRefresh, audit.KindCredentialFail, audit.KindCredentialRevoke:
			m.countLease(ctx, e)
		}
	}
	if failed && m.auditFailures.Enabled(ctx) {
		m.auditFailures.Add(ctx, 1, m.auditSets.get(e.Kind, func() attribute.Set {
			return attribute.NewSet(AttrAuditKind.String(string(e.Kind)))
		}).add...)
	}
}

func (m *metrics) countCall(ctx context.Context, e audit.Event, withheld bool) {
	if !m.calls.Enabled(ctx) {
		return
	}
	k := callKey{tool: e.Tool, decision: e.Decision, outcome: e.Outcome, step: e.Step}
	if withheld && e.Outcome == audit.OutcomeOK {
		k.decision, k.outcome, k.step = audit.Deny, audit.OutcomeDenied, StepAudit
	}
	if k.step == StepLookup {
		k.tool = otherTool
	}
	m.calls.Add(ctx, 1, m.callSets.get(k, func() attribute.Set {
		kvs := []attribute.KeyValue{
			semconv.GenAIToolNameKey.String(k.tool),
			AttrDecision.String(k.decision),
			AttrOutcome.String(k.outcome),
		}
		if k.step != "" {
			kvs = append(kvs, AttrStep.String(k.step))
		}
		return attribute.NewSet(kvs...)
	}).add...)
}

func (m *metrics) countLease(ctx context.Context, e audit.Event) {
	if !m.leases.Enabled(ctx) {
		return
	}
	k := leaseKey{outcome: e.Outcome}
	switch e.Kind {
	case audit.KindCredentialIssue:
		k.event = string(credentials.EventIssued)
	case audit.KindCredentialRefresh:
		k.event = string(credentials.EventRefreshed)
	case audit.KindCredentialFail:
		k.event = string(credentials.EventFailed)
	default:
		k.event = string(credentials.EventRevoked)
	}
	if e.Credential != nil {
		k.provider = e.Credential.Provider
	}
	m.leases.Add(ctx, 1, m.leaseSets.get(k, func() attribute.Set {
		return attribute.NewSet(AttrCredentialEvent.String(k.event), AttrProvider.String(k.provider), AttrOutcome.String(k.outcome))
	}).add...)
}

// timing says whether step durations are to be measured.
func (m *metrics) timing(ctx context.Context) bool { return m.stepDuration.Enabled(ctx) }

// recordSteps records the durations of the steps of a call of tool that ran.
func (m *metrics) recordSteps(ctx context.Context, tool string, st *stepTimes) {
	for s := range numTimedSteps {
		if st.ran&(1<<s) == 0 {
			continue
		}
		m.stepDuration.Record(ctx, st.dur[s].Seconds(), m.stepSets.get(stepKey{tool: tool, step: s}, func() attribute.Set {
			return attribute.NewSet(AttrStep.String(timedStepNames[s]), semconv.GenAIToolNameKey.String(tool))
		}).rec...)
	}
}

// clock returns the time now when the call's steps are timed.
func (p *call) clock() time.Time {
	if !p.times.on {
		return time.Time{}
	}
	return time.Now()
}

// took adds the time since start, from clock, to step s of the call.
func (p *call) took(s timedStep, start time.Time) {
	if p.times.on {
		p.times.dur[s] += time.Since(start)
		p.times.ran |= 1 << s
	}
}

// recordSteps records the call's step durations, once, when it ends.
func (p *call) recordSteps(ctx context.Context) {
	if p.times.ran != 0 {
		p.g.metrics.recordSteps(ctx, p.tool.Name, &p.times)
		p.times.ran = 0
	}
}

// measure is the measurement options of one attribute set, made once: a
// measurement then allocates nothing.
type measure struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

func newMeasure(set attribute.Set) *measure {
	opt := metric.WithAttributeSet(set)
	return &measure{add: []metric.AddOption{opt}, rec: []metric.RecordOption{opt}}
}

// attrSets caches measurement options by key. Reads take no lock: the map
// is replaced, never changed, when a key is added.
type attrSets[K comparable] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[K]*measure]
}

// get returns the options of k, making its attribute set with set the first
// time. Once maxAttrSets are cached, a key not cached gets options made for
// the one measurement, without taking the lock.
func (c *attrSets[K]) get(k K, set func() attribute.Set) *measure {
	if m := c.m.Load(); m != nil {
		if o, ok := (*m)[k]; ok {
			return o
		}
		if len(*m) >= maxAttrSets {
			return newMeasure(set())
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if o, ok := (*old)[k]; ok {
			return o
		}
	}
	o := newMeasure(set())
	if old != nil && len(*old) >= maxAttrSets {
		return o
	}
	var next map[K]*measure
	if old != nil {
		next = maps.Clone(*old)
	} else {
		next = make(map[K]*measure, 1)
	}
	next[k] = o
	c.m.Store(&next)
	return o
}
