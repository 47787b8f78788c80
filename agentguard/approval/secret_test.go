package approval_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

// leaks reports whether s holds the key in any usual encoding.
func leaks(s string) bool {
	for _, k := range []string{string(testKey), hex.EncodeToString(testKey), base64.StdEncoding.EncodeToString(testKey),
		fmt.Sprint(testKey), fmt.Sprintf("%x", testKey), fmt.Sprintf("%q", testKey)} {
		if strings.Contains(s, k) {
			return true
		}
	}
	return false
}

// TestWebhookKeyNeverShown: the key is not in fmt output of the Webhook
// or the handler, in slog output, in any error, nor in audit records.
func TestWebhookKeyNeverShown(t *testing.T) {
	decide := func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		switch {
		case strings.Contains(string(req.Args), "fail"):
			return agentguard.Approval{}, errors.New("failed")
		case strings.Contains(string(req.Args), "wait"):
			<-ctx.Done()
			return agentguard.Approval{}, ctx.Err()
		case strings.Contains(string(req.Args), "no"):
			return req.Refuse("no", "bob"), nil
		}
		return req.Grant("alice"), nil
	}
	h := newHandler(t, decide)
	hook := serveHook(t, h)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("webhook", "hook", hook, "handler", h)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		for name, v := range map[string]any{"webhook": hook, "handler": h, "webhook value": *hook} {
			if s := fmt.Sprintf(verb, v); leaks(s) {
				t.Errorf("%s printed with %s shows the key: %s", name, verb, s)
			}
		}
	}
	if leaks(logs.String()) {
		t.Errorf("slog output shows the key: %s", logs.String())
	}
	if !strings.Contains(fmt.Sprint(hook), "approval.Webhook(http://127.0.0.1") {
		t.Errorf("Webhook prints as %s", hook)
	}

	env := guardWith(t, "manager", hook, agentguard.WithApprovalTimeout(200*time.Millisecond))
	var errs []error
	for _, args := range []string{`{"d":"yes"}`, `{"d":"no"}`, `{"d":"fail"}`, `{"d":"wait"}`} {
		_, err := env.Guard.Invoke(context.Background(), &agentguard.Tool{Name: "refund", Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
			return &agentguard.Result{}, nil
		}}, agentguard.Call{Args: json.RawMessage(args)})
		errs = append(errs, err)
	}
	// Answers that fail verification, straight from the Webhook.
	for _, answer := range []http.HandlerFunc{
		func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) },
		func(w http.ResponseWriter, r *http.Request) {
			signed(w, testKey, time.Now().Add(time.Hour), "r1", answerBody("r1", "sha256:r1", true, "a"))
		},
		func(w http.ResponseWriter, r *http.Request) {
			signed(w, testKey, time.Now(), "r1", answerBody("r1", "sha256:x", true, "a"))
		},
		func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusForbidden) },
	} {
		_, err := serveHook(t, answer).Approve(context.Background(), request("r1", ""))
		errs = append(errs, err)
	}
	_, err := approval.NewWebhook("https://example.org", testKey[:20])
	errs = append(errs, err)
	for i, err := range errs {
		if i > 0 && err == nil {
			t.Errorf("scenario %d did not fail", i)
		}
		if err != nil && (leaks(err.Error()) || leaks(fmt.Sprintf("%+v %#v", err, err))) {
			t.Errorf("error shows the key: %v", err)
		}
	}
	records, err := json.Marshal(env.Audit.Events())
	if err != nil {
		t.Fatal(err)
	}
	if leaks(string(records)) || leaks(fmt.Sprintf("%+v", env.Audit.Events())) {
		t.Errorf("audit records show the key: %s", records)
	}
	if !bytes.Contains(records, []byte(`"refused"`)) || !bytes.Contains(records, []byte(`"timeout"`)) {
		t.Errorf("sanity: the scenarios did not all reach the audit: %s", records)
	}
}
