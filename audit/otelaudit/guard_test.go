package otelaudit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/log/logtest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/audit/otelaudit"
	"github.com/agentguard/go-sdk/credentials"
)

const guardCanary = "otel-canary-SECRET-77aa"

// TestGuardExportNoCredential: with a guard's audit shipped as
// OpenTelemetry logs (beside a recorder, through a tee), every event
// becomes one record, and a credential value that a failing tool puts in
// its error reaches none.
func TestGuardExportNoCredential(t *testing.T) {
	logs := logtest.NewRecorder()
	rec := audittest.NewRecorder()
	env := agentguardtest.New(t, nil, guardCanary, agentguard.WithAudit(audit.Tee(rec, otelaudit.NewSink(logs))))
	leaky := &agentguard.Tool{Name: "leaky",
		Credentials: []credentials.Requirement{{Name: "billing", Provider: agentguardtest.StaticProvider}},
		Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
			c, _ := credentials.FromContext(ctx, "billing")
			return nil, fmt.Errorf("upstream refused token %s", c.Secret.Reveal())
		}}
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Guard.Invoke(ctx, leaky, agentguard.Call{}); err == nil || strings.Contains(err.Error(), guardCanary) {
		t.Fatalf("Invoke = %v", err)
	}
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	var kinds, recorded []string
	for _, ev := range rec.Events() {
		recorded = append(recorded, otelaudit.EventPrefix+string(ev.Kind))
	}
	for _, rs := range logs.Result() {
		for _, r := range rs {
			kinds = append(kinds, r.EventName)
			if s := fmt.Sprintf("%+v %v", r.Attributes, r.Body.Emit()); strings.Contains(s, guardCanary) {
				t.Errorf("a credential value reached log record %s", r.EventName)
			}
		}
	}
	if !slices.Equal(kinds, recorded) {
		t.Errorf("log records %v, the recorder beside got %v", kinds, recorded)
	}
	for _, k := range []string{"credential_issue", "tool_call", "credential_revoke"} {
		if !slices.Contains(kinds, otelaudit.EventPrefix+k) {
			t.Errorf("no %s log record", k)
		}
	}
}
