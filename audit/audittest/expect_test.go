package audittest_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
)

// fakeTB records what a helper reports. Its Fatalf ends the goroutine, as
// testing.T's does, so run the helper with run.
type fakeTB struct {
	testing.TB
	mu     sync.Mutex
	failed bool
	msgs   []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed = true
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

// run calls helper with a fake testing.TB in a goroutine of its own and
// reports whether it failed the test, and what it said.
func run(helper func(t testing.TB)) (failed bool, msg string) {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		helper(f)
	}()
	<-done
	return f.failed, strings.Join(f.msgs, "\n")
}

func events() []audit.Event {
	return []audit.Event{
		{Kind: audit.KindTaskStart, Task: "t1", Agent: "spiffe://example.org/a", Outcome: audit.OutcomeOK},
		{Kind: audit.KindToolCall, Task: "t1", Agent: "spiffe://example.org/a", Tool: "refund", Toolset: "billing", CallID: "c1",
			Decision: audit.Allow, Outcome: audit.OutcomeOK, Policies: []string{"p1", "p2"}, Revision: "sha256:aa",
			Approval: &audit.Approval{Required: true, Granted: true, Status: "granted"}},
		{Kind: audit.KindToolCall, Task: "t1", Agent: "spiffe://example.org/a", Tool: "refund", Toolset: "billing", CallID: "c2",
			Decision: audit.Deny, Outcome: audit.OutcomeDenied, Step: "authorize", Reason: "forbidden by policy refund-limit",
			Policies: []string{"refund-limit"}, Revision: "sha256:aa"},
		{Kind: audit.KindTaskEnd, Task: "t1", Outcome: audit.OutcomeOK, Reason: "ended"},
	}
}

func TestWantMatch(t *testing.T) {
	evs := events()
	tests := []struct {
		name string
		want audittest.Want
		hits []int
	}{
		{"zero matches all", audittest.Want{}, []int{0, 1, 2, 3}},
		{"kind", audittest.Want{Kind: audit.KindToolCall}, []int{1, 2}},
		{"decision", audittest.Want{Kind: audit.KindToolCall, Decision: audit.Deny}, []int{2}},
		{"reason substring", audittest.Want{Reason: "refund-limit"}, []int{2}},
		{"reason not found", audittest.Want{Reason: "nope"}, nil},
		{"policies in order", audittest.Want{Policies: []string{"p1", "p2"}}, []int{1}},
		{"policies out of order", audittest.Want{Policies: []string{"p2", "p1"}}, nil},
		{"no policies", audittest.Want{Kind: audit.KindTaskStart, Policies: []string{}}, []int{0}},
		{"approval status", audittest.Want{Approval: "granted"}, []int{1}},
		{"approval on an event without one", audittest.Want{Approval: "refused"}, nil},
		{"every field", audittest.Want{Kind: audit.KindToolCall, Agent: "spiffe://example.org/a", Task: "t1", Tool: "refund",
			Toolset: "billing", CallID: "c2", Decision: audit.Deny, Outcome: audit.OutcomeDenied, Step: "authorize",
			Reason: "forbidden", Revision: "sha256:aa", Policies: []string{"refund-limit"}}, []int{2}},
		{"one field off", audittest.Want{Kind: audit.KindToolCall, CallID: "c2", Toolset: "other"}, nil},
		{"revision", audittest.Want{Revision: "sha256:bb"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hits []int
			for i, e := range evs {
				if tc.want.Match(e) {
					hits = append(hits, i)
				}
			}
			if fmt.Sprint(hits) != fmt.Sprint(tc.hits) {
				t.Errorf("%s matches events %v, want %v", tc.want, hits, tc.hits)
			}
		})
	}
}

func TestExpect(t *testing.T) {
	evs := events()
	t.Run("one match", func(t *testing.T) {
		var got audit.Event
		failed, msg := run(func(tb testing.TB) {
			got = audittest.Expect(tb, evs, audittest.Want{Kind: audit.KindToolCall, Decision: audit.Deny})
		})
		if failed || got.CallID != "c2" {
			t.Errorf("Expect = %+v (failed %t: %s), want the denied call", got, failed, msg)
		}
	})
	t.Run("none", func(t *testing.T) {
		failed, msg := run(func(tb testing.TB) {
			audittest.Expect(tb, evs, audittest.Want{Kind: audit.KindDelegate})
		})
		if !failed {
			t.Fatal("Expect with no match did not fail the test")
		}
		// The message says what was wanted and lists every event compactly.
		for _, s := range []string{`0 events match kind="delegate", want 1`, `0: task_start`, `2: tool_call`, `reason="forbidden by policy refund-limit"`, `3: task_end`} {
			if !strings.Contains(msg, s) {
				t.Errorf("message lacks %q:\n%s", s, msg)
			}
		}
	})
	t.Run("several", func(t *testing.T) {
		failed, msg := run(func(tb testing.TB) {
			audittest.Expect(tb, evs, audittest.Want{Tool: "refund"})
		})
		if !failed || !strings.Contains(msg, `2 events match tool="refund", want 1`) {
			t.Errorf("Expect with two matches: failed %t, message %q", failed, msg)
		}
	})
	t.Run("count", func(t *testing.T) {
		var got []audit.Event
		failed, _ := run(func(tb testing.TB) {
			got = audittest.ExpectCount(tb, evs, audittest.Want{Task: "t1"}, 4)
		})
		if failed || len(got) != 4 || got[3].Kind != audit.KindTaskEnd {
			t.Errorf("ExpectCount = %d events (failed %t), want the 4 in order", len(got), failed)
		}
		if failed, _ := run(func(tb testing.TB) { audittest.ExpectCount(tb, evs, audittest.Want{Task: "t1"}, 3) }); !failed {
			t.Error("ExpectCount with the wrong count did not fail the test")
		}
	})
	t.Run("none expected", func(t *testing.T) {
		if failed, msg := run(func(tb testing.TB) { audittest.ExpectNone(tb, evs, audittest.Want{Kind: audit.KindSuspend}) }); failed {
			t.Errorf("ExpectNone failed with no match: %s", msg)
		}
		if failed, _ := run(func(tb testing.TB) { audittest.ExpectNone(tb, evs, audittest.Want{Decision: audit.Deny}) }); !failed {
			t.Error("ExpectNone with a match did not fail the test")
		}
	})
	t.Run("no events", func(t *testing.T) {
		failed, msg := run(func(tb testing.TB) { audittest.Expect(tb, nil, audittest.Want{}) })
		if !failed || !strings.Contains(msg, "(none)") || !strings.Contains(msg, "any event") {
			t.Errorf("Expect on no events: failed %t, message %q", failed, msg)
		}
	})
}

func TestExpectNoSecret(t *testing.T) {
	const secret = "s3cr3t<&>-value?"
	raw := []byte(secret)
	q, _ := json.Marshal(secret)
	forms := map[string]string{
		"raw":         secret,
		"hex":         hex.EncodeToString(raw),
		"upper hex":   strings.ToUpper(hex.EncodeToString(raw)),
		"base64":      base64.StdEncoding.EncodeToString(raw),
		"base64 raw":  base64.RawStdEncoding.EncodeToString(raw),
		"base64 url":  base64.URLEncoding.EncodeToString(raw),
		"json quoted": string(q[1 : len(q)-1]),
	}
	for name, leak := range forms {
		t.Run(name, func(t *testing.T) {
			evs := events()
			if name == "json quoted" {
				// As it shows in JSON written by hand, such as Args.
				evs[2].Args = json.RawMessage(`{"note":"` + leak + `"}`)
			} else {
				evs[2].Error = "provider said: " + leak
			}
			failed, msg := run(func(tb testing.TB) { audittest.ExpectNoSecret(tb, evs, "other", secret) })
			if !failed {
				t.Fatalf("a secret %s in an event went unnoticed", name)
			}
			if !strings.Contains(msg, "secret 1 found") || !strings.Contains(msg, "in event 2") {
				t.Errorf("message does not locate the leak: %s", msg)
			}
			if strings.Contains(msg, secret) || strings.Contains(msg, leak) {
				t.Errorf("message repeats the secret: %s", msg)
			}
		})
	}
	// Inside a longer base64 text, at each of the three places a byte
	// can take in a 3-byte group, in either alphabet.
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for _, prefix := range []string{"", "u:", "us:", "user:", "a"} {
			for _, suffix := range []string{"", "!", "!!"} {
				blob := enc.EncodeToString([]byte(prefix + secret + suffix))
				evs := events()
				evs[1].Error = "request had Authorization: Basic " + blob
				if failed, _ := run(func(tb testing.TB) { audittest.ExpectNoSecret(tb, evs, secret) }); !failed {
					t.Errorf("a secret in base64 of %q+secret+%q went unnoticed (%s)", prefix, suffix, blob)
				}
			}
		}
	}
	t.Run("clean", func(t *testing.T) {
		if failed, msg := run(func(tb testing.TB) { audittest.ExpectNoSecret(tb, events(), secret) }); failed {
			t.Errorf("clean events reported: %s", msg)
		}
	})
	t.Run("in recorded arguments", func(t *testing.T) {
		evs := events()
		evs[1].Args = json.RawMessage(`{"card":"` + hex.EncodeToString(raw) + `"}`)
		if failed, _ := run(func(tb testing.TB) { audittest.ExpectNoSecret(tb, evs, secret) }); !failed {
			t.Error("a secret in Args went unnoticed")
		}
	})
	t.Run("empty secret", func(t *testing.T) {
		if failed, _ := run(func(tb testing.TB) { audittest.ExpectNoSecret(tb, events(), "") }); !failed {
			t.Error("an empty secret was accepted")
		}
	})
}

// Want.Match picks out the events a test is about.
func ExampleWant_Match() {
	rec := audittest.NewRecorder()
	ctx := context.Background()
	_ = rec.Write(ctx, audit.Event{Kind: audit.KindToolCall, Tool: "lookup", Decision: audit.Allow, Outcome: audit.OutcomeOK})
	_ = rec.Write(ctx, audit.Event{Kind: audit.KindToolCall, Tool: "refund", Decision: audit.Deny, Outcome: audit.OutcomeDenied,
		Step: "authorize", Reason: "forbidden by policy refund-limit", Policies: []string{"refund-limit"}})

	// In a test: audittest.Expect(t, rec.Events(), denied) returns the
	// one denial, or fails the test listing what was recorded.
	denied := audittest.Want{Kind: audit.KindToolCall, Decision: audit.Deny, Reason: "refund-limit"}
	for _, e := range rec.Events() {
		if denied.Match(e) {
			fmt.Println(e.Tool, e.Step, e.Policies)
		}
	}
	fmt.Println(audittest.List(rec.Events()))
	// Output:
	// refund authorize [refund-limit]
	//   0: tool_call tool="lookup" decision="allow" outcome="ok"
	//   1: tool_call tool="refund" decision="deny" outcome="denied" step="authorize" reason="forbidden by policy refund-limit" policies=["refund-limit"]
}
