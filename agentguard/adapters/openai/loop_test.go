package openaiguard_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
)

// TestChatLoop drives the SDK's real client against a scripted model on
// loopback: the model makes five parallel tool calls (allowed, denied by
// policy, hidden, unknown, custom), the guard answers each, and the next
// request carries the answers the guard made.
func TestChatLoop(t *testing.T) {
	f := newFixture(t)
	model, client := newScriptedModel(t, "/chat/completions",
		completionJSON("tool_calls", "Let me look.",
			functionCall("call_1", "read_ticket", `{"id":"T-1"}`),
			functionCall("call_2", "delete_account", `{"user":"admin"}`),
			functionCall("call_3", "export_data", `{}`),
			functionCall("call_4", "rm_rf", `{"path":"/"}`),
			`{"id":"call_5","type":"custom","custom":{"name":"read_ticket","input":"{\"id\":\"T-2\"}"}}`),
		completionJSON("stop", "Ticket T-1 is open."),
	)
	said, err := chatLoop(f.ctx, client, f.reg)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Let me look.", "Ticket T-1 is open."}; !slices.Equal(said, want) {
		t.Errorf("model said %q, want %q", said, want)
	}
	bodies := model.requests()
	if len(bodies) != 2 {
		t.Fatalf("%d requests, want 2", len(bodies))
	}

	// (c) The model was shown only the tools policy lets the agent call.
	var names []string
	for _, tool := range decodeChat(t, bodies[0]).Tools {
		names = append(names, tool.Function.Name)
		var schema map[string]any
		if err := json.Unmarshal(tool.Function.Parameters, &schema); tool.Type != "function" || err != nil || schema["type"] != "object" {
			t.Errorf("tool %s: type %s, parameters %s", tool.Function.Name, tool.Type, tool.Function.Parameters)
		}
	}
	if want := []string{"read_ticket", "issue_refund", "delete_account", "fail_tool"}; !slices.Equal(names, want) {
		t.Errorf("tools sent %q, want %q (export_data hidden)", names, want)
	}

	// Every tool call got its tool message, in the model's order.
	msgs := toolMessages(t, bodies[1])
	ids := []string{"call_1", "call_2", "call_3", "call_4", "call_5"}
	if len(msgs) != len(ids) {
		t.Fatalf("%d tool messages, want %d: %+v", len(msgs), len(ids), msgs)
	}
	for i, id := range ids {
		if msgs[i].ID != id {
			t.Errorf("tool message %d answers %s, want %s", i, msgs[i].ID, id)
		}
	}

	// (a) The allowed call ran once, with the task's credential, as the
	// agent, and its output went back to the model.
	if !strings.Contains(msgs[0].Content, `"status":"open"`) {
		t.Errorf("read_ticket answer %q", msgs[0].Content)
	}
	if n := f.runs("read_ticket"); n != 1 {
		t.Errorf("read_ticket ran %d times, want 1 (the custom call must not run it)", n)
	}
	if f.sawCredential.Load() != 1 {
		t.Error("read_ticket did not find the task's credential in its context")
	}
	var asked bool
	for _, req := range f.engine.Calls() {
		if req.Tool.Name == "read_ticket" {
			asked = true
			if req.Agent.ID.String() != agentguardtest.AgentID || req.CallID != "call_1" {
				t.Errorf("policy saw agent %s, call %s", req.Agent.ID, req.CallID)
			}
		}
	}
	if !asked {
		t.Error("policy was never asked about read_ticket")
	}

	// (b) The denied calls never reached a tool, and came back as tool
	// messages that say why.
	if f.runs("delete_account")+f.runs("export_data") != 0 {
		t.Error("a denied tool ran")
	}
	for i, want := range []string{
		`"delete_account" was denied (authorize): the admin account is never deleted by an agent`,
		`"export_data" was denied (authorize)`,
		`"rm_rf" was denied (lookup)`,
		`"custom/read_ticket" was denied (lookup)`,
	} {
		if m := msgs[i+1]; !strings.Contains(m.Content, want) {
			t.Errorf("answer to %s is %q, want it to hold %q", m.ID, m.Content, want)
		}
	}

	// (e) One span and one audit record per call, allowed and denied.
	records := f.toolCalls(t)
	for i, id := range ids {
		decision := audit.Deny
		if i == 0 {
			decision = audit.Allow
		}
		if len(records[id]) != 1 || records[id][0].Decision != decision {
			t.Errorf("call %s: records %+v, want one %s", id, records[id], decision)
			continue
		}
		// Calls of unknown tools are refused at lookup, before the agent
		// is identified.
		if e := records[id][0]; i < 3 && (e.Agent != agentguardtest.AgentID || e.Task != "task-1") {
			t.Errorf("call %s: record agent %q task %q", id, e.Agent, e.Task)
		}
	}
	if len(records) != len(ids) {
		t.Errorf("%d calls recorded, want %d:\n%s", len(records), len(ids), audittest.List(f.env.Audit.Events()))
	}
	for _, name := range []string{"read_ticket", "delete_account", "export_data", "rm_rf", "custom/read_ticket"} {
		if n := f.toolSpans()["execute_tool "+name]; n != 1 {
			t.Errorf("%d execute_tool spans for %s, want 1 (spans: %v)", n, name, f.toolSpans())
		}
	}

	// (f) The credential value reached neither the model nor the records.
	expectNoCanaryIn(t, bodies)
	f.expectNoCanary(t)
}

// TestResponsesLoop is TestChatLoop over the Responses API: function
// calls, a custom tool call and a namespaced call, answered with
// function_call_output and custom_tool_call_output items.
func TestResponsesLoop(t *testing.T) {
	f := newFixture(t)
	model, client := newScriptedModel(t, "/responses",
		responseJSON("resp_1",
			functionCallItem("call_1", "read_ticket", `{"id":"T-1"}`),
			functionCallItem("call_2", "delete_account", `{"user":"admin"}`),
			`{"type":"custom_tool_call","id":"ctc_3","call_id":"call_3","name":"read_ticket","input":"T-3","status":"completed"}`,
			`{"type":"function_call","id":"fc_4","call_id":"call_4","namespace":"crm","name":"read_ticket","arguments":"{}","status":"completed"}`),
		responseJSON("resp_2", textItem("Ticket T-1 is open.")),
	)
	said, err := responsesLoop(f.ctx, client, f.reg)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Ticket T-1 is open."}; !slices.Equal(said, want) {
		t.Errorf("model said %q, want %q", said, want)
	}
	bodies := model.requests()
	if len(bodies) != 2 {
		t.Fatalf("%d requests, want 2", len(bodies))
	}
	var first struct {
		Tools []struct {
			Type   string `json:"type"`
			Name   string `json:"name"`
			Strict *bool  `json:"strict"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(bodies[0], &first); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range first.Tools {
		names = append(names, tool.Name)
		if tool.Type != "function" || tool.Strict == nil || *tool.Strict {
			t.Errorf("tool %s: type %s, strict %v", tool.Name, tool.Type, tool.Strict)
		}
	}
	if want := []string{"read_ticket", "issue_refund", "delete_account", "fail_tool"}; !slices.Equal(names, want) {
		t.Errorf("tools sent %q, want %q", names, want)
	}

	var second struct {
		Previous string `json:"previous_response_id"`
		Input    []struct {
			Type   string `json:"type"`
			CallID string `json:"call_id"`
			Output string `json:"output"`
		} `json:"input"`
	}
	if err := json.Unmarshal(bodies[1], &second); err != nil {
		t.Fatalf("%v\n%s", err, bodies[1])
	}
	if second.Previous != "resp_1" || len(second.Input) != 4 {
		t.Fatalf("second request: %s", bodies[1])
	}
	for i, want := range []struct{ typ, id, text string }{
		{"function_call_output", "call_1", `"status":"open"`},
		{"function_call_output", "call_2", `"delete_account" was denied (authorize)`},
		{"custom_tool_call_output", "call_3", `"custom/read_ticket" was denied (lookup)`},
		{"function_call_output", "call_4", `"crm/read_ticket" was denied (lookup)`},
	} {
		in := second.Input[i]
		if in.Type != want.typ || in.CallID != want.id || !strings.Contains(in.Output, want.text) {
			t.Errorf("item %d: %+v, want %s for %s holding %q", i, in, want.typ, want.id, want.text)
		}
	}
	if f.runs("read_ticket") != 1 || f.runs("delete_account") != 0 {
		t.Errorf("read_ticket ran %d times, delete_account %d", f.runs("read_ticket"), f.runs("delete_account"))
	}
	records := f.toolCalls(t)
	for _, id := range []string{"call_1", "call_2", "call_3", "call_4"} {
		if len(records[id]) != 1 {
			t.Errorf("call %s has %d records, want 1", id, len(records[id]))
		}
	}
	if spans := f.toolSpans(); spans["execute_tool read_ticket"] != 1 || spans["execute_tool delete_account"] != 1 || len(spans) != 4 {
		t.Errorf("spans %v", spans)
	}
	expectNoCanaryIn(t, bodies)
	f.expectNoCanary(t)
}

// TestChatToolFailure: a tool that fails, echoing its credential, comes
// back to the model as a tool message without the credential.
func TestChatToolFailure(t *testing.T) {
	f := newFixture(t)
	model, client := newScriptedModel(t, "/chat/completions",
		completionJSON("tool_calls", "", functionCall("call_9", "fail_tool", `{}`)),
		completionJSON("stop", "It failed."),
	)
	if _, err := chatLoop(f.ctx, client, f.reg); err != nil {
		t.Fatal(err)
	}
	msgs := toolMessages(t, model.requests()[1])
	if len(msgs) != 1 || !strings.Contains(msgs[0].Content, `The tool "fail_tool" failed: backend refused token`) {
		t.Fatalf("tool messages %+v", msgs)
	}
	if records := f.toolCalls(t)["call_9"]; len(records) != 1 || records[0].Outcome == audit.OutcomeOK {
		t.Errorf("records %+v, want one failed call", records)
	}
	expectNoCanaryIn(t, model.requests())
	f.expectNoCanary(t)
}
