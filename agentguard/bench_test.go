package agentguard_test

import (
	"context"
	"encoding/json"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

const benchPolicies = `
@id("read") permit(principal in AgentGroup::"support", action == Action::"read_ticket", resource);
@id("refund") permit(principal in AgentGroup::"support", action == Action::"issue_refund", resource);
@id("refund-limit") forbid(principal, action == Action::"issue_refund", resource) when { context.args.amount > 100 };
@id("email") permit(principal in AgentGroup::"support", action == Action::"send_email", resource);
@id("email-pii") forbid(principal, action == Action::"send_email", resource) when { context.task.taint.contains("pii") };
`

// BenchmarkInvoke measures what the guard adds to a tool call: "direct"
// calls the handler alone; the others run the whole pipeline with audit to
// audit.Discard and the no-op tracer, so the figure is the guard's own cost;
// "+metrics" sends the guard's metrics to an SDK meter provider.
func BenchmarkInvoke(b *testing.B) {
	handler := func(context.Context, json.RawMessage) (*agentguard.Result, error) {
		return &agentguard.Result{Output: "ok"}, nil
	}
	args := json.RawMessage(`{"order":"O-77","amount":40}`)
	agent := "spiffe://example.org/agent/support-bot"
	set := policy.MustParseSet("bench.cedar", benchPolicies)
	cedarEngine, err := policy.NewCedarEngine(set, policy.WithAgentGroups(map[string][]string{agent: {"support"}}))
	if err != nil {
		b.Fatal(err)
	}
	newGuard := func(e policy.Engine, opts ...agentguard.Option) *agentguard.Guard {
		g, err := agentguard.New(append([]agentguard.Option{
			agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(agent))),
			agentguard.WithPolicy(e),
			agentguard.WithAudit(audit.Discard),
			agentguard.WithBroker(credentials.NewBroker(credentials.WithProvider("static", credentials.NewStaticProvider("v")))),
		}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = g.Close(context.Background()) })
		return g
	}
	tool := &agentguard.Tool{Name: "issue_refund", Handler: handler}
	withCred := &agentguard.Tool{Name: "issue_refund", Handler: handler,
		Credentials: []credentials.Requirement{{Name: "pay", Provider: "static", Audience: "payments"}}}

	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		for b.Loop() {
			if _, err := handler(ctx, args); err != nil {
				b.Fatal(err)
			}
		}
	})
	run := func(b *testing.B, g *agentguard.Guard, t *agentguard.Tool) {
		ctx, task, err := g.StartTask(context.Background(), agentguard.TaskSpec{})
		if err != nil {
			b.Fatal(err)
		}
		defer task.End(context.Background())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := g.Invoke(ctx, t, agentguard.Call{ID: "c", Args: args}); err != nil {
				b.Fatal(err)
			}
		}
	}
	allowAll := policy.EngineFunc(func(context.Context, *policy.Request) (policy.Decision, error) {
		return policy.Decision{Allowed: true, Policies: []string{"allow"}}, nil
	})
	// metrics sends the guard's metrics to an SDK meter provider, read
	// once at the end, instead of the global no-op.
	metrics := func(b *testing.B) agentguard.Option {
		r := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
		b.Cleanup(func() {
			var rm metricdata.ResourceMetrics
			if err := r.Collect(context.Background(), &rm); err != nil || len(rm.ScopeMetrics) == 0 {
				b.Errorf("no metrics collected (%v)", err)
			}
			_ = mp.Shutdown(context.Background())
		})
		return agentguard.WithMeterProvider(mp)
	}
	b.Run("guarded/allow-all", func(b *testing.B) { run(b, newGuard(allowAll), tool) })
	b.Run("guarded/allow-all+metrics", func(b *testing.B) { run(b, newGuard(allowAll, metrics(b)), tool) })
	b.Run("guarded/cedar", func(b *testing.B) { run(b, newGuard(cedarEngine), tool) })
	b.Run("guarded/cedar+metrics", func(b *testing.B) { run(b, newGuard(cedarEngine, metrics(b)), tool) })
	b.Run("guarded/cedar+credential", func(b *testing.B) { run(b, newGuard(cedarEngine), withCred) })
	b.Run("guarded/cedar+credential+metrics", func(b *testing.B) { run(b, newGuard(cedarEngine, metrics(b)), withCred) })
	// Begin and End, as adapters of frameworks with before and after
	// hooks use them: the pipeline split in two, with a goroutine between.
	b.Run("begin-end/cedar", func(b *testing.B) {
		g := newGuard(cedarEngine)
		ctx, task, err := g.StartTask(context.Background(), agentguard.TaskSpec{})
		if err != nil {
			b.Fatal(err)
		}
		defer task.End(context.Background())
		b.ReportAllocs()
		for b.Loop() {
			tctx, x, err := g.Begin(ctx, tool, agentguard.Call{ID: "c", Args: args})
			if err != nil {
				b.Fatal(err)
			}
			res, err := handler(tctx, args)
			if _, err := x.End(res, err); err != nil {
				b.Fatal(err)
			}
		}
	})
}
