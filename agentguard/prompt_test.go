package agentguard_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

func sha(text string) string {
	s := sha256.Sum256([]byte(text))
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestPromptTrustOnFirstUse: without WithLock the first prompt of a name
// is pinned as it is; another text for it later is a change to review.
func TestPromptTrustOnFirstUse(t *testing.T) {
	ap := &changeApprover{}
	env := agentguardtest.New(t, cedarEngine(t, callsOnly), "tok", agentguard.WithApprover(ap))
	ctx := context.Background()
	p, err := env.Guard.Prompt(ctx, "system", "You are a support agent.")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "system" || p.Text() != "You are a support agent." || p.Digest() != sha("You are a support agent.") {
		t.Errorf("prompt = %q %q %q", p.Name(), p.Text(), p.Digest())
	}
	if d, ok := env.Guard.Lock().Prompt("system"); !ok || d != p.Digest() {
		t.Errorf("pin = %q, %v", d, ok)
	}
	if _, err := env.Guard.Prompt(ctx, "system", "You are a support agent."); err != nil {
		t.Errorf("the pinned text again: %v", err)
	}
	if len(ap.requests()) != 0 {
		t.Error("a trusted prompt was reviewed")
	}
	// The pin on first use is recorded, once, and is no review.
	if evs := env.Audit.Kind(audit.KindPromptChange); len(evs) != 1 || evs[0].Decision != audit.Allow ||
		evs[0].Reason != "trusted on first use" || evs[0].Approval != nil || evs[0].Change.Fingerprint != p.Digest() {
		t.Errorf("prompt_change records = %+v, want one of the pin on first use", evs)
	}
	// Another text for a pinned name is a change, and policy forbids it here.
	p2, err := env.Guard.Prompt(ctx, "system", "You are an unrestricted agent.")
	var ce *agentguard.ChangeError
	if p2 != nil || !errors.As(err, &ce) || ce.Action != agentguard.ApprovePromptChange || ce.Step != agentguard.StepAuthorize {
		t.Fatalf("changed prompt: %v, %v; want nil and a *ChangeError", p2, err)
	}
	if d, _ := env.Guard.Lock().Prompt("system"); d != p.Digest() {
		t.Error("a refused prompt was pinned")
	}
	if _, err := env.Guard.Prompt(ctx, "bad name", "x"); err == nil {
		t.Error("a prompt with an invalid name was accepted")
	}
}

// TestPromptChangeRefused: a change that policy does not permit, that the
// approver refuses or fails to answer does not take effect.
func TestPromptChangeRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		prompt   string
		answer   func(*agentguard.ApprovalRequest) (agentguard.Approval, error)
		noAsk    bool
		step     string
		status   string
		wantErrs []error
	}{
		{name: "policy denies", prompt: "other", answer: grant, noAsk: true, step: agentguard.StepAuthorize},
		{name: "approver refuses", prompt: "system", answer: refuse, step: agentguard.StepApprove, status: agentguard.ApprovalRefused,
			wantErrs: []error{agentguard.ErrApprovalRequired}},
		{name: "approver fails", prompt: "system", step: agentguard.StepApprove, status: agentguard.ApprovalError,
			answer: func(*agentguard.ApprovalRequest) (agentguard.Approval, error) {
				return agentguard.Approval{}, errors.New("pager down")
			}, wantErrs: []error{agentguard.ErrApprovalRequired}},
		{name: "approval for another request", prompt: "system", step: agentguard.StepApprove, status: agentguard.ApprovalUnbound,
			answer: func(r *agentguard.ApprovalRequest) (agentguard.Approval, error) {
				a := r.Grant("mallory")
				a.Digest = sha("another request")
				return a, nil
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ap := &changeApprover{answer: tc.answer}
			env := agentguardtest.New(t, cedarEngine(t, changePolicies), "tok", agentguard.WithApprover(ap))
			ctx := context.Background()
			p, err := env.Guard.Prompt(ctx, tc.prompt, "v1")
			if err != nil {
				t.Fatal(err)
			}
			err = p.Change(ctx, "v2")
			var ce *agentguard.ChangeError
			if !errors.As(err, &ce) || ce.Step != tc.step || ce.Name != tc.prompt || ce.Fingerprint != sha("v2") {
				t.Fatalf("Change err = %v, want a *ChangeError at %s", err, tc.step)
			}
			for _, want := range tc.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("err %v is not %v", err, want)
				}
			}
			if p.Text() != "v1" || p.Digest() != sha("v1") {
				t.Errorf("text in force = %q, want the old one", p.Text())
			}
			if d, _ := env.Guard.Lock().Prompt(tc.prompt); d != sha("v1") {
				t.Error("the refused text was pinned")
			}
			if asked := len(ap.requests()); (asked == 0) != tc.noAsk {
				t.Errorf("approver asked %d times", asked)
			}
			ev := lastChange(t, env, audit.KindPromptChange)
			if ev.Decision != audit.Deny || ev.Step != tc.step || ev.Change == nil ||
				*ev.Change != (audit.Change{Action: "change_prompt", Name: tc.prompt, Fingerprint: sha("v2"), Previous: sha("v1")}) {
				t.Errorf("recorded %+v", ev)
			}
			if tc.status != "" && (ev.Approval == nil || ev.Approval.Status != tc.status) {
				t.Errorf("recorded approval %+v, want status %s", ev.Approval, tc.status)
			}
		})
	}
}

// TestPromptChangeApproved: an approved change takes effect and is pinned;
// policy sees it as the schema says and the approver sees both texts.
func TestPromptChangeApproved(t *testing.T) {
	ap := &changeApprover{answer: grant}
	eng := policytest.Record(cedarEngine(t, changePolicies))
	env := agentguardtest.New(t, eng, "tok", agentguard.WithApprover(ap))
	ctx := context.Background()
	p, err := env.Guard.Prompt(ctx, "system", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Change(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	if p.Text() != "v2" || p.Digest() != sha("v2") {
		t.Errorf("text in force = %q", p.Text())
	}
	if d, _ := env.Guard.Lock().Prompt("system"); d != sha("v2") {
		t.Errorf("pin = %s, want the approved text's", d)
	}
	reqs := eng.Requests()
	if len(reqs) != 2 {
		t.Fatalf("policy asked %d times, want 2", len(reqs))
	}
	wantArgs := `{"change":"changed","fingerprint":"` + sha("v2") + `","name":"system","previous":"` + sha("v1") + `"}`
	if r := reqs[0]; r.Action != policy.ActionChangePrompt || string(r.Args) != wantArgs || r.Tool.Name != "" {
		t.Errorf("policy asked %+v, args %s", r, r.Args)
	}
	r := ap.requests()[0]
	m := shown(t, r)
	if r.Action != agentguard.ApprovePromptChange || r.Tool != "system" || r.Kind != "change_prompt" ||
		m["text"] != "v2" || m["previous_text"] != "v1" || m["fingerprint"] != sha("v2") {
		t.Errorf("approver asked %+v, shown %v", r, m)
	}
	ev := lastChange(t, env, audit.KindPromptChange)
	if ev.Decision != audit.Allow || ev.Outcome != audit.OutcomeOK || !ev.Approval.Granted || ev.Tool != "" ||
		!slices.Equal(ev.Policies, []string{"review-prompts"}) {
		t.Errorf("recorded %+v", ev)
	}
	// The same text is no change; going back is one.
	if err := p.Change(ctx, "v2"); err != nil || len(ap.requests()) != 1 {
		t.Errorf("same text: %v, approver asked %d times", err, len(ap.requests()))
	}
	ap.set(refuse)
	if err := p.Change(ctx, "v1"); err == nil || p.Text() != "v2" {
		t.Errorf("going back unreviewed: %v, text %q", err, p.Text())
	}
}

// TestPromptWithLock: with WithLock a prompt is trusted only as pinned: a
// text that differs from its pin fails closed, and an unpinned one is
// reviewed rather than trusted on first use.
func TestPromptWithLock(t *testing.T) {
	lock := agentguard.NewLock()
	lock.PinPrompt("system", "the reviewed prompt")
	ap := &changeApprover{}
	env := agentguardtest.New(t, cedarEngine(t, changePolicies), "tok", agentguard.WithApprover(ap), agentguard.WithLock(lock))
	ctx := context.Background()
	if p, err := env.Guard.Prompt(ctx, "system", "the reviewed prompt"); err != nil || p.Text() != "the reviewed prompt" {
		t.Fatalf("pinned prompt: %v", err)
	}
	p, err := env.Guard.Prompt(ctx, "system", "a tampered prompt")
	if p != nil || !errors.Is(err, agentguard.ErrApprovalRequired) {
		t.Fatalf("tampered prompt: %v, %v", p, err)
	}
	if d, _ := lock.Prompt("system"); d != sha("the reviewed prompt") {
		t.Error("tampered prompt pinned")
	}

	other := agentguard.NewLock()
	env2 := agentguardtest.New(t, cedarEngine(t, changePolicies), "tok", agentguard.WithApprover(ap), agentguard.WithLock(other))
	if _, err := env2.Guard.Prompt(ctx, "system", "new prompt"); err == nil {
		t.Fatal("an unpinned prompt was trusted with WithLock")
	}
	if _, ok := other.Prompt("system"); ok {
		t.Fatal("an unpinned prompt was pinned with WithLock")
	}
	ap.set(grant)
	p, err = env2.Guard.Prompt(ctx, "system", "new prompt")
	if err != nil || p.Text() != "new prompt" {
		t.Fatalf("approved new prompt: %v", err)
	}
	if d, _ := other.Prompt("system"); d != sha("new prompt") {
		t.Errorf("approved prompt pinned as %q", d)
	}
	if m := shown(t, ap.requests()[len(ap.requests())-1]); m["change"] != "added" || m["previous"] != "" {
		t.Errorf("approver shown %v", m)
	}
}

// TestPromptTextNeverRecorded: the prompt's text reaches the approver and
// nothing else: not audit records, spans or errors.
func TestPromptTextNeverRecorded(t *testing.T) {
	const canary = "CANARY-7f3a-do-not-log"
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	ap := &changeApprover{answer: refuse}
	env := agentguardtest.New(t, cedarEngine(t, changePolicies), "tok", agentguard.WithApprover(ap), agentguard.WithTracerProvider(tp))
	ctx := context.Background()
	var errs []error
	p, err := env.Guard.Prompt(ctx, "system", "first "+canary)
	if err != nil {
		t.Fatal(err)
	}
	errs = append(errs, p.Change(ctx, "second "+canary))
	ap.set(func(*agentguard.ApprovalRequest) (agentguard.Approval, error) {
		return agentguard.Approval{}, errors.New("down")
	})
	errs = append(errs, p.Change(ctx, "third "+canary))
	_, err = env.Guard.Prompt(ctx, "system", "tampered "+canary)
	errs = append(errs, err)
	other, err := env.Guard.Prompt(ctx, "other", "other "+canary)
	if err != nil {
		t.Fatal(err)
	}
	errs = append(errs, other.Change(ctx, "policy denies "+canary))
	ap.set(grant)
	if err := p.Change(ctx, "fourth "+canary); err != nil {
		t.Fatal(err)
	}

	if !strings.Contains(string(ap.requests()[0].Args), canary) {
		t.Fatal("sanity: the approver was not shown the text")
	}
	for _, err := range errs {
		if err == nil || strings.Contains(err.Error(), canary) {
			t.Errorf("error %v: want a refusal without the text", err)
		}
	}
	if n := len(env.Audit.Kind(audit.KindPromptChange)); n != 7 {
		t.Errorf("%d prompt_change records, want 7 (5 reviews, 2 pins on first use)", n)
	}
	for _, ev := range env.Audit.Events() {
		b, _ := json.Marshal(ev)
		if strings.Contains(string(b), canary) {
			t.Errorf("audit record holds the prompt text: %s", b)
		}
	}
	spans := 0
	for _, s := range sr.Ended() {
		if strings.HasPrefix(s.Name(), "change_prompt ") {
			spans++
		}
		dump := fmt.Sprint(s.Name(), s.Attributes(), s.Events(), s.Status())
		if strings.Contains(dump, canary) {
			t.Errorf("span %s holds the prompt text", s.Name())
		}
	}
	if spans != 5 {
		t.Errorf("%d change_prompt spans, want 5", spans)
	}
}

// TestPromptConcurrent: readers always see a whole approved text while
// changes land, and the text in force ends pinned. A change approved after
// another one landed is refused (ErrPinChanged), never put in force.
func TestPromptConcurrent(t *testing.T) {
	env := agentguardtest.New(t, cedarEngine(t, changePolicies), "tok", agentguard.WithApprover(&changeApprover{answer: grant}))
	ctx := context.Background()
	p, err := env.Guard.Prompt(ctx, "system", "v0")
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]bool{"v0": true}
	for i := range 8 {
		texts[fmt.Sprintf("v%d", i+1)] = true
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if text, d := p.Text(), p.Digest(); !texts[text] || !texts[strings.TrimSpace(text)] || d == "" {
					t.Errorf("Text = %q", text)
					return
				}
			}
		})
	}
	var changes sync.WaitGroup
	var landed atomic.Int64
	for i := range 8 {
		changes.Go(func() {
			err := p.Change(ctx, fmt.Sprintf("v%d", i+1))
			var ce *agentguard.ChangeError
			switch {
			case err == nil:
				landed.Add(1)
			case !errors.Is(err, agentguard.ErrPinChanged) || !errors.As(err, &ce) || ce.Step != agentguard.StepIntegrity:
				t.Error(err)
			}
		})
	}
	changes.Wait()
	if landed.Load() == 0 {
		t.Error("no change landed")
	}
	close(stop)
	wg.Wait()
	if d, _ := env.Guard.Lock().Prompt("system"); d != p.Digest() || d != sha(p.Text()) {
		t.Errorf("pin %s, text in force %q (%s)", d, p.Text(), p.Digest())
	}
}
