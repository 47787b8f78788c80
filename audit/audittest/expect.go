package audittest

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/agentguard/go-sdk/audit"
)

// Want describes the audit events a test expects. A zero field matches
// anything; Reason matches as a substring of the event's Reason; Policies,
// when not nil, must equal the event's deciding policies in order (an
// empty, non-nil slice matches an event with none); Approval is the
// status of the event's approval (audit.Approval.Status).
type Want struct {
	Kind     audit.Kind
	Agent    string
	Task     string
	Tool     string
	Toolset  string
	CallID   string
	Decision string
	Outcome  string
	Step     string
	Reason   string
	Revision string
	Policies []string
	Approval string
}

// Match reports whether e is an event w describes.
func (w Want) Match(e audit.Event) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	switch {
	case w.Kind != "" && w.Kind != e.Kind,
		!eq(w.Agent, e.Agent), !eq(w.Task, e.Task), !eq(w.Tool, e.Tool),
		!eq(w.Toolset, e.Toolset), !eq(w.CallID, e.CallID),
		!eq(w.Decision, e.Decision), !eq(w.Outcome, e.Outcome),
		!eq(w.Step, e.Step), !eq(w.Revision, e.Revision),
		w.Reason != "" && !strings.Contains(e.Reason, w.Reason),
		w.Policies != nil && !slices.Equal(w.Policies, e.Policies):
		return false
	case w.Approval != "":
		return e.Approval != nil && e.Approval.Status == w.Approval
	}
	return true
}

// String lists the fields w constrains, for failure messages.
func (w Want) String() string {
	var b strings.Builder
	add := func(k, v string) {
		if v != "" {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s=%q", k, v)
		}
	}
	add("kind", string(w.Kind))
	add("agent", w.Agent)
	add("task", w.Task)
	add("tool", w.Tool)
	add("toolset", w.Toolset)
	add("call_id", w.CallID)
	add("decision", w.Decision)
	add("outcome", w.Outcome)
	add("step", w.Step)
	if w.Reason != "" {
		add("reason~", w.Reason)
	}
	add("policy_revision", w.Revision)
	if w.Policies != nil {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "policies=%q", w.Policies)
	}
	add("approval", w.Approval)
	if b.Len() == 0 {
		return "any event"
	}
	return b.String()
}

// Expect returns the one event of events that w matches, and fails the
// test (t.Fatalf), listing the events, when none or several do.
func Expect(t testing.TB, events []audit.Event, w Want) audit.Event {
	t.Helper()
	got := ExpectCount(t, events, w, 1)
	if len(got) != 1 {
		// Reached only with a testing.TB whose Fatalf returns.
		return audit.Event{}
	}
	return got[0]
}

// ExpectCount returns the events w matches, oldest first, and fails the
// test (t.Fatalf), listing the events, unless there are exactly n.
func ExpectCount(t testing.TB, events []audit.Event, w Want, n int) []audit.Event {
	t.Helper()
	var got []audit.Event
	for _, e := range events {
		if w.Match(e) {
			got = append(got, e)
		}
	}
	if len(got) != n {
		t.Fatalf("audittest: %d events match %s, want %d; the %d events:\n%s", len(got), w, n, len(events), List(events))
	}
	return got
}

// ExpectNone fails the test (t.Fatalf), listing the events, when w
// matches any of them.
func ExpectNone(t testing.TB, events []audit.Event, w Want) {
	t.Helper()
	ExpectCount(t, events, w, 0)
}

// ExpectNoSecret fails the test (t.Fatalf) when the JSON of any event
// holds any of the secrets: as it is, in hexadecimal (lower or upper
// case), in base64 (standard or URL alphabet, padded or not, alone or
// inside a longer base64 text, such as an HTTP Basic credential
// "user:<secret>"), or as JSON escapes it (json.Marshal replaces <, >
// and & with \u escapes, for instance). The message names the event and the form found, never the
// secret. An empty secret fails the test: it would be found everywhere.
func ExpectNoSecret(t testing.TB, events []audit.Event, secrets ...string) {
	t.Helper()
	var leaks []string
	for i, s := range secrets {
		if s == "" {
			t.Fatalf("audittest: ExpectNoSecret: secret %d is empty", i)
			return
		}
		forms := secretForms(s)
		for j, e := range events {
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("audittest: ExpectNoSecret: event %d does not marshal: %v", j, err)
				return
			}
			for _, f := range forms {
				if strings.Contains(string(b), f.text) {
					leaks = append(leaks, fmt.Sprintf("secret %d found %s in event %d (%s)", i, f.name, j, compact(e)))
					break
				}
			}
		}
	}
	if len(leaks) > 0 {
		t.Fatalf("audittest: secrets in audit events:\n  %s", strings.Join(leaks, "\n  "))
	}
}

type secretForm struct{ name, text string }

// secretForms are the forms in which s may show in an event's JSON.
func secretForms(s string) []secretForm {
	b := []byte(s)
	forms := []secretForm{
		{"as it is", s},
		{"in hex", hex.EncodeToString(b)},
		{"in upper-case hex", strings.ToUpper(hex.EncodeToString(b))},
	}
	if q, err := json.Marshal(s); err == nil {
		forms = append(forms, secretForm{"JSON-escaped", string(q[1 : len(q)-1])})
	}
	// In base64, s shows as the characters it alone decides, which depend
	// on where it starts in the encoded bytes: 0, 1 or 2 bytes past a
	// 3-byte group. These forms are in the padded encodings too.
	for _, alpha := range []struct {
		name string
		enc  *base64.Encoding
	}{{"base64", base64.RawStdEncoding}, {"URL-safe base64", base64.RawURLEncoding}} {
		for k := range 3 {
			f := base64Inner(alpha.enc, b, k)
			switch {
			case len(f) >= minBase64Form:
			case k == 0:
				f = alpha.enc.EncodeToString(b) // too short to look for inside others
			default:
				continue
			}
			name := "in " + alpha.name
			if k > 0 {
				name += fmt.Sprintf(" (%d bytes into a 3-byte group)", k)
			}
			forms = append(forms, secretForm{name, f})
		}
	}
	return forms
}

// minBase64Form is the length of the shortest base64 form of a secret
// looked for inside other base64 text: shorter ones would match by chance.
const minBase64Form = 4

// base64Inner returns the characters of enc's encoding of b that b alone
// decides, when b starts k bytes into a 3-byte group of longer encoded
// bytes: the characters whose 6 bits all come from b.
func base64Inner(enc *base64.Encoding, b []byte, k int) string {
	full := enc.EncodeToString(append(make([]byte, k), b...))
	first, end := (8*k+5)/6, 8*(k+len(b))/6
	if end <= first {
		return ""
	}
	return full[first:end]
}

// List renders events one per line, with the fields that tell them apart:
// what failure messages show.
func List(events []audit.Event) string {
	if len(events) == 0 {
		return "  (none)"
	}
	lines := make([]string, len(events))
	for i, e := range events {
		lines[i] = fmt.Sprintf("  %d: %s", i, compact(e))
	}
	return strings.Join(lines, "\n")
}

// compact is one event on one line.
func compact(e audit.Event) string {
	var b strings.Builder
	b.WriteString(string(e.Kind))
	add := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%q", k, v)
		}
	}
	add("agent", e.Agent)
	add("task", e.Task)
	add("tool", e.Tool)
	add("call_id", e.CallID)
	add("decision", e.Decision)
	add("outcome", e.Outcome)
	add("step", e.Step)
	add("reason", e.Reason)
	if len(e.Policies) > 0 {
		fmt.Fprintf(&b, " policies=%q", e.Policies)
	}
	if e.Approval != nil {
		add("approval", e.Approval.Status)
	}
	return b.String()
}
