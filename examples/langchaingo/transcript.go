package main

import (
	"context"
	"strings"

	"github.com/agentguard/go-sdk/audit"
)

// transcript is an audit sink that prints the records of tool calls and
// credentials as one readable line each.
type transcript struct{ w *lockedWriter }

func (t transcript) Write(_ context.Context, e audit.Event) error {
	var line []string
	add := func(k, v string) {
		if v != "" {
			line = append(line, k+"="+v)
		}
	}
	switch e.Kind {
	case audit.KindToolCall:
		add("tool", e.Tool)
		add("agent", e.Agent)
		add("decision", e.Decision)
		add("policies", strings.Join(e.Policies, ","))
		if a := e.Approval; a != nil {
			add("approval", a.Status+"("+strings.Join(a.Approvers, ",")+")")
		}
		add("outcome", e.Outcome)
	case audit.KindCredentialIssue, audit.KindCredentialRevoke:
		if c := e.Credential; c != nil {
			add("audience", c.Audience)
			add("scopes", strings.Join(c.Scopes, ","))
		}
		add("outcome", e.Outcome)
	default:
		return nil
	}
	t.w.printf("   audit %s %s\n", e.Kind, strings.Join(line, " "))
	return nil
}
