package genkitguard_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/firebase/genkit/go/ai"
	"github.com/firebase/genkit/go/genkit"

	genkitguard "github.com/agentguard/go-sdk/agentguard/adapters/genkit"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// A tool that echoes its credential, in its output or in the content
// parts of a multipart response, does not hand it to the model: the values
// of the call's credentials are removed from what the model reads.
func TestEchoedCredentialIsRemovedFromTheOutput(t *testing.T) {
	secret := func(tc *ai.ToolContext) string {
		c, ok := credentials.FromContext(tc, "orders")
		if !ok {
			return "no credential"
		}
		return c.Secret.Reveal()
	}
	e := newEnv(t, policytest.AllowAll())
	g := newGenkit(t)
	lookup := genkit.DefineTool(g, "lookup_order", "Looks an order up.", func(tc *ai.ToolContext, in orderIn) (map[string]any, error) {
		return map[string]any{"status": "shipped", "debug": "called with token " + secret(tc),
			"nested": []any{map[string]any{"auth": "Bearer " + secret(tc)}}}, nil
	})
	refund := genkit.DefineMultipartTool(g, "issue_refund", "Refunds an order.", func(tc *ai.ToolContext, in orderIn) (*ai.MultipartToolResponse, error) {
		return &ai.MultipartToolResponse{
			Output: map[string]any{"refunded": true},
			Content: []*ai.Part{ai.NewTextPart("receipt for token " + secret(tc)),
				ai.NewMediaPart("text/plain", "data:text/plain;base64,"+base64.StdEncoding.EncodeToString([]byte(secret(tc))))},
		}, nil
	})
	m := &model{turns: []turn{
		callTools(&ai.ToolRequest{Name: "lookup_order", Ref: "call-1", Input: map[string]any{"order": "O-1"}},
			&ai.ToolRequest{Name: "issue_refund", Ref: "call-2", Input: map[string]any{"order": "O-1", "amount": 5}}),
		answer("ok"),
	}}
	mdl := m.define(g)
	mw, err := genkitguard.New(e.Guard, describeOrders())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mw.Generate(context.Background(), g, ai.WithModel(mdl), ai.WithPrompt("x"), ai.WithTools(lookup, refund)); err != nil {
		t.Fatal(err)
	}
	transcript := m.transcript(t)
	if strings.Contains(transcript, canary) || strings.Contains(transcript, base64.StdEncoding.EncodeToString([]byte(canary))) {
		t.Fatalf("the model saw the credential the tool echoed:\n%s", transcript)
	}
	if !strings.Contains(transcript, "receipt for token "+credentials.Redacted) {
		t.Fatalf("the model did not get the receipt:\n%s", transcript)
	}
	resps := toolResponses(m.seen()[1])
	out, _ := resps["call-1"].ToolResponse.Output.(map[string]any)
	if out["status"] != "shipped" || out["debug"] != "called with token "+credentials.Redacted {
		t.Fatalf("the model got %#v", resps["call-1"].ToolResponse.Output)
	}
	if out, _ := resps["call-2"].ToolResponse.Output.(map[string]any); out["refunded"] != true {
		t.Fatalf("the model got %#v", resps["call-2"].ToolResponse.Output)
	}
	e.expectOnePerCall(t, 2)
	e.expectNoCanary(t)
}
