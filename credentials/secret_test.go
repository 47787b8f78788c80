package credentials_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/credentials"
)

const secretValue = "sk-live-DO-NOT-LEAK-8c1f"

func TestSecretRedacted(t *testing.T) {
	s := credentials.NewSecret(secretValue)
	type wrapper struct {
		hidden credentials.Secret
		Shown  credentials.Secret
		ptr    *credentials.Secret
	}
	w := wrapper{hidden: s, Shown: s, ptr: &s}
	cred := &credentials.Credential{Name: "n", LeaseID: "l", Secret: s}

	outputs := map[string]string{
		"String":   s.String(),
		"GoString": s.GoString(),
		"%v":       fmt.Sprintf("%v", s),
		"%+v":      fmt.Sprintf("%+v", s),
		"%#v":      fmt.Sprintf("%#v", s),
		"%s":       fmt.Sprintf("%s", s),
		"%q":       fmt.Sprintf("%q", s),
		"%x":       fmt.Sprintf("%x", s),
		"%X":       fmt.Sprintf("%X", s),
		"%d":       fmt.Sprintf("%d", s),
		"%10.3s":   fmt.Sprintf("%10.3s", s),
		"ptr %v":   fmt.Sprintf("%v", &s),
		"struct":   fmt.Sprintf("%v %+v %#v", w, w, w),
		"cred":     fmt.Sprintf("%v %+v %#v", cred, *cred, cred),
		"println":  fmt.Sprintln(s, cred, w),
	}
	if b, err := json.Marshal(map[string]any{"s": s, "w": w, "c": cred}); err != nil {
		t.Fatal(err)
	} else {
		outputs["json"] = string(b)
		if !strings.Contains(string(b), `"[REDACTED]"`) {
			t.Errorf("json = %s, want [REDACTED]", b)
		}
	}
	if b, err := s.MarshalText(); err != nil {
		t.Fatal(err)
	} else {
		outputs["text"] = string(b)
		if string(b) != credentials.Redacted {
			t.Errorf("MarshalText = %s", b)
		}
	}
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		slog.New(h).Info("leased", "secret", s, "cred", cred, "w", w)
	}
	outputs["slog"] = logs.String()
	if !strings.Contains(logs.String(), credentials.Redacted) {
		t.Errorf("log does not show %s: %s", credentials.Redacted, logs.String())
	}
	if !strings.Contains(logs.String(), "lease_id") {
		t.Errorf("log of credential lacks metadata: %s", logs.String())
	}

	for name, out := range outputs {
		if strings.Contains(out, secretValue) || strings.Contains(out, "DO-NOT-LEAK") {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
	}
	for _, name := range []string{"String", "GoString", "%v", "%s", "%q", "%x", "%d"} {
		if outputs[name] != credentials.Redacted {
			t.Errorf("%s = %q, want %q", name, outputs[name], credentials.Redacted)
		}
	}
	if s.Reveal() != secretValue {
		t.Errorf("Reveal = %q", s.Reveal())
	}
}

func TestSecretZero(t *testing.T) {
	tests := []struct {
		name string
		s    credentials.Secret
		zero bool
	}{
		{name: "zero value", s: credentials.Secret{}, zero: true},
		{name: "empty string", s: credentials.NewSecret(""), zero: true},
		{name: "value", s: credentials.NewSecret("x"), zero: false},
	}
	for _, tc := range tests {
		if got := tc.s.IsZero(); got != tc.zero {
			t.Errorf("%s: IsZero = %v, want %v", tc.name, got, tc.zero)
		}
		if tc.zero && tc.s.Reveal() != "" {
			t.Errorf("%s: Reveal = %q", tc.name, tc.s.Reveal())
		}
		if tc.s.String() != credentials.Redacted {
			t.Errorf("%s: String = %q", tc.name, tc.s.String())
		}
	}
}

// TestBrokerErrorsDoNotLeakSecret drives every error path of the broker
// with providers that hand out (or hold) the secret value, and checks that
// no error text carries it.
func TestBrokerErrorsDoNotLeakSecret(t *testing.T) {
	clock := newFakeClock()
	sec := credentials.NewSecret(secretValue)
	issueErr := errors.New("upstream rejected the request")
	revokeErr := errors.New("revocation endpoint unavailable")

	providers := map[string]*clockProvider{
		"issue-error": {clock: clock, issue: func(context.Context, credentials.Request) (*credentials.Credential, error) {
			return nil, issueErr
		}},
		"expired": {clock: clock, issue: func(context.Context, credentials.Request) (*credentials.Credential, error) {
			return &credentials.Credential{Secret: sec, ExpiresAt: clock.Now().Add(-time.Minute), LeaseID: "lease-expired"}, nil
		}},
		"empty": {clock: clock, issue: func(context.Context, credentials.Request) (*credentials.Credential, error) {
			return &credentials.Credential{ExpiresAt: clock.Now().Add(time.Minute)}, nil
		}},
		"revoke-error": {clock: clock,
			issue: func(context.Context, credentials.Request) (*credentials.Credential, error) {
				return &credentials.Credential{Secret: sec, ExpiresAt: clock.Now().Add(time.Hour)}, nil
			},
			revoke: func(context.Context, *credentials.Credential) error { return revokeErr },
		},
	}
	opts := []credentials.BrokerOption{credentials.WithClock(clock.Now)}
	for name, p := range providers {
		opts = append(opts, credentials.WithProvider(name, p))
	}
	b := credentials.NewBroker(opts...)
	ctx := context.Background()

	var errs []error
	for _, name := range []string{"issue-error", "expired", "empty", "unknown"} {
		c, err := b.Lease(ctx, lreq("task", name, "aud", "scope"))
		if err == nil {
			t.Fatalf("Lease from %s succeeded: %v", name, c)
		}
		errs = append(errs, err)
	}
	if _, err := b.Lease(ctx, lreq("", "revoke-error", "aud")); err == nil {
		t.Fatal("Lease without task succeeded")
	} else {
		errs = append(errs, err)
	}
	c, err := b.Lease(ctx, lreq("task", "revoke-error", "aud"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Secret.Reveal() != secretValue {
		t.Fatal("wrong secret")
	}
	revs, err := b.Revoke(ctx, "task")
	if err == nil {
		t.Fatal("Revoke succeeded")
	}
	errs = append(errs, err)
	for _, r := range revs {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	if len(errs) != 7 {
		t.Errorf("collected %d errors, want 7", len(errs))
	}
	for _, err := range errs {
		for _, out := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(out, secretValue) {
				t.Errorf("error leaks the secret: %s", out)
			}
		}
	}
}
