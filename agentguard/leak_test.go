package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy/policytest"
)

const canary = "CANARY-7f3a9c-do-not-leak"

// TestCanaryNeverLeaks runs allowed, failing and denied calls with a
// credential whose value is a canary, and looks for it in every audit
// event, log line, span attribute, event and status, and error string.
func TestCanaryNeverLeaks(t *testing.T) {
	var logs syncBuffer
	logger := logs.logger()
	rec := audittest.NewRecorder()
	slogSink := audit.NewSlogSink(logger)
	sink := audit.SinkFunc(func(ctx context.Context, e audit.Event) error {
		_ = slogSink.Write(ctx, e)
		return rec.Write(ctx, e)
	})
	sr := tracetest.NewSpanRecorder()
	env := agentguardtest.New(t, policytest.NewRules(
		policytest.Rule{ID: "allow-api", Tool: "api"},
		policytest.Rule{ID: "allow-echo", Tool: "echo"},
	), canary,
		agentguard.WithAudit(sink), agentguard.WithLogger(logger),
		agentguard.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))))

	var seen string
	need := []credentials.Requirement{{Name: "token", Provider: agentguardtest.StaticProvider, Audience: "api.example"}}
	api := &agentguard.Tool{Name: "api", Credentials: need, Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
		c, _ := credentials.FromContext(ctx, "token")
		seen = c.Secret.Reveal()
		logger.Info("tool got credential", "cred", c, "secret", c.Secret)
		return &agentguard.Result{Output: "fine"}, nil
	}}
	// A careless tool that echoes its token in its error.
	echo := &agentguard.Tool{Name: "echo", Credentials: need, Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
		c, _ := credentials.FromContext(ctx, "token")
		return nil, fmt.Errorf("upstream rejected bearer %s", c.Secret.Reveal())
	}}
	// A careless tool that panics with its token.
	panicky := &agentguard.Tool{Name: "echo", Credentials: need, Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
		c, _ := credentials.FromContext(ctx, "token")
		panic("token " + c.Secret.Reveal())
	}}
	denied := &agentguard.Tool{Name: "other", Credentials: need, Handler: api.Handler}

	var errs []error
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []*agentguard.Tool{api, echo, panicky, denied} {
		_, err := env.Guard.Invoke(ctx, tool, agentguard.Call{Args: json.RawMessage(`{"q":"x"}`)})
		errs = append(errs, err)
	}
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	if seen != canary {
		t.Fatalf("tool saw %q, want the canary: the test would prove nothing", seen)
	}
	if errs[0] != nil || errs[1] == nil || errs[2] == nil || !errors.Is(errs[3], agentguard.ErrDenied) {
		t.Fatalf("errors = %v", errs)
	}

	var haystack []string
	for _, err := range errs {
		if err != nil {
			haystack = append(haystack, "error: "+err.Error(), fmt.Sprintf("%+v %#v", err, err))
		}
	}
	for _, e := range rec.Events() {
		b, _ := json.Marshal(e)
		haystack = append(haystack, "audit: "+string(b), fmt.Sprintf("%+v", e))
	}
	haystack = append(haystack, "log: "+logs.String())
	for _, s := range sr.Ended() {
		haystack = append(haystack, "span status: "+s.Status().Description)
		for _, a := range s.Attributes() {
			haystack = append(haystack, "span attr: "+string(a.Key)+"="+a.Value.Emit())
		}
		for _, ev := range s.Events() {
			for _, a := range ev.Attributes {
				haystack = append(haystack, "span event "+ev.Name+": "+string(a.Key)+"="+a.Value.Emit())
			}
		}
	}
	if len(rec.Events()) < 6 || len(sr.Ended()) != 4 || !strings.Contains(logs.String(), "tool got credential") {
		t.Fatalf("too little recorded to prove anything: %d events, %d spans", len(rec.Events()), len(sr.Ended()))
	}
	for _, h := range haystack {
		if strings.Contains(h, canary) {
			t.Errorf("canary leaked in %s", h)
		}
	}
	// The scrubbed errors still say what happened.
	if !strings.Contains(errs[1].Error(), "upstream rejected bearer "+credentials.Redacted) {
		t.Errorf("tool error = %q, want the message with the value redacted", errs[1])
	}
}

func TestSecretFormatting(t *testing.T) {
	s := credentials.NewSecret(canary)
	c := &credentials.Credential{Name: "n", LeaseID: "lease-1", Secret: s}
	type holder struct {
		secret credentials.Secret // unexported: fmt cannot call its methods
		Cred   credentials.Credential
	}
	h := holder{secret: s, Cred: *c}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, c), fmt.Sprintf(verb, *c), fmt.Sprintf(verb, h))
	}
	for _, v := range []any{s, c, *c} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	txt, _ := s.MarshalText()
	outs = append(outs, string(txt), s.String(), s.GoString(), s.LogValue().String())
	var logs syncBuffer
	l := logs.logger()
	l.Info("x", "s", s, "c", c, "h", h)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "s", s, "c", c, "h", h)
	outs = append(outs, logs.String())
	for _, o := range outs {
		if strings.Contains(o, canary) {
			t.Errorf("secret leaked: %s", o)
		}
	}
	if s.Reveal() != canary {
		t.Error("Reveal lost the value")
	}
}

// TestDenyErrorScrubbed: a denial after a credential was leased, whose cause
// echoes that credential, returns an error without the value that still
// matches its sentinels.
func TestDenyErrorScrubbed(t *testing.T) {
	inner := credentials.NewBroker(credentials.WithProvider(agentguardtest.StaticProvider, credentials.NewStaticProvider(canary)))
	var first *credentials.Credential
	b := brokerFunc{
		lease: func(ctx context.Context, r credentials.Request) (*credentials.Credential, error) {
			if r.Name == "second" {
				return nil, fmt.Errorf("upstream refused, earlier token was %s", first.Secret.Reveal())
			}
			c, err := inner.Lease(ctx, r)
			first = c
			return c, err
		},
		revoke: inner.Revoke,
	}
	env := agentguardtest.New(t, nil, "unused", agentguard.WithBroker(b))
	tool := &agentguard.Tool{Name: "t", Credentials: []credentials.Requirement{
		{Name: "first", Provider: agentguardtest.StaticProvider},
		{Name: "second", Provider: agentguardtest.StaticProvider, Audience: "other"},
	}, Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) { return &agentguard.Result{}, nil }}
	_, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{})
	if !errors.Is(err, agentguard.ErrCredential) || first == nil {
		t.Fatalf("err = %v, want an ErrCredential denial after a first lease", err)
	}
	if strings.Contains(err.Error(), canary) || !strings.Contains(err.Error(), credentials.Redacted) {
		t.Errorf("error = %q, want the value redacted", err)
	}
	if e, _ := env.Audit.Last(); strings.Contains(e.Error, canary) {
		t.Errorf("audit error leaked: %q", e.Error)
	}
}
