package audit

import (
	"context"
	"log/slog"
)

// Sink stores audit events. Write is called once per event, possibly from
// many goroutines at once; implementations must be safe for concurrent use.
// An error means the event may not be stored.
type Sink interface {
	Write(ctx context.Context, e Event) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, e Event) error

// Write calls f.
func (f SinkFunc) Write(ctx context.Context, e Event) error { return f(ctx, e) }

// Discard is a Sink that drops every event. A guard configured with it keeps
// no audit trail; it exists for benchmarks and explicit opt-outs.
var Discard Sink = SinkFunc(func(context.Context, Event) error { return nil })

// SlogSink writes each event as one log record at level Info, message
// "agentguard.audit", with the event's fields in the group "event".
type SlogSink struct {
	logger *slog.Logger
}

var _ Sink = (*SlogSink)(nil)

// NewSlogSink returns a sink that writes to logger (slog.Default() if nil).
func NewSlogSink(logger *slog.Logger) *SlogSink {
	if logger == nil {
		logger = slog.Default()
	}
	return &SlogSink{logger: logger}
}

// Write logs e. slog handlers report no errors, so neither does Write.
func (s *SlogSink) Write(ctx context.Context, e Event) error {
	s.logger.LogAttrs(ctx, slog.LevelInfo, "agentguard.audit", slog.Any("event", e))
	return nil
}
