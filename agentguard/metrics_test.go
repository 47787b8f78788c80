package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/credentialstest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

const metricCanary = "CANARY-metric-51d0e2"

// metricEnv is a guard whose metrics go to a manual reader, with tools
// "read" (allowed), "refund" (denied by policy), "invoice" (allowed, with
// a credential from provider "idp") and "send" (allowed on approval).
type metricEnv struct {
	g       *agentguard.Guard
	reader  *sdkmetric.ManualReader
	rec     *audittest.Recorder
	prov    *credentialstest.Provider
	read    *agentguard.Tool
	refund  *agentguard.Tool
	invoice *agentguard.Tool
	send    *agentguard.Tool
}

func newMetricEnv(t *testing.T, opts ...agentguard.Option) *metricEnv {
	t.Helper()
	e := &metricEnv{
		reader: sdkmetric.NewManualReader(),
		rec:    audittest.NewRecorder(),
		prov:   credentialstest.NewProvider(credentialstest.WithTokenPrefix(metricCanary)),
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	engine := policytest.Func(func(r *policy.Request) policy.Decision {
		switch r.Tool.Name {
		case "refund":
			return policy.Decision{Policies: []string{"no-refunds"}, Reason: "forbidden"}
		case "send":
			return policy.Decision{Allowed: true, Policies: []string{"send"},
				Obligations: []policy.Obligation{{Name: policy.ObligationApproval, Value: "one", PolicyID: "send"}}}
		}
		return policy.Decision{Allowed: true, Policies: []string{"allow"}}
	})
	broker := credentials.NewBroker(credentials.WithProvider("idp", e.prov), credentials.WithRetry(2, time.Millisecond))
	var err error
	e.g, err = agentguard.New(append([]agentguard.Option{
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/billing"))),
		agentguard.WithPolicy(engine),
		agentguard.WithBroker(broker),
		agentguard.WithAudit(e.rec),
		agentguard.WithMeterProvider(mp),
		agentguard.WithLogger(slog.New(slog.DiscardHandler)),
		agentguard.WithApprover(agentguard.ApproverFunc(func(_ context.Context, r *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			return r.Grant("alice"), nil
		})),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.g.Close(context.Background()) })
	ok := func(context.Context, json.RawMessage) (*agentguard.Result, error) {
		return &agentguard.Result{Output: "ok"}, nil
	}
	e.read = &agentguard.Tool{Name: "read", Handler: ok}
	e.refund = &agentguard.Tool{Name: "refund", Handler: ok}
	e.send = &agentguard.Tool{Name: "send", Handler: ok}
	e.invoice = &agentguard.Tool{Name: "invoice", Handler: ok,
		Credentials: []credentials.Requirement{{Name: "billing", Provider: "idp", Audience: "https://billing.example"}}}
	return e
}

// collected is what the reader holds: for each instrument, the value (sum
// or histogram count) of each attribute set, keyed "k=v,k=v" sorted.
type collected struct {
	values map[string]map[string]int64
	// sums are the histograms' sums, by the same keys.
	sums map[string]map[string]float64
	// units are the instruments' units; bounds the histograms' bucket bounds.
	units  map[string]string
	bounds map[string][]float64
	all    metricdata.ResourceMetrics
}

func (e *metricEnv) collect(t *testing.T) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := e.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	c := collected{values: map[string]map[string]int64{}, sums: map[string]map[string]float64{},
		units: map[string]string{}, bounds: map[string][]float64{}, all: rm}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/agentguard/go-sdk/agentguard" {
			t.Errorf("metrics in scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			vals := map[string]int64{}
			c.units[m.Name] = m.Unit
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if !d.IsMonotonic || d.Temporality != metricdata.CumulativeTemporality {
					t.Errorf("%s is not a cumulative counter", m.Name)
				}
				for _, dp := range d.DataPoints {
					vals[dp.Attributes.Encoded(attribute.DefaultEncoder())] = dp.Value
				}
			case metricdata.Histogram[float64]:
				sums := map[string]float64{}
				for _, dp := range d.DataPoints {
					k := dp.Attributes.Encoded(attribute.DefaultEncoder())
					vals[k] = int64(dp.Count)
					sums[k] = dp.Sum
					c.bounds[m.Name] = dp.Bounds
				}
				c.sums[m.Name] = sums
			default:
				t.Errorf("%s has data of type %T", m.Name, m.Data)
			}
			c.values[m.Name] = vals
		}
	}
	return c
}

// expect checks that instrument name has exactly the values want.
func (c collected) expect(t *testing.T, name string, want map[string]int64) {
	t.Helper()
	got := c.values[name]
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s{%s} = %d, want %d", name, k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s{%s} = %d, not expected", name, k, v)
		}
	}
}

// noCanary checks that no credential value reached a metric.
func (c collected) noCanary(t *testing.T) {
	t.Helper()
	if s := fmt.Sprintf("%+v", c.all); strings.Contains(s, metricCanary) {
		t.Error("a credential value reached the metrics")
	}
}

func allowedSet(tool string) string {
	return "agentguard.decision=allow,agentguard.outcome=ok,gen_ai.tool.name=" + tool
}

func deniedSet(tool, step string) string {
	return "agentguard.decision=deny,agentguard.outcome=denied,agentguard.step=" + step + ",gen_ai.tool.name=" + tool
}

func stepSet(s, tool string) string { return "agentguard.step=" + s + ",gen_ai.tool.name=" + tool }

func leaseSet(event, outcome string) string {
	return "agentguard.credential.event=" + event + ",agentguard.credential.provider=idp,agentguard.outcome=" + outcome
}

// TestMetricsCalls: allowed calls, a policy denial, an approved call, a
// credential issued, reused and revoked at task end, each counted once
// with its attributes, and one step duration per step that ran.
func TestMetricsCalls(t *testing.T) {
	e := newMetricEnv(t)
	ctx, task, err := e.g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tool *agentguard.Tool
		fail bool
	}{{e.read, false}, {e.refund, true}, {e.invoice, false}, {e.invoice, false}, {e.send, false}} {
		_, err := e.g.Invoke(ctx, c.tool, agentguard.Call{Args: json.RawMessage(`{}`)})
		if (err != nil) != c.fail {
			t.Fatalf("%s: %v", c.tool.Name, err)
		}
	}
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}

	got := e.collect(t)
	got.expect(t, agentguard.MetricToolCalls, map[string]int64{
		allowedSet("read"):               1,
		deniedSet("refund", "authorize"): 1,
		allowedSet("invoice"):            2,
		allowedSet("send"):               1,
	})
	got.expect(t, agentguard.MetricCredentialLeases, map[string]int64{
		leaseSet("issued", "ok"):  1,
		leaseSet("revoked", "ok"): 1,
	})
	got.expect(t, agentguard.MetricAuditFailures, nil)
	got.expect(t, agentguard.MetricStepDuration, map[string]int64{
		stepSet("identify", "read"): 1, stepSet("authorize", "read"): 1, stepSet("execute", "read"): 1,
		stepSet("identify", "refund"): 1, stepSet("authorize", "refund"): 1,
		stepSet("identify", "invoice"): 2, stepSet("authorize", "invoice"): 2, stepSet("credential", "invoice"): 2, stepSet("execute", "invoice"): 2,
		stepSet("identify", "send"): 1, stepSet("authorize", "send"): 1, stepSet("approve", "send"): 1, stepSet("execute", "send"): 1,
	})
	wantUnits := map[string]string{agentguard.MetricToolCalls: "{call}", agentguard.MetricStepDuration: "s",
		agentguard.MetricCredentialLeases: "{lease}"}
	for name, unit := range wantUnits {
		if got.units[name] != unit {
			t.Errorf("%s has unit %q, want %q", name, got.units[name], unit)
		}
	}
	// Buckets from microseconds (policy) to minutes (a human approver).
	if b := got.bounds[agentguard.MetricStepDuration]; len(b) < 10 || b[0] > 0.0001 || b[len(b)-1] < 60 {
		t.Errorf("step duration buckets %v", b)
	}
	for k, sum := range got.sums[agentguard.MetricStepDuration] {
		if sum <= 0 || sum > 10 {
			t.Errorf("%s{%s} sums %gs", agentguard.MetricStepDuration, k, sum)
		}
	}
	got.noCanary(t)
}

// TestMetricsLeaseFailures: a lease that cannot be had denies the call at
// the credential step and counts as failed; a revocation that fails counts
// as revoked with outcome error.
func TestMetricsLeaseFailures(t *testing.T) {
	e := newMetricEnv(t)
	ctx, task, err := e.g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	e.prov.FailIssue(credentialstest.ErrFake)
	if _, err := e.g.Invoke(ctx, e.invoice, agentguard.Call{}); !errors.Is(err, agentguard.ErrCredential) {
		t.Fatalf("Invoke = %v, want ErrCredential", err)
	}
	if _, err := e.g.Invoke(ctx, e.invoice, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	e.prov.FailRevoke(credentialstest.ErrFake, credentialstest.ErrFake, credentialstest.ErrFake)
	if err := task.End(context.Background()); err == nil {
		t.Fatal("End reported no failed revocation")
	}

	got := e.collect(t)
	got.expect(t, agentguard.MetricToolCalls, map[string]int64{
		deniedSet("invoice", "credential"): 1,
		allowedSet("invoice"):              1,
	})
	got.expect(t, agentguard.MetricCredentialLeases, map[string]int64{
		leaseSet("failed", "error"):  1,
		leaseSet("issued", "ok"):     1,
		leaseSet("revoked", "error"): 1,
	})
	got.expect(t, agentguard.MetricAuditFailures, nil)
	if n := got.values[agentguard.MetricStepDuration][stepSet("credential", "invoice")]; n != 2 {
		t.Errorf("credential step measured %d times, want 2 (the failure too)", n)
	}
	got.noCanary(t)
}

// TestMetricsAuditFailures: a record the sink refuses is counted, in both
// modes; in strict mode the call whose result is withheld counts as
// denied at the audit step, as its caller sees it.
func TestMetricsAuditFailures(t *testing.T) {
	for _, mode := range []string{"strict", "best-effort"} {
		t.Run(mode, func(t *testing.T) {
			var opts []agentguard.Option
			if mode == "best-effort" {
				opts = append(opts, agentguard.WithBestEffortAudit())
			}
			e := newMetricEnv(t, opts...)
			ctx, task, err := e.g.StartTask(context.Background(), agentguard.TaskSpec{})
			if err != nil {
				t.Fatal(err)
			}
			// Used once while the sink works, so that the tools are
			// trusted (on first use, which is audited).
			if _, err := e.g.Invoke(ctx, e.read, agentguard.Call{}); err != nil {
				t.Fatal(err)
			}
			_, _ = e.g.Invoke(ctx, e.refund, agentguard.Call{})
			e.rec.Fail(nil)
			_, err = e.g.Invoke(ctx, e.read, agentguard.Call{})
			_, _ = e.g.Invoke(ctx, e.refund, agentguard.Call{})
			e.rec.Recover()
			_ = task.End(context.Background())

			got := e.collect(t)
			want := map[string]int64{deniedSet("refund", "authorize"): 2}
			if mode == "strict" {
				if !errors.Is(err, agentguard.ErrAudit) {
					t.Fatalf("Invoke = %v, want ErrAudit", err)
				}
				want[allowedSet("read")] = 1
				want[deniedSet("read", "audit")] = 1
			} else {
				if err != nil {
					t.Fatal(err)
				}
				want[allowedSet("read")] = 2
			}
			got.expect(t, agentguard.MetricToolCalls, want)
			got.expect(t, agentguard.MetricAuditFailures, map[string]int64{"agentguard.audit.kind=tool_call": 2})
		})
	}
}

// TestMetricsLeaseRecordWrittenAgain: a lease whose issue record failed
// is audited again before its next use, and counted once.
func TestMetricsLeaseRecordWrittenAgain(t *testing.T) {
	var failIssue atomic.Bool
	failIssue.Store(true)
	e := newMetricEnv(t, agentguard.WithAudit(audit.SinkFunc(func(_ context.Context, ev audit.Event) error {
		if ev.Kind == audit.KindCredentialIssue && failIssue.Load() {
			return errors.New("disk full")
		}
		return nil
	})))
	ctx, task, err := e.g.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	if _, err := e.g.Invoke(ctx, e.invoice, agentguard.Call{}); !errors.Is(err, agentguard.ErrAudit) {
		t.Fatalf("first call = %v, want ErrAudit", err)
	}
	failIssue.Store(false)
	if _, err := e.g.Invoke(ctx, e.invoice, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	if n := e.prov.Issued(); n != 1 {
		t.Fatalf("%d leases issued, want 1 (the second call reuses it)", n)
	}
	got := e.collect(t)
	got.expect(t, agentguard.MetricCredentialLeases, map[string]int64{leaseSet("issued", "ok"): 1})
	// Two writes refused: the issue record, and the attempt to write it
	// again before the lease is used by the same call.
	got.expect(t, agentguard.MetricAuditFailures, map[string]int64{"agentguard.audit.kind=credential_issue": 2})
	got.expect(t, agentguard.MetricToolCalls, map[string]int64{
		deniedSet("invoice", "credential"): 1,
		allowedSet("invoice"):              1,
	})
}

// TestMetricsNoApprover: a call that needs an approval no approver can
// give is denied at the approve step, which is not timed: nobody was asked.
func TestMetricsNoApprover(t *testing.T) {
	e := newMetricEnv(t, agentguard.WithApprover(nil))
	if _, err := e.g.Invoke(context.Background(), e.send, agentguard.Call{}); !errors.Is(err, agentguard.ErrApprovalRequired) {
		t.Fatalf("Invoke = %v, want ErrApprovalRequired", err)
	}
	got := e.collect(t)
	got.expect(t, agentguard.MetricToolCalls, map[string]int64{deniedSet("send", "approve"): 1})
	got.expect(t, agentguard.MetricStepDuration, map[string]int64{
		stepSet("identify", "send"): 1, stepSet("authorize", "send"): 1,
	})
}

// TestMetricsSinkPanic: a sink that panics is an audit failure, and the
// call, denied, is counted once.
func TestMetricsSinkPanic(t *testing.T) {
	e := newMetricEnv(t, agentguard.WithAudit(audit.SinkFunc(func(_ context.Context, ev audit.Event) error {
		if ev.Kind == audit.KindToolCall {
			panic("sink broke")
		}
		return nil
	})))
	if _, err := e.g.Invoke(context.Background(), e.read, agentguard.Call{}); !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("Invoke = %v, want a denial", err)
	}
	got := e.collect(t)
	got.expect(t, agentguard.MetricToolCalls, map[string]int64{deniedSet("read", "audit"): 1})
	got.expect(t, agentguard.MetricAuditFailures, map[string]int64{"agentguard.audit.kind=tool_call": 1})
}

// TestMetricsUnknownTool: the name of a tool that is not registered, which
// the model chose, is not a metric attribute.
func TestMetricsUnknownTool(t *testing.T) {
	e := newMetricEnv(t)
	r := e.g.NewRegistry("billing")
	if err := r.Register(e.read); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := r.Call(context.Background(), agentguard.Call{Name: fmt.Sprint("made-up-", i)}); !errors.Is(err, agentguard.ErrUnknownTool) {
			t.Fatalf("Call = %v", err)
		}
	}
	if _, err := r.Call(context.Background(), agentguard.Call{Name: "read"}); err != nil {
		t.Fatal(err)
	}
	got := e.collect(t)
	got.expect(t, agentguard.MetricToolCalls, map[string]int64{
		deniedSet("_OTHER", "lookup"): 3,
		allowedSet("read"):            1,
	})
}

// TestMetricsPastCacheCap: with more tool names than the guard caches
// attribute sets for (4096 per instrument), calls of tools past the cap
// are still counted and timed under their own names, as often as they ran.
func TestMetricsPastCacheCap(t *testing.T) {
	const tools = 4096 + 4
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithCardinalityLimit(4*tools))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	env := agentguardtest.New(t, nil, metricCanary, agentguard.WithMeterProvider(mp),
		agentguard.WithAudit(audit.Discard))
	ok := func(context.Context, json.RawMessage) (*agentguard.Result, error) { return &agentguard.Result{}, nil }
	invoke := func(name string) error {
		_, err := env.Guard.Invoke(context.Background(), &agentguard.Tool{Name: name, Handler: ok}, agentguard.Call{})
		return err
	}
	// Four goroutines at once, so that the race detector sees the cache
	// filled and read past its cap concurrently.
	var wg sync.WaitGroup
	errs := make(chan error, tools)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < tools; i += 4 {
				if err := invoke(fmt.Sprint("t", i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	last := fmt.Sprint("t", tools-1)
	for _, name := range []string{last, "t0"} {
		if err := invoke(name); err != nil {
			t.Fatal(err)
		}
	}

	got := (&metricEnv{reader: reader}).collect(t)
	calls := got.values[agentguard.MetricToolCalls]
	if len(calls) != tools {
		t.Errorf("%d series of calls, want %d", len(calls), tools)
	}
	for _, name := range []string{"t0", last} {
		if n := calls[allowedSet(name)]; n != 2 {
			t.Errorf("%s counted %d times, want 2", name, n)
		}
		for _, step := range []string{"identify", "authorize", "execute"} {
			if n := got.values[agentguard.MetricStepDuration][stepSet(step, name)]; n != 2 {
				t.Errorf("%s of %s timed %d times, want 2", step, name, n)
			}
		}
	}
	if n := calls[allowedSet(fmt.Sprint("t", tools-2))]; n != 1 {
		t.Errorf("a tool past the cap counted %d times, want 1", n)
	}
}
