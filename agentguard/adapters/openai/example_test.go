package openaiguard_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/openai/openai-go/v3"

	"github.com/agentguard/go-sdk/agentguard"
	openaiguard "github.com/agentguard/go-sdk/agentguard/adapters/openai"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// The tool calls of a model's message run through the guard, and each is
// answered with a tool message: the output of the allowed call, the
// reason for the denied one.
func ExampleRun() {
	guard, _ := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/support"))),
		agentguard.WithPolicy(policytest.NewRules(
			policytest.Rule{ID: "weather", Effect: policytest.Allow, Tool: "get_weather"},
		)),
		agentguard.WithAudit(audittest.NewRecorder()),
	)
	defer guard.Close(context.Background())
	reg := guard.NewRegistry("tools")
	_ = reg.Register(
		&agentguard.Tool{Name: "get_weather", Description: "Weather in a city.",
			Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
				return &agentguard.Result{Output: "sunny"}, nil
			}},
		&agentguard.Tool{Name: "send_email", Description: "Send an email.",
			Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
				return &agentguard.Result{Output: "sent"}, nil
			}},
	)

	defs, _ := openaiguard.Tools(context.Background(), reg)
	fmt.Println("tools for the model:", len(defs), defs[0].GetFunction().Name)

	// The message as client.Chat.Completions.New returns it.
	var msg openai.ChatCompletionMessage
	_ = json.Unmarshal([]byte(`{"role":"assistant","content":null,"tool_calls":[
		{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
		{"id":"call_2","type":"function","function":{"name":"send_email","arguments":"{\"to\":\"x@example.com\"}"}}]}`), &msg)
	turn, _ := openaiguard.Run(context.Background(), reg, &msg)
	for _, m := range turn.Messages() {
		b, _ := json.Marshal(m)
		fmt.Println(string(b))
	}
	// Output:
	// tools for the model: 1 get_weather
	// {"content":"sunny","tool_call_id":"call_1","role":"tool"}
	// {"content":"The call to tool \"send_email\" was denied (authorize): no rule allows this call. Policy does not allow it; do not retry it with the same arguments.","tool_call_id":"call_2","role":"tool"}
}
