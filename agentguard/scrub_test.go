package agentguard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/credentials"
)

// TestEncodedSecretScrubbed: a base64-style token (with "+" and "/")
// sent as a query parameter appears percent-encoded in net/http's own
// error; that form is scrubbed from the audit event, the span status and
// ToolError.Error() too.
func TestEncodedSecretScrubbed(t *testing.T) {
	const token = "ya29.A0Af+Hk3/q9Zx7=="
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // the upstream is down
	sr := tracetest.NewSpanRecorder()
	env := agentguardtest.New(t, nil, token,
		agentguard.WithTracerProvider(trace.NewTracerProvider(trace.WithSpanProcessor(sr))))
	tool := &agentguard.Tool{Name: "api",
		Credentials: []credentials.Requirement{{Name: "token", Provider: agentguardtest.StaticProvider, Audience: "api"}},
		Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
			c, _ := credentials.FromContext(ctx, "token")
			resp, err := http.Get(base + "/v1/items?" + url.Values{"access_token": {c.Secret.Reveal()}}.Encode())
			if err != nil {
				return nil, err
			}
			resp.Body.Close()
			return &agentguard.Result{}, nil
		}}
	_, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{})
	if err == nil {
		t.Fatal("expected the tool to fail")
	}
	enc := url.QueryEscape(token)
	var where []string
	if strings.Contains(err.Error(), enc) {
		where = append(where, "ToolError.Error()")
	}
	for _, e := range env.Audit.Events() {
		if strings.Contains(e.Error, enc) {
			where = append(where, "audit event "+string(e.Kind))
		}
	}
	for _, s := range sr.Ended() {
		if strings.Contains(s.Status().Description, enc) {
			where = append(where, "span status")
		}
	}
	if len(where) > 0 {
		t.Fatalf("credential (percent-encoded %q) leaked into %v: %s", enc, where, err)
	}
}
