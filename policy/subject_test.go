package policy_test

import (
	"testing"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// TestChangePromptSubject: the resource of Action::"change_prompt" is the
// agent whose prompt changes: the acting agent by default, or the request's
// Subject when a delegating agent is asked about its sub-agent's prompt.
func TestChangePromptSubject(t *testing.T) {
	e := newEngine(t, `
@id("own") permit(principal, action == Action::"change_prompt", resource) when { resource == principal };
@id("sub") permit(principal, action == Action::"change_prompt", resource) when { resource.name == "support" };
`)
	for _, tc := range []struct {
		name    string
		agent   identity.Identity
		subject identity.Identity
		want    []string
	}{
		{name: "own prompt", agent: billing, want: []string{"own"}},
		{name: "own prompt named as subject", agent: billing, subject: billing, want: []string{"own"}},
		{name: "a sub-agent's prompt", agent: billing, subject: support, want: []string{"sub"}},
		{name: "another agent's prompt", agent: support, subject: billing, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest()
			req.Agent = tc.agent
			req.Action = policy.ActionChangePrompt
			req.Tool = policy.Tool{}
			req.Subject = tc.subject.ID
			d := decide(t, e, req)
			if d.Allowed != (tc.want != nil) || !equalStrings(d.Policies, tc.want) {
				t.Errorf("decision %+v, want policies %q", d, tc.want)
			}
		})
	}
}
