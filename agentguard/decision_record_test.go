package agentguard_test

import (
	"context"
	"slices"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/policy"
)

// decisionPolicies decide every kind of decision the guard records.
const decisionPolicies = `
@id("calls") permit(principal, action in Action::"call_tool", resource);
@id("no-wire") forbid(principal, action == Action::"wire", resource);
@id("review-weather") permit(principal, action == Action::"change_toolset", resource)
when { context.args.toolset == "weather" && resource.toolset == "weather" };
@id("review-prompts") permit(principal, action == Action::"change_prompt", resource)
when { resource == principal && context.args.name == "system" };
@id("planner-delegates") permit(principal == Agent::"spiffe://example.org/agent/planner", action == Action::"delegate",
  resource == Agent::"spiffe://example.org/agent/researcher");
`

// TestDecisionRecordsComplete: every record of a decision names the
// policy set that decided (its digest) and the deciding policies when
// policy decided, and the span of the decision (trace and span IDs), so
// that each execution links to its decision; a refusal made before any
// span of the guard's own links to the caller's span.
func TestDecisionRecordsComplete(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	iss := newIssuer(t, "example.org")
	approver := agentguard.ApproverFunc(func(_ context.Context, r *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		return r.Grant("alice"), nil
	})
	planner := devAgent(t, iss, "/agent/planner", decisionPolicies, agentguard.WithTracerProvider(tp), agentguard.WithApprover(approver))
	researcher := devAgent(t, iss, "/agent/researcher", decisionPolicies, agentguard.WithTracerProvider(tp))
	set, err := policy.ParseSet("test.cedar", decisionPolicies)
	if err != nil {
		t.Fatal(err)
	}
	revision := set.Digest()
	archivist, _ := iss.ID("/agent/archivist")
	bg := context.Background()
	// caller is a span of the application, around calls that have none of
	// their own.
	caller, callerSpan := tp.Tracer("test").Start(bg, "caller")

	var handoff []byte
	tests := []struct {
		name string
		do   func(t *testing.T) // the action, its outcome not checked
		rec  *audittest.Recorder
		want audittest.Want
		// span is the name of the span the record must link to;
		// policies the deciding policies (nil when policy did not decide).
		span     string
		policies []string
	}{
		{
			name: "call allowed",
			do: func(*testing.T) {
				_, _ = planner.guard.Invoke(bg, echoTool("search"), agentguard.Call{ID: "allowed"})
			},
			rec: planner.audit, want: audittest.Want{Kind: audit.KindToolCall, CallID: "allowed", Decision: audit.Allow, Outcome: audit.OutcomeOK},
			span: "execute_tool search", policies: []string{"calls"},
		},
		{
			name: "call denied",
			do: func(*testing.T) {
				_, _ = planner.guard.Invoke(bg, echoTool("wire"), agentguard.Call{ID: "denied"})
			},
			rec: planner.audit, want: audittest.Want{Kind: audit.KindToolCall, CallID: "denied", Decision: audit.Deny, Step: agentguard.StepAuthorize},
			span: "execute_tool wire", policies: []string{"no-wire"},
		},
		{
			name: "toolset change",
			do: func(*testing.T) {
				tool := echoTool("forecast")
				tool.Toolset = "weather"
				_ = planner.guard.ReviewTool(bg, tool)
			},
			rec: planner.audit, want: audittest.Want{Kind: audit.KindToolsetChange, Tool: "forecast", Decision: audit.Allow, Approval: agentguard.ApprovalGranted},
			span: "change_toolset forecast", policies: []string{"review-weather"},
		},
		{
			name: "prompt change",
			do: func(t *testing.T) {
				p, err := planner.guard.Prompt(bg, "system", "You help.")
				if err != nil {
					t.Fatal(err)
				}
				_ = p.Change(bg, "You help, briefly.")
			},
			rec: planner.audit, want: audittest.Want{Kind: audit.KindPromptChange, Decision: audit.Allow, Approval: agentguard.ApprovalGranted},
			span: "change_prompt system", policies: []string{"review-prompts"},
		},
		{
			name: "handoff",
			do: func(t *testing.T) {
				h, err := planner.guard.Handoff(bg, researcher.agent.ID())
				if err != nil {
					t.Fatal(err)
				}
				handoff = []byte(h.Marshal())
				if _, err := researcher.guard.AcceptHandoff(bg, h); err != nil {
					t.Fatal(err)
				}
			},
			rec: planner.audit, want: audittest.Want{Kind: audit.KindDelegate, Decision: audit.Allow},
			span: "delegate", policies: []string{"planner-delegates"},
		},
		{
			name: "handoff accepted",
			do:   func(*testing.T) {}, // by the handoff above
			rec:  researcher.audit, want: audittest.Want{Kind: audit.KindHandoffAccept, Decision: audit.Allow},
			span: "accept_handoff", policies: []string{"planner-delegates"},
		},
		{
			name: "delegation denied",
			do: func(*testing.T) {
				_, _ = planner.guard.Delegate(bg, archivist)
			},
			rec: planner.audit, want: audittest.Want{Kind: audit.KindDelegate, Decision: audit.Deny, Step: agentguard.StepAuthorize},
			span: "delegate", policies: []string{}, // no policy permits it
		},
		{
			name: "task refused",
			do: func(*testing.T) {
				_, _, _ = planner.guard.StartTask(caller, agentguard.TaskSpec{ID: "bad", Budget: &agentguard.Budget{Calls: -1}})
			},
			rec: planner.audit, want: audittest.Want{Kind: audit.KindTaskStart, Task: "bad", Decision: audit.Deny, Step: agentguard.StepBudget},
			span: "caller",
		},
		{
			name: "listing refused",
			do: func(t *testing.T) {
				if err := planner.guard.Suspend(bg, planner.agent.ID(), "test"); err != nil {
					t.Fatal(err)
				}
				defer func() { _ = planner.guard.Resume(bg, planner.agent.ID()) }()
				_, _ = planner.guard.NewRegistry("x").List(caller)
			},
			rec: planner.audit, want: audittest.Want{Kind: audit.KindToolList, Decision: audit.Deny, Step: agentguard.StepSuspend},
			span: "caller",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.do(t)
			e := audittest.Expect(t, tc.rec.Events(), tc.want)
			if tc.policies != nil {
				if e.Revision != revision {
					t.Errorf("revision = %q, want the set's %q", e.Revision, revision)
				}
				if !slices.Equal(e.Policies, tc.policies) && (len(e.Policies) > 0 || len(tc.policies) > 0) {
					t.Errorf("policies = %q, want %q", e.Policies, tc.policies)
				}
			} else if e.Revision != "" || len(e.Policies) > 0 {
				t.Errorf("policy did not decide, yet the record names revision %q, policies %q", e.Revision, e.Policies)
			}
			if e.TraceID == "" || e.SpanID == "" {
				t.Fatalf("record has no trace or span ID: %+v", e)
			}
			var span trace.SpanContext
			name := ""
			if tc.span == "caller" {
				span, name = callerSpan.SpanContext(), "caller"
			} else {
				for _, s := range sr.Ended() {
					if s.SpanContext().SpanID().String() == e.SpanID {
						span, name = s.SpanContext(), s.Name()
					}
				}
			}
			if name != tc.span || span.TraceID().String() != e.TraceID || span.SpanID().String() != e.SpanID {
				t.Errorf("record links to span %q (%s/%s), want %q", name, e.TraceID, e.SpanID, tc.span)
			}
		})
	}
	callerSpan.End()
	audittest.ExpectNoSecret(t, append(planner.audit.Events(), researcher.audit.Events()...), string(handoff))
}
