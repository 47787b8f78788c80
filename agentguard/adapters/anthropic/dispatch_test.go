package anthropicguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/agentguard/go-sdk/agentguard"
	anthropicguard "github.com/agentguard/go-sdk/agentguard/adapters/anthropic"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
)

// resultJSON is the tool_result block of c as the SDK encodes it.
func resultJSON(t *testing.T, c *anthropicguard.Call) wireResult {
	t.Helper()
	b, err := json.Marshal(c.ResultBlock())
	if err != nil {
		t.Fatal(err)
	}
	var r wireResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunOutputs(t *testing.T) {
	env := agentguardtest.New(t, nil, canary)
	reg := env.Guard.NewRegistry("outputs")
	out := func(v any) agentguard.Handler {
		return func(context.Context, json.RawMessage) (*agentguard.Result, error) {
			return &agentguard.Result{Output: v}, nil
		}
	}
	image := []anthropic.ToolResultBlockParamContentUnion{{OfText: &anthropic.TextBlockParam{Text: "block one"}}}
	if err := reg.Register(
		&agentguard.Tool{Name: "text", Handler: out("plain text")},
		&agentguard.Tool{Name: "raw", Handler: out(json.RawMessage(`{"a":1}`))},
		&agentguard.Tool{Name: "value", Handler: out(map[string]int{"b": 2})},
		&agentguard.Tool{Name: "blocks", Handler: out(image)},
		&agentguard.Tool{Name: "nothing", Handler: out(nil)},
		&agentguard.Tool{Name: "empty", Handler: out(" \n")},
		&agentguard.Tool{Name: "unencodable", Handler: out(make(chan int))},
	); err != nil {
		t.Fatal(err)
	}
	msg := message(t, strings.Join([]string{
		toolUse("t1", "text", `{}`), toolUse("t2", "raw", `{}`), toolUse("t3", "value", `{}`),
		toolUse("t4", "blocks", `{}`), toolUse("t5", "nothing", `{}`), toolUse("t6", "empty", `{}`),
		toolUse("t7", "unencodable", `{}`),
	}, ","))
	turn, err := anthropicguard.Run(context.Background(), reg, msg)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		text    string
		isError bool
		parts   int
	}{
		{"plain text", false, 1}, {`{"a":1}`, false, 1}, {`{"b":2}`, false, 1}, {"block one", false, 1},
		{"", false, 0}, {"", false, 0},
		{`The tool "unencodable" ran, but its result could not be encoded for the model.`, true, 1},
	}
	for i, w := range want {
		r := resultJSON(t, turn.Calls[i])
		if r.text() != w.text || r.IsError != w.isError || len(r.Content) != w.parts || r.ToolUseID != turn.Calls[i].Block.ID {
			t.Errorf("call %s: %+v, want %+v", turn.Calls[i].Block.Name, r, w)
		}
	}
}

// TestRunBadArguments: arguments that are not a JSON object are denied
// and the tool does not run.
func TestRunBadArguments(t *testing.T) {
	f := newFixture(t)
	turn, err := anthropicguard.Run(f.ctx, f.reg, message(t, toolUse("toolu_a", "read_ticket", `[1,2]`)))
	if err != nil {
		t.Fatal(err)
	}
	c := turn.Calls[0]
	if !errors.Is(c.Err, agentguard.ErrInvalidArguments) || f.runs("read_ticket") != 0 {
		t.Fatalf("err %v, ran %d", c.Err, f.runs("read_ticket"))
	}
	if r := resultJSON(t, c); !r.IsError || !strings.Contains(r.text(), "Fix the arguments") {
		t.Errorf("result %+v", r)
	}
	if len(f.toolCalls(t)["toolu_a"]) != 1 {
		t.Error("the refused call was not audited once")
	}
}

// TestRunToolsetMember: a tool_use of a toolset member never reaches the
// registry's tool of the same name, and its result names the toolset.
func TestRunToolsetMember(t *testing.T) {
	f := newFixture(t)
	msg := message(t, `{"type":"tool_use","id":"toolu_b","name":"read_ticket","toolset_name":"browser","input":{"id":"T-1"}}`)
	turn, err := anthropicguard.Run(f.ctx, f.reg, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(turn.Calls[0].Err, agentguard.ErrUnknownTool) || f.runs("read_ticket") != 0 {
		t.Fatalf("err %v, ran %d", turn.Calls[0].Err, f.runs("read_ticket"))
	}
	b, _ := json.Marshal(turn.Calls[0].ResultBlock())
	if !strings.Contains(string(b), `"toolset_name":"browser"`) || !strings.Contains(string(b), `"is_error":true`) {
		t.Errorf("result %s", b)
	}
}

// TestRunInOrder: by default the calls run one at a time, in the model's
// order.
func TestRunInOrder(t *testing.T) {
	f := newFixture(t)
	msg := message(t, strings.Join([]string{
		toolUse("t1", "delete_account", `{"user":"u1"}`), toolUse("t2", "read_ticket", `{"id":"T-1"}`),
		toolUse("t3", "delete_account", `{"user":"u2"}`),
	}, ","))
	turn, err := anthropicguard.Run(f.ctx, f.reg, msg)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"delete_account", "read_ticket", "delete_account"}; !slices.Equal(f.order, want) {
		t.Errorf("ran %q, want %q", f.order, want)
	}
	for i, c := range turn.Calls {
		if c.Err != nil || c.Block.ID != []string{"t1", "t2", "t3"}[i] {
			t.Errorf("call %d: %s err %v", i, c.Block.ID, c.Err)
		}
	}
}

// TestRunConcurrently: WithConcurrency runs calls at once (each of these
// tools waits until all three have started) and keeps the model's order
// in the results.
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
	msg := message(t, toolUse("t1", "c", `{}`)+","+toolUse("t2", "a", `{}`)+","+toolUse("t3", "b", `{}`))
	turn, err := anthropicguard.Run(ctx, reg, msg, anthropicguard.WithConcurrency(3))
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
	var msg anthropic.Message
	if err := json.Unmarshal([]byte(messageJSON("end_turn", `{"type":"text","text":"Done."}`)), &msg); err != nil {
		t.Fatal(err)
	}
	turn, err := anthropicguard.Run(f.ctx, f.reg, &msg)
	if err != nil || len(turn.Calls) != 0 {
		t.Fatalf("turn %+v, err %v", turn, err)
	}
	if _, err := anthropicguard.Run(f.ctx, f.reg, nil); err == nil {
		t.Error("Run accepted a nil message")
	}
	if _, err := anthropicguard.Run(f.ctx, nil, &msg); !errors.Is(err, anthropicguard.ErrNoRegistry) {
		t.Errorf("Run with no registry: %v", err)
	}
	if _, err := anthropicguard.Tools(f.ctx, nil); !errors.Is(err, anthropicguard.ErrNoRegistry) {
		t.Errorf("Tools with no registry: %v", err)
	}
}

func TestToolParam(t *testing.T) {
	for _, tc := range []struct {
		schema, want string
		err          bool
	}{
		{"", `{"type":"object","properties":{}}`, false},
		{`{"type":"object","properties":{"a":{"type":"string"}}}`, `{"type":"object","properties":{"a":{"type":"string"}}}`, false},
		{`{"properties":{"a":{"type":"string"}}}`, `{"properties":{"a":{"type":"string"}},"type":"object"}`, false},
		{`{"type":"object","properties":{"n":{"type":"integer","maximum":12345678901234567890}}}`,
			`{"type":"object","properties":{"n":{"type":"integer","maximum":12345678901234567890}}}`, false},
		{`{"type":"string"}`, "", true},
		{`{"type":["object","null"]}`, "", true},
	} {
		p, err := anthropicguard.ToolParam(&agentguard.Tool{Name: "x", InputSchema: json.RawMessage(tc.schema)})
		if tc.err {
			if !errors.Is(err, anthropicguard.ErrSchema) {
				t.Errorf("schema %s: err %v, want ErrSchema", tc.schema, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("schema %s: %v", tc.schema, err)
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Name        string          `json:"name"`
			Description *string         `json:"description"`
			InputSchema json.RawMessage `json:"input_schema"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.Name != "x" || got.Description != nil || string(got.InputSchema) != tc.want {
			t.Errorf("schema %s: sent %s, want input_schema %s", tc.schema, b, tc.want)
		}
	}
	if _, err := anthropicguard.ToolParam(nil); err == nil {
		t.Error("ToolParam(nil) succeeded")
	}
}

// TestToolsRefused: no tool list for a task that has ended.
func TestToolsRefused(t *testing.T) {
	f := newFixture(t)
	task, _ := agentguard.TaskFromContext(f.ctx)
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	if defs, err := anthropicguard.Tools(f.ctx, f.reg); err == nil || defs != nil {
		t.Fatalf("Tools after the task ended: %d tools, err %v", len(defs), err)
	}
}
