// Command anthropic runs a help-desk agent's tool loop over Anthropic's
// Messages API with every tool call guarded by AgentGuard (package
// anthropicguard). The model is scripted and served on a loopback port,
// so the SDK's real client runs with no network and no API key. Run it
// with
//
//	(cd examples/dispatch && go run ./anthropic)
//
// It shows the tools the model is shown (filtered by Cedar policy), an
// allowed call with a task-scoped credential, a call of a hidden tool and
// a call that policy forbids (both answered with an is_error tool_result
// the model reads), and a refund that needs a supervisor: the call waits
// (approval.Deferred), a human grants it, and the turn resumes.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	anthropicguard "github.com/agentguard/go-sdk/agentguard/adapters/anthropic"
	"github.com/agentguard/go-sdk/examples/dispatch/helpdesk"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "anthropic example:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	return helpdesk.Run(ctx, out, script, func(ctx context.Context, h *helpdesk.Helpdesk, baseURL string) error {
		return converse(ctx, out, h, anthropic.NewClient(option.WithBaseURL(baseURL), option.WithAPIKey("scripted-model-needs-no-key"), option.WithMaxRetries(0)))
	})
}

// converse is the agent's tool loop: it sends the conversation to the
// model and runs the tool_use blocks of each reply through the guarded
// registry until the model stops calling tools.
func converse(ctx context.Context, out io.Writer, h *helpdesk.Helpdesk, client anthropic.Client) error {
	defs, err := anthropicguard.Tools(ctx, h.Registry)
	if err != nil {
		return err
	}
	var names []string
	for _, d := range defs {
		names = append(names, d.OfTool.Name)
	}
	helpdesk.ShowTools(out, names)

	params := anthropic.MessageNewParams{
		Model: "scripted", MaxTokens: 1024, Tools: defs,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(helpdesk.Ask))},
	}
	for {
		msg, err := client.Messages.New(ctx, params)
		if err != nil {
			return err
		}
		for _, b := range msg.Content {
			if b.Type == "text" {
				fmt.Fprintf(out, "model: %s\n", b.Text)
			}
		}
		for _, b := range anthropicguard.ToolUses(msg) {
			fmt.Fprintf(out, "  tool_use %s %s %s\n", b.ID, b.Name, b.Input)
		}
		params.Messages = append(params.Messages, msg.ToParam())
		turn, err := anthropicguard.Run(ctx, h.Registry, msg)
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
			if c.Err != nil {
				fmt.Fprintf(out, "  tool_result %s is_error: %s\n", c.Block.ID, c.Text())
			} else {
				fmt.Fprintf(out, "  tool_result %s: %s\n", c.Block.ID, c.Text())
			}
		}
		params.Messages = append(params.Messages, turn.Message())
	}
}
