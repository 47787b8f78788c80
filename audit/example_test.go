package audit_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/agentguard/go-sdk/audit"
)

// SlogSink writes each event as one log record.
func ExampleSlogSink() {
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	})
	sink := audit.NewSlogSink(slog.New(h))
	_ = sink.Write(context.Background(), audit.Event{
		Time: time.Now(), Kind: audit.KindToolCall,
		Agent: "spiffe://example.org/agent/a", Tool: "refund", Decision: audit.Deny,
		Policies: []string{"refund-limit"}, Outcome: audit.OutcomeDenied,
	})
	// Output:
	// level=INFO msg=agentguard.audit event.kind=tool_call event.agent=spiffe://example.org/agent/a event.tool=refund event.decision=deny event.policies=[refund-limit] event.outcome=denied
}
