package main

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/tmc/langchaingo/llms"
)

// scriptedModel stands in for an LLM: it answers each request with the next
// line of its script, in the text format langchaingo's one-shot agent
// parses, and prints what it reads and what it asks for.
type scriptedModel struct {
	w      *lockedWriter
	script []string
	turn   int
}

var actionLine = regexp.MustCompile(`Action: (.+)\nAction Input: (.+)`)

func (m *scriptedModel) GenerateContent(_ context.Context, msgs []llms.MessageContent, _ ...llms.CallOption) (*llms.ContentResponse, error) {
	var prompt strings.Builder
	for _, msg := range msgs {
		for _, p := range msg.Parts {
			if t, ok := p.(llms.TextContent); ok {
				prompt.WriteString(t.Text)
			}
		}
	}
	// The observation of the last action ends the prompt.
	if _, scratchpad, ok := strings.Cut(prompt.String(), "Begin!"); ok {
		if i := strings.LastIndex(scratchpad, "\nObservation: "); i >= 0 {
			m.w.printf("   observation: %s\n", strings.TrimSpace(scratchpad[i+len("\nObservation: "):]))
		}
	}
	if m.turn == len(m.script) {
		return nil, errors.New("scripted model: script exhausted")
	}
	reply := m.script[m.turn]
	m.turn++
	if a := actionLine.FindStringSubmatch(reply); a != nil {
		m.w.printf("%d. model calls %s(%q)\n", m.turn, a[1], a[2])
	}
	return &llms.ContentResponse{Choices: []*llms.ContentChoice{{Content: reply}}}, nil
}

func (m *scriptedModel) Call(ctx context.Context, prompt string, opts ...llms.CallOption) (string, error) {
	return llms.GenerateFromSinglePrompt(ctx, m, prompt, opts...)
}
