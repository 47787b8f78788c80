package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// Canaries of the argument-recording tests: none may reach a record, a
// log, an error or a span.
const (
	cardCanary  = "4111-CANARY-1111"
	tokenCanary = "CANARY-ITEM-TOKEN"
	credCanary  = "cred-CANARY-value"
	userCanary  = "user-CANARY-token"
)

// payTool records its arguments with the card and item tokens redacted;
// it needs a credential, so that the call's scrubber knows one.
func payTool() *agentguard.Tool {
	return &agentguard.Tool{
		Name:        "pay",
		Credentials: []credentials.Requirement{{Name: "psp", Provider: agentguardtest.StaticProvider}},
		Audit: agentguard.ArgsAudit{Record: true, Redact: []string{
			"/card/number", "/card/cvc", "/items/*/token", "/a~1b", "/absent/path",
		}},
		Handler: func(ctx context.Context, args json.RawMessage) (*agentguard.Result, error) {
			return &agentguard.Result{Output: "paid"}, nil
		},
	}
}

const payArgs = `{
	"amount": 40,
	"card": {"number": "` + cardCanary + `", "cvc": 123, "holder": "Ada"},
	"items": [{"sku": "A1", "token": {"v": "` + tokenCanary + `"}}, {"sku": "B2"}],
	"a/b": true,
	"note": "pay with ` + credCanary + `",
	"user": "` + userCanary + `"
}`

// wantPayArgs is what the record holds of payArgs: canonical JSON, the
// declared values redacted whatever their type, the credential's value
// and the user token scrubbed, the rest as given.
const wantPayArgs = `{"a/b":"[REDACTED]","amount":40,"card":{"cvc":"[REDACTED]","holder":"Ada","number":"[REDACTED]"},` +
	`"items":[{"sku":"A1","token":"[REDACTED]"},{"sku":"B2"}],"note":"pay with [REDACTED]","user":"[REDACTED]"}`

// TestRecordedArgs: a tool that asks for it has its arguments recorded,
// redacted and scrubbed; nothing redacted reaches the record's JSON, the
// slog output, the errors or the spans, and the rest is there.
func TestRecordedArgs(t *testing.T) {
	var logs syncBuffer
	rec := audittest.NewRecorder()
	slogSink := audit.NewSlogSink(logs.logger())
	sink := audit.SinkFunc(func(ctx context.Context, e audit.Event) error {
		_ = slogSink.Write(ctx, e)
		return rec.Write(ctx, e)
	})
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	// Amounts over 100 are denied, to see a denial's error too.
	engine := policytest.Func(func(r *policy.Request) policy.Decision {
		var a struct{ Amount int }
		_ = json.Unmarshal(r.Args, &a)
		if a.Amount > 100 {
			return policy.Decision{Policies: []string{"limit"}, Reason: "over the limit"}
		}
		return policy.Decision{Allowed: true, Policies: []string{"pay"}}
	})
	env := agentguardtest.New(t, engine, credCanary, agentguard.WithAudit(sink), agentguard.WithTracerProvider(tp))
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t1", UserToken: credentials.NewSecret(userCanary)})
	if err != nil {
		t.Fatal(err)
	}
	tool := payTool()
	if _, err := env.Guard.Invoke(ctx, tool, agentguard.Call{ID: "ok", Args: json.RawMessage(payArgs)}); err != nil {
		t.Fatal(err)
	}
	_, denyErr := env.Guard.Invoke(ctx, tool, agentguard.Call{ID: "big", Args: json.RawMessage(strings.Replace(payArgs, "40", "4000", 1))})
	if !errors.Is(denyErr, agentguard.ErrDenied) {
		t.Fatalf("big payment: %v, want a denial", denyErr)
	}
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}

	evs := rec.Events()
	ok := audittest.Expect(t, evs, audittest.Want{Kind: audit.KindToolCall, CallID: "ok", Decision: audit.Allow})
	if string(ok.Args) != wantPayArgs {
		t.Errorf("recorded args =\n%s\nwant\n%s", ok.Args, wantPayArgs)
	}
	if ok.ArgsDigest == "" {
		t.Error("the digest is no longer recorded")
	}
	denied := audittest.Expect(t, evs, audittest.Want{Kind: audit.KindToolCall, CallID: "big", Decision: audit.Deny, Step: agentguard.StepAuthorize})
	if want := strings.Replace(wantPayArgs, `"amount":40`, `"amount":4000`, 1); string(denied.Args) != want {
		t.Errorf("denied call's recorded args = %s, want %s", denied.Args, want)
	}

	canaries := []string{cardCanary, tokenCanary, credCanary, userCanary}
	audittest.ExpectNoSecret(t, evs, canaries...)
	var spans strings.Builder
	for _, s := range sr.Ended() {
		fmt.Fprint(&spans, s.Name(), s.Attributes(), s.Events(), s.Status())
	}
	for _, c := range canaries {
		for where, text := range map[string]string{"slog output": logs.String(), "error": denyErr.Error(), "spans": spans.String()} {
			if strings.Contains(text, c) {
				t.Errorf("%s holds %q", where, c)
			}
		}
	}
	// What is not redacted is recorded, and logged as JSON; arguments never
	// go into spans.
	for _, v := range []string{`"holder":"Ada"`, `"sku":"B2"`} {
		if !strings.Contains(logs.String(), v) {
			t.Errorf("slog output lacks %s", v)
		}
		if strings.Contains(spans.String(), "Ada") {
			t.Error("arguments in a span")
		}
	}
}

// TestArgsNotRecordedByDefault: a tool without ArgsAudit.Record has only
// the digest of its arguments recorded.
func TestArgsNotRecordedByDefault(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	tool := payTool()
	tool.Audit = agentguard.ArgsAudit{Redact: []string{"/card/number"}} // Redact alone records nothing
	if _, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{ID: "c", Args: json.RawMessage(payArgs)}); err != nil {
		t.Fatal(err)
	}
	e := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindToolCall, CallID: "c"})
	b, _ := json.Marshal(e)
	if e.Args != nil || strings.Contains(string(b), `"args"`) || e.ArgsDigest == "" {
		t.Errorf("record = %s, want the digest and no args", b)
	}
	audittest.ExpectNoSecret(t, env.Audit.Events(), cardCanary, tokenCanary, "Ada")
}

// TestRecordedArgsRedaction: pointers address members and elements, "*"
// any of them, and the escapes of RFC 6901 name keys with "/" and "~".
func TestRecordedArgsRedaction(t *testing.T) {
	tests := []struct {
		name, args string
		redact     []string
		want       string
	}{
		{"member", `{"a":1,"b":2}`, []string{"/a"}, `{"a":"[REDACTED]","b":2}`},
		{"every member", `{"a":1,"b":{"c":2}}`, []string{"/*"}, `{"a":"[REDACTED]","b":"[REDACTED]"}`},
		{"array element", `{"l":[1,2,3]}`, []string{"/l/1"}, `{"l":[1,"[REDACTED]",3]}`},
		{"index with a leading zero is no index", `{"l":[1,2]}`, []string{"/l/01"}, `{"l":[1,2]}`},
		{"every element", `{"l":[{"k":1,"x":0},{"k":2}]}`, []string{"/l/*/k"}, `{"l":[{"k":"[REDACTED]","x":0},{"k":"[REDACTED]"}]}`},
		{"escapes", `{"a/b":1,"c~d":2,"e":3}`, []string{"/a~1b", "/c~0d"}, `{"a/b":"[REDACTED]","c~d":"[REDACTED]","e":3}`},
		{"null, bool, object, array", `{"n":null,"t":true,"o":{"x":1},"l":[1]}`, []string{"/n", "/t", "/o", "/l"},
			`{"l":"[REDACTED]","n":"[REDACTED]","o":"[REDACTED]","t":"[REDACTED]"}`},
		{"missing path", `{"a":{"b":1}}`, []string{"/a/c", "/x/y/z", "/a/b/c"}, `{"a":{"b":1}}`},
		{"empty key", `{"":1,"a":2}`, []string{"/"}, `{"":"[REDACTED]","a":2}`},
		{"none", `{"a":[1,{"b":"c"}]}`, nil, `{"a":[1,{"b":"c"}]}`},
		// Keys match as encoding/json matches them to a struct's fields:
		// without regard to case, with Unicode simple folding.
		{"key in another case", `{"card":{"Number":"4111"}}`, []string{"/card/number"}, `{"card":{"Number":"[REDACTED]"}}`},
		{"keys in upper case", `{"CARD":{"NUMBER":"4111"}}`, []string{"/card/number"}, `{"CARD":{"NUMBER":"[REDACTED]"}}`},
		{"key in mixed case", `{"card":{"numbeR":"4111"}}`, []string{"/card/number"}, `{"card":{"numbeR":"[REDACTED]"}}`},
		{"long s folds to s", `{"paſsword":"hunter2","pass":1}`, []string{"/password"}, `{"pass":1,"paſsword":"[REDACTED]"}`},
		{"Kelvin sign folds to k", "{\"\u212aey\":\"v\"}", []string{"/key"}, "{\"\u212aey\":\"[REDACTED]\"}"},
		{"pointer in another case", `{"token":"v"}`, []string{"/TOKEN"}, `{"token":"[REDACTED]"}`},
	}
	env := agentguardtest.New(t, nil, "tok")
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tool := &agentguard.Tool{
				Name: fmt.Sprintf("t%d", i), Audit: agentguard.ArgsAudit{Record: true, Redact: tc.redact},
				Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) { return &agentguard.Result{}, nil },
			}
			if _, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{ID: tool.Name, Args: json.RawMessage(tc.args)}); err != nil {
				t.Fatal(err)
			}
			e := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindToolCall, CallID: tool.Name})
			if string(e.Args) != tc.want {
				t.Errorf("args = %s, want %s", e.Args, tc.want)
			}
		})
	}
}

// TestRecordedArgsCaseVariantKeys: a tool that decodes its arguments with
// encoding/json reads a key in any case as its field; the record redacts
// whatever the tool reads.
func TestRecordedArgsCaseVariantKeys(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	var read string
	tool := &agentguard.Tool{Name: "pay",
		Audit: agentguard.ArgsAudit{Record: true, Redact: []string{"/card/number"}},
		Handler: func(_ context.Context, args json.RawMessage) (*agentguard.Result, error) {
			var a struct {
				Card struct {
					Number string `json:"number"`
				} `json:"card"`
			}
			if err := json.Unmarshal(args, &a); err != nil {
				return nil, err
			}
			read = a.Card.Number
			return &agentguard.Result{}, nil
		}}
	for i, args := range []string{
		`{"card":{"Number":"` + cardCanary + `"}}`,
		`{"CARD":{"NUMBER":"` + cardCanary + `"}}`,
		`{"card":{"numbeR":"` + cardCanary + `"}}`,
	} {
		read = ""
		if _, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{ID: fmt.Sprint(i), Args: json.RawMessage(args)}); err != nil {
			t.Fatal(err)
		}
		if read != cardCanary {
			t.Fatalf("the tool read %q from %s, want the card number", read, args)
		}
	}
	audittest.ExpectNoSecret(t, env.Audit.Events(), cardCanary)
}

// TestRecordedArgsKeyHoldsSecret: a key holding a credential's value
// makes the whole arguments redacted: keys scrubbed alike would collide,
// and which value the record kept would change from call to call.
func TestRecordedArgsKeyHoldsSecret(t *testing.T) {
	const secret = "KEY-CANARY-SECRET"
	env := agentguardtest.New(t, nil, secret)
	tool := payTool()
	args := `{"` + secret + `":"first","[REDACTED]":"second","x":1}`
	for i := range 10 {
		if _, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{ID: fmt.Sprint(i), Args: json.RawMessage(args)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range env.Audit.Kind(audit.KindToolCall) {
		if string(e.Args) != `"[REDACTED]"` {
			t.Errorf("call %s: args = %s, want the whole arguments redacted", e.CallID, e.Args)
		}
	}
	audittest.ExpectNoSecret(t, env.Audit.Events(), secret)
}

// TestRecordedArgsForeignTask: a call with the context of a task another
// guard started is denied, and its recorded arguments are scrubbed of
// that task's user token all the same.
func TestRecordedArgsForeignTask(t *testing.T) {
	g1 := agentguardtest.New(t, nil, "cred-one")
	g2 := agentguardtest.New(t, nil, "cred-two")
	ctx, task, err := g1.Guard.StartTask(context.Background(), agentguard.TaskSpec{UserToken: credentials.NewSecret(userCanary)})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	tool := &agentguard.Tool{Name: "t", Audit: agentguard.ArgsAudit{Record: true},
		Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) { return &agentguard.Result{}, nil }}
	_, err = g2.Guard.Invoke(ctx, tool, agentguard.Call{ID: "c", Args: json.RawMessage(`{"q":"` + userCanary + `","n":1}`)})
	if !errors.Is(err, agentguard.ErrForeignTask) {
		t.Fatalf("err = %v, want ErrForeignTask", err)
	}
	e := audittest.Expect(t, g2.Audit.Events(), audittest.Want{Kind: audit.KindToolCall, CallID: "c", Decision: audit.Deny})
	if string(e.Args) != `{"n":1,"q":"[REDACTED]"}` {
		t.Errorf("args = %s", e.Args)
	}
	audittest.ExpectNoSecret(t, g2.Audit.Events(), userCanary)
}

// TestRecordedArgsTaskCredentials: the arguments of a call are scrubbed of
// the credentials earlier calls of its task used (a tool's output may
// have shown one to the model), of every provider, as their set changes,
// however often each was used.
func TestRecordedArgsTaskCredentials(t *testing.T) {
	broker := credentials.NewBroker(credentials.WithProvider("one", credentials.NewStaticProvider(credCanary)),
		credentials.WithProvider("other", credentials.NewStaticProvider("second-CANARY-cred")))
	env := agentguardtest.New(t, nil, "unused", agentguard.WithBroker(broker))
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{UserToken: credentials.NewSecret(userCanary)})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	handler := func(context.Context, json.RawMessage) (*agentguard.Result, error) { return &agentguard.Result{}, nil }
	first := &agentguard.Tool{Name: "first", Handler: handler, Credentials: []credentials.Requirement{{Name: "c", Provider: "one"}}}
	second := &agentguard.Tool{Name: "second", Handler: handler, Credentials: []credentials.Requirement{{Name: "c", Provider: "other"}}}
	recorder := &agentguard.Tool{Name: "rec", Handler: handler, Audit: agentguard.ArgsAudit{Record: true}}
	args := json.RawMessage(`{"a":"` + credCanary + `","b":"x second-CANARY-cred y","u":"` + userCanary + `"}`)
	for i, tool := range []*agentguard.Tool{recorder, first, recorder, second, recorder} {
		if _, err := env.Guard.Invoke(ctx, tool, agentguard.Call{ID: fmt.Sprint(i), Args: args}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{
		"0": `{"a":"` + credCanary + `","b":"x second-CANARY-cred y","u":"[REDACTED]"}`, // no credential used yet
		"2": `{"a":"[REDACTED]","b":"x second-CANARY-cred y","u":"[REDACTED]"}`,
		"4": `{"a":"[REDACTED]","b":"x [REDACTED] y","u":"[REDACTED]"}`,
	}
	// The broker hands each call its own copy of a cached lease: many
	// calls with one credential do not push the other out of those kept.
	for range 40 {
		if _, err := env.Guard.Invoke(ctx, second, agentguard.Call{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Guard.Invoke(ctx, recorder, agentguard.Call{ID: "5", Args: args}); err != nil {
		t.Fatal(err)
	}
	want["5"] = want["4"]
	for id, w := range want {
		if e := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindToolCall, CallID: id}); string(e.Args) != w {
			t.Errorf("call %s: args = %s, want %s", id, e.Args, w)
		}
	}
}

// TestRecordedArgsFailClosed: a credential value the scrubber can only
// find in the JSON text (here a number) makes the whole arguments
// redacted.
func TestRecordedArgsFailClosed(t *testing.T) {
	env := agentguardtest.New(t, nil, "98765432")
	tool := payTool()
	if _, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{ID: "c", Args: json.RawMessage(`{"pin":98765432,"x":"y"}`)}); err != nil {
		t.Fatal(err)
	}
	e := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindToolCall, CallID: "c"})
	if string(e.Args) != `"[REDACTED]"` {
		t.Errorf("args = %s, want the whole arguments redacted", e.Args)
	}
	audittest.ExpectNoSecret(t, env.Audit.Events(), "98765432")
}

// TestArgsAuditValidation: pointers are checked when a tool is wrapped,
// registered or invoked, with an error that names the tool and the
// pointer.
func TestArgsAuditValidation(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	for _, tc := range []struct{ ptr, why string }{
		{"card/number", `does not start with "/"`},
		{"", "whole arguments"},
		{"/a~2b", `"~" must be followed by 0 or 1`},
		{"/a~", `"~" must be followed by 0 or 1`},
		{"/\xff", "not valid UTF-8"},
	} {
		tool := payTool()
		tool.Audit.Redact = []string{"/ok", tc.ptr}
		_, err := env.Guard.Wrap(tool)
		if err == nil || !strings.Contains(err.Error(), `tool "pay": Audit.Redact: pointer`) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("Wrap with pointer %q: %v, want an error saying %s", tc.ptr, err, tc.why)
		}
		if err := env.Guard.NewRegistry("x").Register(tool); err == nil {
			t.Errorf("Register accepted pointer %q", tc.ptr)
		}
		_, err = env.Guard.Invoke(context.Background(), tool, agentguard.Call{})
		var de *agentguard.DenyError
		if !errors.Is(err, agentguard.ErrInvalidTool) || !errors.As(err, &de) || de.Step != agentguard.StepDefinition {
			t.Errorf("Invoke with pointer %q: %v, want a denial at the definition step", tc.ptr, err)
		}
	}
	tool := payTool()
	tool.Audit.Redact = []string{"/*", "/a~0b/~1/*/0", "/"}
	if _, err := env.Guard.Wrap(tool); err != nil {
		t.Errorf("valid pointers refused: %v", err)
	}
}

// TestArgsAuditNotInFingerprint: what the audit records is not part of a
// tool's definition, and a registered tool keeps its own copy of it.
func TestArgsAuditNotInFingerprint(t *testing.T) {
	plain := payTool()
	plain.Audit = agentguard.ArgsAudit{}
	audited := payTool()
	if plain.Fingerprint() != audited.Fingerprint() {
		t.Error("ArgsAudit changes the fingerprint")
	}
	env := agentguardtest.New(t, nil, "tok")
	reg := env.Guard.NewRegistry("x")
	if err := reg.Register(audited); err != nil {
		t.Fatal(err)
	}
	audited.Audit.Redact[0] = "/changed"
	got, _ := reg.Lookup("pay")
	if got.Audit.Redact[0] != "/card/number" || !got.Audit.Record {
		t.Errorf("registered audit settings = %+v", got.Audit)
	}
	got.Audit.Redact[0] = "/changed-too"
	if again, _ := reg.Lookup("pay"); again.Audit.Redact[0] != "/card/number" {
		t.Error("Lookup shares the registry's Redact")
	}
	if _, err := reg.Call(context.Background(), agentguard.Call{ID: "r", Name: "pay", Args: json.RawMessage(payArgs)}); err != nil {
		t.Fatal(err)
	}
	e := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindToolCall, CallID: "r"})
	if !strings.Contains(string(e.Args), `"number":"[REDACTED]"`) {
		t.Errorf("registry call args = %s", e.Args)
	}
}

// BenchmarkRecordedArgs measures what recording a call's arguments costs
// against recording their digest alone, for arguments of 100 and 10,000
// strings the model chose, in a task with a user token and a credential;
// "record-secret" has the credential's value in one of the strings, which
// makes the guard scrub them one by one.
func BenchmarkRecordedArgs(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			env := agentguardtest.New(b, nil, "cred-secret-value", agentguard.WithAudit(audit.Discard))
			ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{UserToken: credentials.NewSecret("user-token-value")})
			if err != nil {
				b.Fatal(err)
			}
			defer task.End(context.Background())
			tool := &agentguard.Tool{Name: "t", Audit: agentguard.ArgsAudit{Record: true, Redact: []string{"/card/number"}},
				Credentials: []credentials.Requirement{{Name: "c", Provider: agentguardtest.StaticProvider}},
				Handler:     func(context.Context, json.RawMessage) (*agentguard.Result, error) { return &agentguard.Result{}, nil }}
			digest := *tool
			digest.Name = "digest"
			digest.Audit = agentguard.ArgsAudit{}
			s := make([]string, n)
			for i := range s {
				s[i] = fmt.Sprintf("v%d", i)
			}
			args, _ := json.Marshal(map[string]any{"l": s})
			s[n/2] = "a cred-secret-value b"
			withSecret, _ := json.Marshal(map[string]any{"l": s})
			for _, tc := range []struct {
				name string
				tool *agentguard.Tool
				args json.RawMessage
			}{{"record", tool, args}, {"record-secret", tool, withSecret}, {"digest", &digest, args}} {
				b.Run(tc.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if _, err := env.Guard.Invoke(ctx, tc.tool, agentguard.Call{Args: tc.args}); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
