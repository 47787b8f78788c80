// Command openai runs a help-desk agent's tool loop over OpenAI's Chat
// Completions API with every tool call guarded by AgentGuard (package
// openaiguard). The model is scripted and served on a loopback port, so
// the SDK's real client runs with no network and no API key. Run it with
//
//	(cd examples/dispatch && go run ./openai)
//
// It shows the tools the model is shown (filtered by Cedar policy), an
// allowed call with a task-scoped credential, a call of a hidden tool and
// a call that policy forbids (both answered with a tool message the model
// reads), and a refund that needs a supervisor: the call waits
// (approval.Deferred), a human grants it, and the turn resumes.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	openaiguard "github.com/agentguard/go-sdk/agentguard/adapters/openai"
	"github.com/agentguard/go-sdk/examples/dispatch/helpdesk"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "openai example:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	return helpdesk.Run(ctx, out, script, func(ctx context.Context, h *helpdesk.Helpdesk, baseURL string) error {
		return converse(ctx, out, h, openai.NewClient(option.WithBaseURL(baseURL), option.WithAPIKey("scripted-model-needs-no-key"), option.WithMaxRetries(0)))
	})
}

// converse is the agent's tool loop: it sends the conversation to the
// model and runs the tool calls of each completion through the guarded
// registry until the model stops calling tools.
func converse(ctx context.Context, out io.Writer, h *helpdesk.Helpdesk, client openai.Client) error {
	defs, err := openaiguard.Tools(ctx, h.Registry)
	if err != nil {
		return err
	}
	var names []string
	for _, d := range defs {
		names = append(names, d.GetFunction().Name)
	}
	helpdesk.ShowTools(out, names)

	params := openai.ChatCompletionNewParams{
		Model: "scripted", Tools: defs,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(helpdesk.Ask)},
	}
	for {
		completion, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			return err
		}
		msg := completion.Choices[0].Message
		if msg.Content != "" {
			fmt.Fprintf(out, "model: %s\n", msg.Content)
		}
		for _, tc := range msg.ToolCalls {
			fmt.Fprintf(out, "  tool_call %s %s %s\n", tc.ID, tc.Function.Name, tc.Function.Arguments)
		}
		params.Messages = append(params.Messages, msg.ToParam())
		turn, err := openaiguard.Run(ctx, h.Registry, &msg)
		if err != nil {
			return err
		}
		if len(turn.Calls) == 0 {
			return nil
		}
		if err := helpdesk.Approve(ctx, out, h, turn.Calls, turn.Resume); err != nil {
			return err
		}
		for _, c := range turn.Calls {
			fmt.Fprintf(out, "  tool %s: %s\n", c.ID, c.Text())
		}
		params.Messages = append(params.Messages, turn.Messages()...)
	}
}
