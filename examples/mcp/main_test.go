package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestTranscript runs the example and checks, in order, each behaviour it
// promises, and that no secret reaches the transcript.
func TestTranscript(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	want := []string{
		"pinned the definitions of 4 tools",
		// Listing: delete_file is hidden by the assistant's policy.
		"the model is given the tools: read_file, share_file, forecast\n",
		// Allowed: the server's guard decides for the JWT-SVID's SPIFFE
		// ID, and the tool gets a task credential.
		"server: read_file runs with the task's storage credential",
		"audit[server] read_file by spiffe://example.org/agent/assistant: allow, ok",
		"audit[agent] read_file by spiffe://example.org/agent/assistant: allow, ok",
		"the model reads (result): Buy milk. Call Bob.",
		// Denied before the server: the model reads why.
		"audit[agent] delete_file by spiffe://example.org/agent/assistant: deny at authorize, denied",
		`the model reads (error): The call to tool "delete_file" was denied (authorize): the assistant never deletes files.`,
		// Approval through MCP elicitation.
		"audit[server] share_file by spiffe://example.org/agent/assistant: deny at approve, approval pending, denied",
		`the user is asked: Approve the call of tool "share_file"`,
		// The consent is recorded as the calling client's, as the server
		// knows it: not as an operator's approval.
		"audit[server] share_file by spiffe://example.org/agent/assistant: allow, approval granted by mcp-client:spiffe://example.org/agent/assistant, ok",
		"the model reads (result): shared notes.txt with bob@example.com",
		"the model reads (result): Sunny, 21°C.",
		// The rug pull is caught.
		"the session re-listed the tools: forecast changed, held for review",
		"the model is given the tools: read_file, share_file\n",
		"audit[agent] forecast by spiffe://example.org/agent/assistant: deny at integrity, denied",
		"waiting for an operator's review: forecast (changed)",
	}
	rest := got
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("transcript lacks (after the lines before it) %q:\n%s", w, got)
		}
		rest = rest[i+len(w):]
	}
	if n := strings.Count(got, "server: delete_file runs"); n != 0 {
		t.Error("delete_file reached the server")
	}
	for _, secret := range []string{storageSecret, "Bearer", "eyJ"} {
		if strings.Contains(got, secret) {
			t.Errorf("the transcript holds %q", secret)
		}
	}
}
