package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// TestExplain: what a model is told of each kind of failure names the
// tool and why, and never holds a credential value or a foreign error's
// text.
func TestExplain(t *testing.T) {
	env := agentguardtest.New(t, policytest.NewRules(policytest.Rule{ID: "search-ok", Tool: "search"}), execCanary)
	tool := searchTool()
	tool.Handler = func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
		return nil, errors.New("backend said no to " + execCanary)
	}
	drop := &agentguard.Tool{Name: "drop_table", Handler: tool.Handler}
	call := func(tl *agentguard.Tool, args string) error {
		_, err := env.Guard.Invoke(context.Background(), tl, agentguard.Call{Args: json.RawMessage(args)})
		return err
	}
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"policy", call(drop, `{}`), []string{`"drop_table" was denied (authorize)`, "Policy does not allow it"}},
		{"arguments", call(tool, `[1]`), []string{`"search" was denied (arguments)`, "Fix the arguments"}},
		{"tool failure", call(tool, `{}`), []string{`The tool "search" failed: backend said no to [REDACTED]`}},
		{"foreign", errors.New("dial tcp 10.0.0.1: " + execCanary), []string{"The call was not made: the tool could not be run."}},
		{"closed", agentguard.ErrClosed, []string{"guard is closed"}},
	} {
		msg := agentguard.Explain(tc.err)
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: Explain = %q, want it to say %q", tc.name, msg, w)
			}
		}
		if strings.Contains(msg, execCanary) || strings.Contains(msg, "10.0.0.1") {
			t.Errorf("%s: Explain leaks: %q", tc.name, msg)
		}
	}
	if agentguard.Explain(nil) != "" {
		t.Error("Explain(nil) is not empty")
	}
}

// TestExplainOnlyTheGuardsOwnError: a tool's error that wraps another
// guard's denial or pending approval (an agent used as a tool) is the
// tool's failure, explained from its scrubbed text, and pauses nothing.
func TestExplainOnlyTheGuardsOwnError(t *testing.T) {
	env := agentguardtest.New(t, nil, execCanary)
	inner := &agentguard.DenyError{Tool: "inner", Step: agentguard.StepApprove, Reason: "upstream rejected " + execCanary,
		Err: &agentguard.PendingError{Request: &agentguard.ApprovalRequest{ID: "approval-inner", Tool: "inner"}}}
	tool := searchTool()
	tool.Handler = func(context.Context, json.RawMessage) (*agentguard.Result, error) {
		return nil, fmt.Errorf("sub-agent: %w", inner)
	}
	_, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{})
	msg := agentguard.Explain(err)
	if !strings.HasPrefix(msg, `The tool "search" failed:`) || strings.Contains(msg, execCanary) {
		t.Fatalf("Explain = %q", msg)
	}
	if r, ok := agentguard.PendingApproval(err); ok {
		t.Fatalf("PendingApproval found %+v inside a tool's error", r)
	}
	long := errors.New(strings.Repeat("x", 10000))
	if got := agentguard.Explain(errors.Join(errors.New("outer"), &agentguard.DenyError{Tool: "t", Step: "authorize", Reason: "no"})); !strings.Contains(got, `"t" was denied`) {
		t.Fatalf("joined: %q", got)
	}
	tool.Handler = func(context.Context, json.RawMessage) (*agentguard.Result, error) { return nil, long }
	_, err = env.Guard.Invoke(context.Background(), tool, agentguard.Call{})
	if got := agentguard.Explain(err); len(got) > 2200 || !strings.HasSuffix(got, "[...]") {
		t.Fatalf("a long error is given whole: %d bytes", len(got))
	}
}
