package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cloudwego/eino/components/model"
	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"
)

// loopState is the agent graph's state: the conversation so far.
type loopState struct {
	Messages []*schema.Message
}

func init() {
	schema.RegisterName[*loopState]("_agentguard_example_eino_state")
}

// memStore keeps the graph's checkpoints in memory.
type memStore map[string][]byte

func (s memStore) Get(_ context.Context, id string) ([]byte, bool, error) {
	b, ok := s[id]
	return b, ok, nil
}

func (s memStore) Set(_ context.Context, id string, b []byte) error {
	s[id] = b
	return nil
}

// newAgent compiles the agent: the chat model, then the tools it calls,
// in a loop until the model answers without calling a tool. Checkpoints let
// a paused run resume.
func newAgent(ctx context.Context, chat model.ToolCallingChatModel, tools *compose.ToolsNodeConfig) (compose.Runnable[[]*schema.Message, *schema.Message], error) {
	node, err := compose.NewToolNode(ctx, tools)
	if err != nil {
		return nil, err
	}
	g := compose.NewGraph[[]*schema.Message, *schema.Message](compose.WithGenLocalState(func(context.Context) *loopState {
		return &loopState{}
	}))
	err = errors.Join(
		g.AddChatModelNode("model", chat, compose.WithStatePreHandler(func(_ context.Context, in []*schema.Message, st *loopState) ([]*schema.Message, error) {
			st.Messages = append(st.Messages, in...)
			return st.Messages, nil
		})),
		g.AddToolsNode("tools", node, compose.WithStatePreHandler(func(_ context.Context, in *schema.Message, st *loopState) (*schema.Message, error) {
			if in == nil { // resumed: the ToolsNode restores its input
				return st.Messages[len(st.Messages)-1], nil
			}
			st.Messages = append(st.Messages, in)
			return in, nil
		})),
		g.AddEdge(compose.START, "model"),
		g.AddBranch("model", compose.NewGraphBranch(func(_ context.Context, msg *schema.Message) (string, error) {
			if len(msg.ToolCalls) > 0 {
				return "tools", nil
			}
			return compose.END, nil
		}, map[string]bool{"tools": true, compose.END: true})),
		g.AddEdge("tools", "model"),
	)
	if err != nil {
		return nil, err
	}
	return g.Compile(ctx, compose.WithCheckPointStore(memStore{}), compose.WithMaxRunSteps(20), compose.WithGraphName("shop-agent"))
}

// scriptedModel stands for the chat model: it replies from a script, and
// prints the tool results it is given and the calls it makes.
type scriptedModel struct {
	out    io.Writer
	script []*schema.Message
	// shown counts the tool results printed so far.
	shown int
}

func newScriptedModel(out io.Writer) *scriptedModel {
	call := func(id, name, args string) *schema.Message {
		return &schema.Message{Role: schema.Assistant, ToolCalls: []schema.ToolCall{
			{ID: id, Type: "function", Function: schema.FunctionCall{Name: name, Arguments: args}},
		}}
	}
	return &scriptedModel{out: out, script: []*schema.Message{
		call("call-1", "lookup_order", `{"order":"O-1"}`),
		call("call-2", "close_account", `{"order":"O-1"}`),
		call("call-3", "refund", `{"order":"O-1","amount":40}`),
		schema.AssistantMessage("Your order O-1 arrives on Thursday and 40 was refunded. I cannot close accounts: a colleague will do that for you.", nil),
	}}
}

func (m *scriptedModel) Generate(_ context.Context, in []*schema.Message, _ ...model.Option) (*schema.Message, error) {
	var results []*schema.Message
	for _, msg := range in {
		if msg.Role == schema.Tool {
			results = append(results, msg)
		}
	}
	for _, r := range results[m.shown:] {
		fmt.Fprintf(m.out, "model ← %s %s: %s\n", r.ToolCallID, r.ToolName, r.Content)
	}
	m.shown = len(results)
	if len(m.script) == 0 {
		return nil, errors.New("scripted model: nothing more to say")
	}
	reply := m.script[0]
	m.script = m.script[1:]
	for _, c := range reply.ToolCalls {
		fmt.Fprintf(m.out, "model → %s %s %s\n", c.ID, c.Function.Name, c.Function.Arguments)
	}
	return reply, nil
}

func (m *scriptedModel) Stream(ctx context.Context, in []*schema.Message, opts ...model.Option) (*schema.StreamReader[*schema.Message], error) {
	msg, err := m.Generate(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	return schema.StreamReaderFromArray([]*schema.Message{msg}), nil
}

// WithTools returns the model: the script already knows its tools.
func (m *scriptedModel) WithTools([]*schema.ToolInfo) (model.ToolCallingChatModel, error) {
	return m, nil
}
