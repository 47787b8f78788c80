package openaiguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/agentguard/go-sdk/agentguard"
	openaiguard "github.com/agentguard/go-sdk/agentguard/adapters/openai"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
)

// chatMessage builds a message as the API returns it, from JSON.
func chatMessage(t *testing.T, calls ...string) *openai.ChatCompletionMessage {
	t.Helper()
	var c openai.ChatCompletion
	if err := json.Unmarshal([]byte(completionJSON("tool_calls", "", calls...)), &c); err != nil {
		t.Fatal(err)
	}
	return &c.Choices[0].Message
}

func TestRunOutputs(t *testing.T) {
	env := agentguardtest.New(t, nil, canary)
	reg := env.Guard.NewRegistry("outputs")
	out := func(v any) agentguard.Handler {
		return func(context.Context, json.RawMessage) (*agentguard.Result, error) {
			return &agentguard.Result{Output: v}, nil
		}
	}
	if err := reg.Register(
		&agentguard.Tool{Name: "text", Handler: out("plain text")},
		&agentguard.Tool{Name: "raw", Handler: out(json.RawMessage(`{"a":1}`))},
		&agentguard.Tool{Name: "value", Handler: out(map[string]int{"b": 2})},
		&agentguard.Tool{Name: "nothing", Handler: out(nil)},
		&agentguard.Tool{Name: "unencodable", Handler: out(make(chan int))},
	); err != nil {
		t.Fatal(err)
	}
	msg := chatMessage(t, functionCall("t1", "text", `{}`), functionCall("t2", "raw", `{}`),
		functionCall("t3", "value", ""), functionCall("t4", "nothing", `{}`), functionCall("t5", "unencodable", `{}`))
	turn, err := openaiguard.Run(context.Background(), reg, msg)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range []struct {
		text   string
		failed bool
	}{
		{"plain text", false}, {`{"a":1}`, false}, {`{"b":2}`, false}, {"", false},
		{`The tool "unencodable" ran, but its result could not be encoded for the model.`, true},
	} {
		c := turn.Calls[i]
		if c.Text() != w.text || c.Failed() != w.failed {
			t.Errorf("call %s: text %q failed %v, want %+v", c.Name, c.Text(), c.Failed(), w)
		}
		b, _ := json.Marshal(c.Message())
		var m struct {
			Role       string `json:"role"`
			ToolCallID string `json:"tool_call_id"`
			Content    string `json:"content"`
		}
		if err := json.Unmarshal(b, &m); err != nil || m.Role != "tool" || m.ToolCallID != c.ID || m.Content != w.text {
			t.Errorf("call %s: tool message %s", c.Name, b)
		}
	}
}

// TestRunBadArguments: arguments that are not a JSON object are denied
// and the tool does not run.
func TestRunBadArguments(t *testing.T) {
	f := newFixture(t)
	for _, args := range []string{`{"id":`, `[1,2]`, `"T-1"`} {
		turn, err := openaiguard.Run(f.ctx, f.reg, chatMessage(t, functionCall("call_a", "read_ticket", args)))
		if err != nil {
			t.Fatal(err)
		}
		c := turn.Calls[0]
		if !errors.Is(c.Err, agentguard.ErrInvalidArguments) || !strings.Contains(c.Text(), "Fix the arguments") {
			t.Errorf("arguments %s: err %v, text %q", args, c.Err, c.Text())
		}
	}
	if f.runs("read_ticket") != 0 {
		t.Errorf("read_ticket ran %d times", f.runs("read_ticket"))
	}
	if n := len(f.toolCalls(t)["call_a"]); n != 3 {
		t.Errorf("%d records of refused calls, want 3", n)
	}
}

// TestRunInOrder: by default the calls run one at a time, in the model's
// order.
func TestRunInOrder(t *testing.T) {
	f := newFixture(t)
	msg := chatMessage(t, functionCall("t1", "delete_account", `{"user":"u1"}`),
		functionCall("t2", "read_ticket", `{"id":"T-1"}`), functionCall("t3", "delete_account", `{"user":"u2"}`))
	turn, err := openaiguard.Run(f.ctx, f.reg, msg)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"delete_account", "read_ticket", "delete_account"}; !slices.Equal(f.order, want) {
		t.Errorf("ran %q, want %q", f.order, want)
	}
	for i, c := range turn.Calls {
		if c.Err != nil || c.ID != []string{"t1", "t2", "t3"}[i] {
			t.Errorf("call %d: %s err %v", i, c.ID, c.Err)
		}
	}
}

// TestRunConcurrently: WithConcurrency runs calls at once (each of these
// tools waits until all three have started) and keeps the model's order.
func TestRunConcurrently(t *testing.T) {
	env := agentguardtest.New(t, nil, canary)
	reg := env.Guard.NewRegistry("parallel")
	// The bound only keeps a broken build from hanging the suite.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var started atomic.Int32
	all := make(chan struct{})
	for _, name := range []string{"a", "b", "c"} {
		if err := reg.Register(&agentguard.Tool{Name: name, Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
			if started.Add(1) == 3 {
				close(all)
			}
			select {
			case <-all:
				return &agentguard.Result{Output: name}, nil
			case <-ctx.Done():
				return nil, errors.New("the calls did not run at once")
			}
		}}); err != nil {
			t.Fatal(err)
		}
	}
	msg := chatMessage(t, functionCall("t1", "c", `{}`), functionCall("t2", "a", `{}`), functionCall("t3", "b", `{}`))
	turn, err := openaiguard.Run(ctx, reg, msg, openaiguard.WithConcurrency(3))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"c", "a", "b"} {
		if c := turn.Calls[i]; c.Err != nil || c.Text() != want {
			t.Errorf("call %d: text %q err %v, want %q", i, c.Text(), c.Err, want)
		}
	}
}

func TestRunNothingToDo(t *testing.T) {
	f := newFixture(t)
	var c openai.ChatCompletion
	if err := json.Unmarshal([]byte(completionJSON("stop", "Done.")), &c); err != nil {
		t.Fatal(err)
	}
	turn, err := openaiguard.Run(f.ctx, f.reg, &c.Choices[0].Message)
	if err != nil || len(turn.Calls) != 0 {
		t.Fatalf("turn %+v, err %v", turn, err)
	}
	var resp responses.Response
	if err := json.Unmarshal([]byte(responseJSON("resp_1", textItem("Done."))), &resp); err != nil {
		t.Fatal(err)
	}
	if turn, err := openaiguard.RunResponse(f.ctx, f.reg, &resp); err != nil || len(turn.Calls) != 0 {
		t.Fatalf("response turn %+v, err %v", turn, err)
	}
	if _, err := openaiguard.Run(f.ctx, f.reg, nil); err == nil {
		t.Error("Run accepted a nil message")
	}
	if _, err := openaiguard.RunResponse(f.ctx, f.reg, nil); err == nil {
		t.Error("RunResponse accepted a nil response")
	}
	if _, err := openaiguard.Run(f.ctx, nil, &c.Choices[0].Message); !errors.Is(err, openaiguard.ErrNoRegistry) {
		t.Errorf("Run with no registry: %v", err)
	}
	if _, err := openaiguard.Tools(f.ctx, nil); !errors.Is(err, openaiguard.ErrNoRegistry) {
		t.Errorf("Tools with no registry: %v", err)
	}
	if _, err := openaiguard.ResponseTools(f.ctx, nil); !errors.Is(err, openaiguard.ErrNoRegistry) {
		t.Errorf("ResponseTools with no registry: %v", err)
	}
}

func TestFunctionDefinition(t *testing.T) {
	for _, tc := range []struct {
		schema, want string
		err          bool
	}{
		{"", `{"properties":{},"type":"object"}`, false},
		{`{"type":"object","properties":{"n":{"type":"integer","maximum":12345678901234567890}}}`,
			`{"properties":{"n":{"type":"integer","maximum":12345678901234567890}},"type":"object"}`, false},
		{`{"properties":{"a":{"type":"string"}}}`, `{"properties":{"a":{"type":"string"}},"type":"object"}`, false},
		{`{"type":"string"}`, "", true},
		{`{"type":["object","null"]}`, "", true},
	} {
		def, err := openaiguard.FunctionDefinition(&agentguard.Tool{Name: "x", InputSchema: json.RawMessage(tc.schema)})
		if tc.err {
			if !errors.Is(err, openaiguard.ErrSchema) {
				t.Errorf("schema %s: err %v, want ErrSchema", tc.schema, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("schema %s: %v", tc.schema, err)
		}
		b, err := json.Marshal(def)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Name        string          `json:"name"`
			Description *string         `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.Name != "x" || got.Description != nil || string(got.Parameters) != tc.want {
			t.Errorf("schema %s: sent %s, want parameters %s", tc.schema, b, tc.want)
		}
	}
	if _, err := openaiguard.FunctionDefinition(nil); err == nil {
		t.Error("FunctionDefinition(nil) succeeded")
	}

	fn, err := openaiguard.ResponseFunction(&agentguard.Tool{Name: "y", Description: "Why.",
		OutputSchema: json.RawMessage(`{"type":"object","properties":{"ok":{"type":"boolean"}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(fn)
	for _, want := range []string{`"name":"y"`, `"description":"Why."`, `"strict":false`, `"output_schema":{"properties":{"ok":{"type":"boolean"}},"type":"object"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Responses function %s lacks %s", b, want)
		}
	}
	if _, err := openaiguard.ResponseFunction(&agentguard.Tool{Name: "z", OutputSchema: json.RawMessage(`[]`)}); !errors.Is(err, openaiguard.ErrSchema) {
		t.Errorf("bad output schema: %v", err)
	}
}

// TestToolsRefused: no tool list for a task that has ended.
func TestToolsRefused(t *testing.T) {
	f := newFixture(t)
	task, _ := agentguard.TaskFromContext(f.ctx)
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	if defs, err := openaiguard.Tools(f.ctx, f.reg); err == nil || defs != nil {
		t.Fatalf("Tools after the task ended: %d tools, err %v", len(defs), err)
	}
	if defs, err := openaiguard.ResponseTools(f.ctx, f.reg); err == nil || defs != nil {
		t.Fatalf("ResponseTools after the task ended: %d tools, err %v", len(defs), err)
	}
}
