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

// TestRefusalCommentScrubbed: an approver's comment that quotes the
// call's credential reaches neither the denial's error, its record nor
// the model's text.
func TestRefusalCommentScrubbed(t *testing.T) {
	approver := agentguard.ApproverFunc(func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		return req.Refuse("token "+execCanary+" looks stolen", "alice"), nil
	})
	env := agentguardtest.New(t, policytest.NewRules(policytest.Rule{ID: "r", Tool: "search", Approval: "manager"},
		policytest.Rule{ID: "l", Tool: "lookup"}), execCanary, agentguard.WithApprover(approver))
	ok := func(context.Context, json.RawMessage) (*agentguard.Result, error) { return &agentguard.Result{}, nil }
	tool := searchTool()
	tool.Handler = ok
	lookup := searchTool()
	lookup.Name, lookup.Handler = "lookup", ok
	ctx, task, _ := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	defer task.End(ctx)
	// A first call leases the credential to the task, so that its value
	// is known when the approver of the second quotes it.
	if _, err := env.Guard.Invoke(ctx, lookup, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	_, err := env.Guard.Invoke(ctx, tool, agentguard.Call{})
	if !errors.Is(err, agentguard.ErrApprovalRequired) {
		t.Fatalf("Invoke = %v, want a refusal", err)
	}
	ev, _ := env.Audit.Last()
	for where, s := range map[string]string{"error": err.Error(), "explain": agentguard.Explain(err), "record": ev.Reason + ev.Approval.Reason} {
		if strings.Contains(s, execCanary) {
			t.Errorf("the credential reached the %s: %q", where, s)
		}
	}
	if !strings.Contains(agentguard.Explain(err), "looks stolen") {
		t.Errorf("Explain lost the comment: %q", agentguard.Explain(err))
	}
}
