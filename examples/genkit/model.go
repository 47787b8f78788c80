package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/firebase/genkit/go/ai"
	"github.com/firebase/genkit/go/genkit"
)

// defineModel defines the scripted model: no network, no API key. It
// plays one conversation: look the order up, close the account (a tool it
// was not offered, as a model misled by the ticket's text might), refund
// the order, then answer with what it read. It prints what it asks for
// and what it reads: all that a real model would see.
func defineModel(g *genkit.Genkit, w io.Writer) ai.Model {
	return genkit.DefineModelAction(g, "example/scripted-support",
		&ai.ModelOptions{Label: "scripted support model", Supports: &ai.ModelSupports{Multiturn: true, Tools: true, SystemRole: true}},
		func(_ context.Context, req *ai.ModelRequest, _ any, _ ai.ModelStreamCallback) (*ai.ModelResponse, error) {
			turn := 0
			var read []string
			for _, m := range req.Messages {
				if m.Role != ai.RoleTool {
					continue
				}
				turn++
				read = read[:0]
				for _, p := range m.Content {
					out, _ := json.Marshal(p.ToolResponse.Output)
					read = append(read, fmt.Sprintf("%s: %s", p.ToolResponse.Name, out))
				}
			}
			for _, r := range read {
				fmt.Fprintf(w, "  model  reads %s\n", r)
			}
			switch turn {
			case 0:
				var offered []string
				for _, d := range req.Tools {
					offered = append(offered, d.Name)
				}
				slices.Sort(offered)
				fmt.Fprintf(w, "  model  sees tools %s\n", strings.Join(offered, ", "))
				return call(req, w, "lookup_order", "call-1", map[string]any{"order": "O-1001"}), nil
			case 1:
				return call(req, w, "close_account", "call-2", map[string]any{"account": "C-7"}), nil
			case 2:
				return call(req, w, "issue_refund", "call-3", map[string]any{"order": "O-1001", "amount": 250}), nil
			}
			return &ai.ModelResponse{
				Request:      req,
				Message:      ai.NewModelTextMessage("I refunded 250 for order O-1001. I cannot close your account myself: a colleague will."),
				FinishReason: ai.FinishReasonStop,
			}, nil
		})
}

// call is a model turn that calls one tool. Like genkit's model plugins,
// it returns the request with the response, which makes the response's
// History the whole conversation (what resuming after an interrupt needs).
func call(req *ai.ModelRequest, w io.Writer, tool, ref string, input map[string]any) *ai.ModelResponse {
	in, _ := json.Marshal(input)
	fmt.Fprintf(w, "  model  calls %s %s\n", tool, in)
	return &ai.ModelResponse{
		Request:      req,
		Message:      &ai.Message{Role: ai.RoleModel, Content: []*ai.Part{ai.NewToolRequestPart(&ai.ToolRequest{Name: tool, Ref: ref, Input: input})}},
		FinishReason: ai.FinishReasonStop,
	}
}
