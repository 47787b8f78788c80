package anthropicguard_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/agentguard/go-sdk/agentguard"
	anthropicguard "github.com/agentguard/go-sdk/agentguard/adapters/anthropic"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// The tool_use blocks of a model's message run through the guard, and the
// answer is one user message of tool_result blocks: the output of the
// allowed call, the reason for the denied one.
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

	defs, _ := anthropicguard.Tools(context.Background(), reg)
	fmt.Println("tools for the model:", len(defs), defs[0].OfTool.Name)

	// The message as client.Messages.New returns it.
	var msg anthropic.Message
	_ = json.Unmarshal([]byte(`{"id":"msg_1","type":"message","role":"assistant","model":"m","stop_reason":"tool_use",
		"content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},
		           {"type":"tool_use","id":"toolu_2","name":"send_email","input":{"to":"x@example.com"}}]}`), &msg)
	turn, _ := anthropicguard.Run(context.Background(), reg, &msg)
	reply, _ := json.MarshalIndent(turn.Message(), "", "  ")
	fmt.Println(string(reply))
	// Output:
	// tools for the model: 1 get_weather
	// {
	//   "content": [
	//     {
	//       "tool_use_id": "toolu_1",
	//       "content": [
	//         {
	//           "text": "sunny",
	//           "type": "text"
	//         }
	//       ],
	//       "type": "tool_result"
	//     },
	//     {
	//       "tool_use_id": "toolu_2",
	//       "is_error": true,
	//       "content": [
	//         {
	//           "text": "The call to tool \"send_email\" was denied (authorize): no rule allows this call. Policy does not allow it; do not retry it with the same arguments.",
	//           "type": "text"
	//         }
	//       ],
	//       "type": "tool_result"
	//     }
	//   ],
	//   "role": "user"
	// }
}
