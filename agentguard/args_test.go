package agentguard_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/policy"
)

// TestCaseFoldedKeysRefused: policy checks context.args.host,
// and a handler decoding into a struct with encoding/json (case-insensitive,
// Unicode simple folding: "ſ" == "s") would take the value of "hoſt", so
// arguments with such keys are refused.
func TestCaseFoldedKeysRefused(t *testing.T) {
	eng, err := policy.NewCedarEngine(policy.MustParseSet("p.cedar", `
@id("fetch-internal-only")
permit(principal, action == Action::"fetch", resource)
when { context.args.host == "api.internal" };
`))
	if err != nil {
		t.Fatal(err)
	}
	env := agentguardtest.New(t, eng, "tok")
	var got string
	tool := &agentguard.Tool{Name: "fetch", Handler: func(_ context.Context, args json.RawMessage) (*agentguard.Result, error) {
		var in struct {
			Host string `json:"host"`
		}
		if err := json.Unmarshal(args, &in); err != nil {
			return nil, err
		}
		got = in.Host
		return &agentguard.Result{}, nil
	}}
	// Sanity: a plain disallowed host is denied.
	if _, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{Args: json.RawMessage(`{"host":"evil.example"}`)}); err == nil {
		t.Fatal("plain evil host allowed: policy not in force")
	}
	_, err = env.Guard.Invoke(context.Background(), tool, agentguard.Call{
		Args: json.RawMessage(`{"host":"api.internal","ho\u017ft":"evil.example"}`)})
	if err == nil && got != "api.internal" {
		t.Fatalf("policy allowed host=api.internal but the tool acted on host=%q", got)
	}
}
