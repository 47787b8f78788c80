package genkitguard_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/firebase/genkit/go/ai"
	"github.com/firebase/genkit/go/core/logger"
	"github.com/firebase/genkit/go/genkit"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/agentguard"
	genkitguard "github.com/agentguard/go-sdk/agentguard/adapters/genkit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// A genkit generation whose model calls two tools: policy allows one and
// forbids the other, whose result the model reads in its place.
func ExampleMiddleware() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger.SetLevel(slog.LevelWarn)
	g := genkit.Init(ctx)

	weather := genkit.DefineTool(g, "weather", "Tells the weather of a city.",
		func(_ *ai.ToolContext, in struct{ City string }) (string, error) { return "sunny in " + in.City, nil })
	wire := genkit.DefineTool(g, "wire_money", "Wires money.",
		func(_ *ai.ToolContext, in struct{ Amount int }) (string, error) { return "wired", nil })

	// A scripted model: it calls both tools, then repeats what it read.
	model := genkit.DefineModelAction(g, "example/scripted", &ai.ModelOptions{Supports: &ai.ModelSupports{Tools: true, Multiturn: true}},
		func(_ context.Context, req *ai.ModelRequest, _ any, _ ai.ModelStreamCallback) (*ai.ModelResponse, error) {
			last := req.Messages[len(req.Messages)-1]
			if last.Role != ai.RoleTool {
				return &ai.ModelResponse{Message: &ai.Message{Role: ai.RoleModel, Content: []*ai.Part{
					ai.NewToolRequestPart(&ai.ToolRequest{Name: "weather", Ref: "c1", Input: map[string]any{"City": "Paris"}}),
					ai.NewToolRequestPart(&ai.ToolRequest{Name: "wire_money", Ref: "c2", Input: map[string]any{"Amount": 100}}),
				}}}, nil
			}
			text := ""
			for _, p := range last.Content {
				text += fmt.Sprintf("%s: %v\n", p.ToolResponse.Name, p.ToolResponse.Output)
			}
			return &ai.ModelResponse{Message: ai.NewModelTextMessage(text)}, nil
		})

	guard, err := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.Identity{ID: spiffeid.RequireFromString("spiffe://example.org/agent/assistant")})),
		agentguard.WithPolicy(policytest.Func(func(req *policy.Request) policy.Decision {
			if req.Tool.Name == "wire_money" {
				return policy.Decision{Reason: "payments need a person"}
			}
			return policy.Decision{Allowed: true}
		})),
		agentguard.WithAudit(audittest.NewRecorder()),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer guard.Close(ctx)
	mw, err := genkitguard.New(guard)
	if err != nil {
		fmt.Println(err)
		return
	}

	resp, err := mw.Generate(ctx, g, ai.WithModel(model), ai.WithPrompt("weather, then pay"), ai.WithTools(weather, wire))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(resp.Text())
	// Output:
	// weather: sunny in Paris
	// wire_money: map[error:The call to tool "wire_money" was denied (authorize): payments need a person. Policy does not allow it; do not retry it with the same arguments.]
}
