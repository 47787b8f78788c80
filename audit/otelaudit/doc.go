// Package otelaudit ships AgentGuard's audit events as OpenTelemetry log
// records: [Sink] is an audit.Sink that emits each event through a
// log.LoggerProvider, for the OpenTelemetry SDK's processors and exporters
// to deliver to a collector.
//
//	sink := audit.Tee(file, otelaudit.NewSink(lp))
//	g, _ := agentguard.New(..., agentguard.WithAudit(sink))
//
// It is a module of its own, github.com/agentguard/go-sdk/audit/otelaudit,
// so that the core module does not require the OpenTelemetry logs API,
// whose v1 is incompatible with the v0 releases some agent frameworks
// still build with (ADK v1.2.0 needs go.opentelemetry.io/otel/log v0.20 or
// older). Import it only where the logs API v1 (OpenTelemetry v1.47 or
// newer) can be used.
package otelaudit
