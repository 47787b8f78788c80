package anthropicguard_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/agentguard/go-sdk/agentguard"
	anthropicguard "github.com/agentguard/go-sdk/agentguard/adapters/anthropic"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/audit"
)

const refund = `{"order":"O-1","amount":250}`

// conversation runs the first request of a conversation with the tools
// the guard lists.
func conversation(t *testing.T, f *fixture, client anthropic.Client) (anthropic.MessageNewParams, *anthropic.Message) {
	t.Helper()
	defs, err := anthropicguard.Tools(f.ctx, f.reg)
	if err != nil {
		t.Fatal(err)
	}
	params := anthropic.MessageNewParams{
		Model: "claude-test", MaxTokens: 1024, Tools: defs,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Refund order O-1."))},
	}
	msg, err := client.Messages.New(f.ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	params.Messages = append(params.Messages, msg.ToParam())
	return params, msg
}

// TestApprovalDeferredResume: the call waits for a supervisor; the
// application has a human decide, resumes the turn in the same task, and
// the model gets the tool's result.
func TestApprovalDeferredResume(t *testing.T) {
	f := newFixture(t)
	model, client := newScriptedModel(t,
		messageJSON("tool_use", toolUse("toolu_r1", "issue_refund", refund)),
		messageJSON("end_turn", `{"type":"text","text":"Refunded."}`),
	)
	params, msg := conversation(t, f, client)
	turn, err := anthropicguard.Run(f.ctx, f.reg, msg)
	if err != nil {
		t.Fatal(err)
	}
	pending := turn.Pending()
	if len(pending) != 1 || pending[0].Tool != "issue_refund" || pending[0].Kind != "supervisor" || string(pending[0].Args) != `{"amount":250,"order":"O-1"}` { // canonical
		for _, p := range pending {
			t.Logf("pending %+v", *p)
		}
		t.Fatal("want one pending refund for a supervisor")
	}
	if f.runs("issue_refund") != 0 {
		t.Fatal("the refund ran before it was approved")
	}
	if text := turn.Calls[0].Text(); !strings.Contains(text, pending[0].ID) || !strings.Contains(text, "approval") {
		t.Errorf("pending call's text %q names no request", text)
	}

	// The human decides; the application names them, not the model.
	if err := f.deferred.Decide(pending[0].ID, approval.Decision{Granted: true, Approvers: []string{"alice"}, Reason: "checked"}); err != nil {
		t.Fatal(err)
	}
	turn.Resume(f.ctx)
	if f.runs("issue_refund") != 1 || turn.Calls[0].Err != nil {
		t.Fatalf("after resume: ran %d, err %v", f.runs("issue_refund"), turn.Calls[0].Err)
	}
	if len(turn.Pending()) != 0 {
		t.Error("still pending after resume")
	}
	turn.Resume(f.ctx) // nothing pending: nothing runs again
	if f.runs("issue_refund") != 1 {
		t.Errorf("refund ran %d times, want 1", f.runs("issue_refund"))
	}

	params.Messages = append(params.Messages, turn.Message())
	if _, err := client.Messages.New(f.ctx, params); err != nil {
		t.Fatal(err)
	}
	results := lastResults(t, model.requests()[1])
	if len(results) != 1 || results[0].IsError || !strings.Contains(results[0].text(), `"order":"O-1"`) {
		t.Fatalf("results %+v", results)
	}

	// Two guarded calls: the one that waited, the one that ran.
	records := f.toolCalls(t)["toolu_r1"]
	if len(records) != 2 || records[0].Decision != audit.Deny || records[1].Decision != audit.Allow {
		t.Fatalf("records %+v", records)
	}
	if a := records[1].Approval; a == nil || a.Status != agentguard.ApprovalGranted || len(a.Approvers) != 1 || a.Approvers[0] != "alice" {
		t.Errorf("approval recorded %+v", records[1].Approval)
	}
	if n := f.toolSpans()["execute_tool issue_refund"]; n != 2 {
		t.Errorf("%d spans, want 2 (one per guarded call)", n)
	}
	f.expectNoCanary(t)
}

// TestApprovalDeferredRetry: the waiting call goes back to the model as
// an is_error result naming the request; the human refuses; the model
// calls again and is refused.
func TestApprovalDeferredRetry(t *testing.T) {
	f := newFixture(t)
	model, client := newScriptedModel(t,
		messageJSON("tool_use", toolUse("toolu_r1", "issue_refund", refund)),
		messageJSON("tool_use", toolUse("toolu_r2", "issue_refund", refund)),
		messageJSON("end_turn", `{"type":"text","text":"The refund was refused."}`),
	)
	params, msg := conversation(t, f, client)
	turn, err := anthropicguard.Run(f.ctx, f.reg, msg)
	if err != nil {
		t.Fatal(err)
	}
	pending := turn.Pending()
	if len(pending) != 1 {
		t.Fatalf("pending %+v", pending)
	}
	params.Messages = append(params.Messages, turn.Message())
	msg, err = client.Messages.New(f.ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	results := lastResults(t, model.requests()[1])
	if len(results) != 1 || !results[0].IsError || !strings.Contains(results[0].text(), pending[0].ID) {
		t.Fatalf("waiting call sent as %+v, want is_error naming %s", results, pending[0].ID)
	}

	if err := f.deferred.Decide(pending[0].ID, approval.Decision{Granted: false, Approvers: []string{"bob"}, Reason: "too much"}); err != nil {
		t.Fatal(err)
	}
	params.Messages = append(params.Messages, msg.ToParam())
	turn, err = anthropicguard.Run(f.ctx, f.reg, msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := turn.Calls[0].Pending(); ok || turn.Calls[0].Err == nil {
		t.Fatalf("second call: err %v", turn.Calls[0].Err)
	}
	params.Messages = append(params.Messages, turn.Message())
	if _, err := client.Messages.New(f.ctx, params); err != nil {
		t.Fatal(err)
	}
	results = lastResults(t, model.requests()[2])
	if len(results) != 1 || !results[0].IsError || !strings.Contains(results[0].text(), "approval refused by bob: too much") {
		t.Fatalf("refused call sent as %+v", results)
	}
	if f.runs("issue_refund") != 0 {
		t.Errorf("refund ran %d times, want 0", f.runs("issue_refund"))
	}
	if r := f.toolCalls(t)["toolu_r2"]; len(r) != 1 || r[0].Approval == nil || r[0].Approval.Status != agentguard.ApprovalRefused {
		t.Errorf("records %+v", r)
	}
}

// TestApprovalQueue: with an approver that waits for a human, Run blocks
// until the human decides, and the model gets the result at once.
func TestApprovalQueue(t *testing.T) {
	q := approval.NewQueue()
	defer q.Close()
	f := newFixture(t, agentguard.WithApprover(q))
	model, client := newScriptedModel(t,
		messageJSON("tool_use", toolUse("toolu_q", "issue_refund", refund)),
		messageJSON("end_turn", `{"type":"text","text":"Refunded."}`),
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
	if _, err := loop(f.ctx, client, f.reg); err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()
	if seen == nil || seen.CallID != "toolu_q" || seen.Kind != "supervisor" {
		t.Fatalf("approver saw %+v", seen)
	}
	if f.runs("issue_refund") != 1 {
		t.Errorf("refund ran %d times, want 1", f.runs("issue_refund"))
	}
	results := lastResults(t, model.requests()[1])
	if len(results) != 1 || results[0].IsError {
		t.Fatalf("results %+v", results)
	}
	for _, b := range model.requests() {
		if bytes.Contains(b, []byte(canary)) {
			t.Error("a request to the model holds the credential value")
		}
	}
}
