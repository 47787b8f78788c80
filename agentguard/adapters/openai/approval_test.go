package openaiguard_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/agentguard/go-sdk/agentguard"
	openaiguard "github.com/agentguard/go-sdk/agentguard/adapters/openai"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/audit"
)

const refund = `{"order":"O-1","amount":250}`

// TestApprovalDeferredResume: the call waits for a supervisor; the
// application has a human decide, resumes the turn in the same task, and
// the model gets the tool's result.
func TestApprovalDeferredResume(t *testing.T) {
	f := newFixture(t)
	model, client := newScriptedModel(t, "/chat/completions",
		completionJSON("tool_calls", "", functionCall("call_r1", "issue_refund", refund)),
		completionJSON("stop", "Refunded."),
	)
	defs, err := openaiguard.Tools(f.ctx, f.reg)
	if err != nil {
		t.Fatal(err)
	}
	params := openai.ChatCompletionNewParams{Model: "gpt-test", Tools: defs,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Refund order O-1.")}}
	completion, err := client.Chat.Completions.New(f.ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	msg := completion.Choices[0].Message
	params.Messages = append(params.Messages, msg.ToParam())
	turn, err := openaiguard.Run(f.ctx, f.reg, &msg)
	if err != nil {
		t.Fatal(err)
	}
	pending := turn.Pending()
	if len(pending) != 1 || pending[0].Tool != "issue_refund" || pending[0].Kind != "supervisor" || pending[0].CallID != "call_r1" {
		t.Fatalf("pending %d requests", len(pending))
	}
	if f.runs("issue_refund") != 0 {
		t.Fatal("the refund ran before it was approved")
	}
	if c := turn.Calls[0]; !c.Failed() || !strings.Contains(c.Text(), pending[0].ID) {
		t.Errorf("pending call: failed %v, text %q", c.Failed(), c.Text())
	}

	// The human decides; the application names them, not the model.
	if err := f.deferred.Decide(pending[0].ID, approval.Decision{Granted: true, Approvers: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	turn.Resume(f.ctx)
	turn.Resume(f.ctx) // nothing pending any more: nothing runs again
	if f.runs("issue_refund") != 1 || turn.Calls[0].Err != nil || len(turn.Pending()) != 0 {
		t.Fatalf("after resume: ran %d, err %v", f.runs("issue_refund"), turn.Calls[0].Err)
	}
	params.Messages = append(params.Messages, turn.Messages()...)
	if _, err := client.Chat.Completions.New(f.ctx, params); err != nil {
		t.Fatal(err)
	}
	msgs := toolMessages(t, model.requests()[1])
	if len(msgs) != 1 || msgs[0].ID != "call_r1" || !strings.Contains(msgs[0].Content, `"order":"O-1"`) {
		t.Fatalf("tool messages %+v", msgs)
	}
	records := f.toolCalls(t)["call_r1"]
	if len(records) != 2 || records[0].Decision != audit.Deny || records[1].Decision != audit.Allow {
		t.Fatalf("records %+v", records)
	}
	if a := records[1].Approval; a == nil || a.Status != agentguard.ApprovalGranted || len(a.Approvers) != 1 || a.Approvers[0] != "alice" {
		t.Errorf("approval recorded %+v", records[1].Approval)
	}
	if n := f.toolSpans()["execute_tool issue_refund"]; n != 2 {
		t.Errorf("%d spans, want 2 (one per guarded call)", n)
	}
	expectNoCanaryIn(t, model.requests())
	f.expectNoCanary(t)
}

// TestApprovalDeferredRetry, over the Responses API: the waiting call goes
// back to the model naming the request; the human refuses; the model
// calls again and is refused.
func TestApprovalDeferredRetry(t *testing.T) {
	f := newFixture(t)
	model, client := newScriptedModel(t, "/responses",
		responseJSON("resp_1", functionCallItem("call_r1", "issue_refund", refund)),
		responseJSON("resp_2", functionCallItem("call_r2", "issue_refund", refund)),
		responseJSON("resp_3", textItem("The refund was refused.")),
	)
	var requests []string
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	// The human: decides each request once it is pending, after the model
	// has been told.
	decide := func() {
		for _, req := range f.deferred.Pending() {
			requests = append(requests, req.ID)
			if err := f.deferred.Decide(req.ID, approval.Decision{Granted: false, Approvers: []string{"bob"}, Reason: "too much"}); err != nil {
				t.Error(err)
			}
		}
	}
	defs, err := openaiguard.ResponseTools(ctx, f.reg)
	if err != nil {
		t.Fatal(err)
	}
	params := responses.ResponseNewParams{Model: "gpt-test", Tools: defs,
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Refund order O-1.")}}
	for range 3 {
		resp, err := client.Responses.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		turn, err := openaiguard.RunResponse(ctx, f.reg, resp)
		if err != nil {
			t.Fatal(err)
		}
		if len(turn.Calls) == 0 {
			break
		}
		params.PreviousResponseID = openai.String(resp.ID)
		params.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: turn.InputItems()}
		decide()
	}
	bodies := model.requests()
	if len(bodies) != 3 || len(requests) != 1 {
		t.Fatalf("%d requests to the model, %d to the human", len(bodies), len(requests))
	}
	if !strings.Contains(string(bodies[1]), requests[0]) || !strings.Contains(string(bodies[1]), "needs a human") {
		t.Errorf("the waiting call's output does not name request %s: %s", requests[0], bodies[1])
	}
	if !strings.Contains(string(bodies[2]), "approval refused by bob: too much") {
		t.Errorf("the refused call's output: %s", bodies[2])
	}
	if f.runs("issue_refund") != 0 {
		t.Errorf("refund ran %d times, want 0", f.runs("issue_refund"))
	}
	if r := f.toolCalls(t)["call_r2"]; len(r) != 1 || r[0].Approval == nil || r[0].Approval.Status != agentguard.ApprovalRefused {
		t.Errorf("records %+v", r)
	}
}

// TestApprovalQueue: with an approver that waits for a human, Run blocks
// until the human decides, and the model gets the result at once.
func TestApprovalQueue(t *testing.T) {
	q := approval.NewQueue()
	defer q.Close()
	f := newFixture(t, agentguard.WithApprover(q))
	model, client := newScriptedModel(t, "/chat/completions",
		completionJSON("tool_calls", "", functionCall("call_q", "issue_refund", refund)),
		completionJSON("stop", "Refunded."),
	)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	var wg sync.WaitGroup
	var seen *agentguard.ApprovalRequest
	wg.Go(func() {
		req, err := q.Next(ctx)
		if err != nil {
			return
		}
		seen = req
		_ = q.Grant(req.ID, "carol", "fine")
	})
	if _, err := chatLoop(f.ctx, client, f.reg); err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()
	if seen == nil || seen.CallID != "call_q" || seen.Kind != "supervisor" {
		t.Fatalf("approver saw %+v", seen)
	}
	msgs := toolMessages(t, model.requests()[1])
	if f.runs("issue_refund") != 1 || len(msgs) != 1 || !strings.Contains(msgs[0].Content, `"amount":250`) {
		t.Errorf("ran %d, tool messages %+v", f.runs("issue_refund"), msgs)
	}
	expectNoCanaryIn(t, model.requests())
}
