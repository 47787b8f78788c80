// Command anthropic runs a help-desk agent's tool loop over Anthropic's
// Messages API with every tool call guarded by AgentGuard (package
// anthropicguard). The model is scripted and served on a loopback port,
// so the SDK's real client runs with no network and no API key.
//
// It shows the tools the model is shown (filtered by Cedar policy), an
// allowed call with a task-scoped credential, a call of a hidden tool and
// a call that policy forbids (both answered with an is_error tool_result
// the model reads), and a refund that needs a supervisor: the call waits
// (approval.Deferred), a human grants it, and the turn resumes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/agentguard/go-sdk/agentguard"
	anthropicguard "github.com/agentguard/go-sdk/agentguard/adapters/anthropic"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "anthropic example:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) (err error) {
	h, err := newHelpdesk(out)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, h.guard.Close(context.Background())) }()
	model := startModel()
	defer model.close()
	client := anthropic.NewClient(option.WithBaseURL(model.srv.URL), option.WithAPIKey("scripted-model-needs-no-key"), option.WithMaxRetries(0))

	fmt.Fprintf(out, "agent %s (X.509-SVID from the development issuer)\n", h.agent)
	ctx, task, err := h.guard.StartTask(ctx, agentguard.TaskSpec{ID: "task-O-1", Purpose: "refund order O-1"})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, task.End(context.Background())) }()

	defs, err := anthropicguard.Tools(ctx, h.registry)
	if err != nil {
		return err
	}
	var names []string
	for _, d := range defs {
		names = append(names, d.OfTool.Name)
	}
	fmt.Fprintf(out, "tools the model is shown: %s (export_customers is hidden: only the data team may call it)\n\n", strings.Join(names, ", "))

	const ask = "Order O-1 arrived broken; please refund it."
	fmt.Fprintf(out, "user: %s\n", ask)
	params := anthropic.MessageNewParams{
		Model: "scripted", MaxTokens: 1024, Tools: defs,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(ask))},
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
		turn, err := anthropicguard.Run(ctx, h.registry, msg)
		if err != nil {
			return err
		}
		if len(turn.Calls) == 0 {
			break
		}
		if err := approve(ctx, out, h, turn); err != nil {
			return err
		}
		for _, c := range turn.Calls {
			printResult(out, c)
		}
		params.Messages = append(params.Messages, turn.Message())
	}

	// The model saw each tool's result, never a credential.
	for i, body := range model.sent() {
		if h.sawToken(body) {
			return fmt.Errorf("request %d to the model holds a credential", i)
		}
	}
	fmt.Fprintf(out, "\nthe model was sent %d requests; none holds a credential the tools used\n", len(model.sent()))
	return nil
}

// approve shows each call of the turn that waits for approval to a
// supervisor (scripted here: alice grants it), records the decision and
// resumes the turn, so that the model gets the refund's result.
func approve(ctx context.Context, out io.Writer, h *helpdesk, turn *anthropicguard.Turn) error {
	pending := turn.Pending()
	if len(pending) == 0 {
		return nil
	}
	for _, c := range turn.Calls {
		if _, ok := c.Pending(); ok {
			fmt.Fprintf(out, "  waiting (not sent to the model): %s\n", c.Text())
		}
	}
	for _, req := range pending {
		fmt.Fprintf(out, "  supervisor asked: %s %s, kind %s: %q\n", req.Tool, req.Args, req.Kind, req.Reason)
		// The approver's name comes from who signed in, never the model.
		if err := h.deferred.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"alice@example.com"}, Reason: "photos of the damage checked"}); err != nil {
			return err
		}
		fmt.Fprintln(out, "  alice@example.com grants it; the turn resumes")
	}
	turn.Resume(ctx)
	return nil
}

func printResult(out io.Writer, c *anthropicguard.Call) {
	if c.Err != nil {
		fmt.Fprintf(out, "  tool_result %s is_error: %s\n", c.Block.ID, c.Text())
		return
	}
	fmt.Fprintf(out, "  tool_result %s: %s\n", c.Block.ID, c.Text())
}
