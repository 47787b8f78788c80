package main

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strings"

	"google.golang.org/adk/model"
	"google.golang.org/genai"
)

// scriptedModel stands in for an LLM: it calls a tool for each request of
// the user it knows, and sums up the tool's result. It prints the tools it
// is offered.
type scriptedModel struct {
	w     io.Writer
	calls int
}

func (m *scriptedModel) Name() string { return "scripted" }

func (m *scriptedModel) GenerateContent(_ context.Context, req *model.LLMRequest, _ bool) iter.Seq2[*model.LLMResponse, error] {
	return func(yield func(*model.LLMResponse, error) bool) {
		last := req.Contents[len(req.Contents)-1]
		var resp *model.LLMResponse
		switch p := last.Parts[0]; {
		case p.FunctionResponse != nil:
			if e, ok := p.FunctionResponse.Response["error"]; ok {
				resp = answer(fmt.Sprintf("Sorry, I could not: %v", e))
			} else {
				resp = answer(fmt.Sprintf("Done: %v", p.FunctionResponse.Response))
			}
		case strings.Contains(p.Text, "Where is my order"):
			fmt.Fprintf(m.w, "  model is offered: %s\n", strings.Join(offered(req.Config), ", "))
			resp = m.call("lookup_order", map[string]any{"order": "A-1"})
		case strings.Contains(p.Text, "Refund 5000"):
			resp = m.call("refund", map[string]any{"order": "A-1", "amount": 5000})
		case strings.Contains(p.Text, "Refund 250"):
			resp = m.call("refund", map[string]any{"order": "A-1", "amount": 250})
		default:
			resp = answer("How can I help?")
		}
		yield(resp, nil)
	}
}

func (m *scriptedModel) call(name string, args map[string]any) *model.LLMResponse {
	m.calls++
	fc := &genai.FunctionCall{ID: fmt.Sprintf("call-%d", m.calls), Name: name, Args: args}
	return &model.LLMResponse{Content: &genai.Content{Role: genai.RoleModel, Parts: []*genai.Part{{FunctionCall: fc}}}}
}

func answer(text string) *model.LLMResponse {
	return &model.LLMResponse{Content: genai.NewContentFromText(text, genai.RoleModel)}
}
