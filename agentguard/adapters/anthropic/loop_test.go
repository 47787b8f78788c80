package anthropicguard_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
)

// TestLoop drives the SDK's real client against a scripted model on
// loopback: the model asks for four tools at once (allowed, denied by
// policy, hidden, unknown), the guard answers each, and the next request
// carries the answers the guard made.
func TestLoop(t *testing.T) {
	f := newFixture(t)
	model, client := newScriptedModel(t,
		messageJSON("tool_use", `{"type":"text","text":"Let me look."},`+
			toolUse("toolu_1", "read_ticket", `{"id":"T-1"}`)+","+
			toolUse("toolu_2", "delete_account", `{"user":"admin"}`)+","+
			toolUse("toolu_3", "export_data", `{}`)+","+
			toolUse("toolu_4", "rm_rf", `{"path":"/"}`)),
		messageJSON("end_turn", `{"type":"text","text":"Ticket T-1 is open."}`),
	)
	said, err := loop(f.ctx, client, f.reg)
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
	first := decodeRequest(t, bodies[0])
	var names []string
	for _, tool := range first.Tools {
		names = append(names, tool.Name)
	}
	if want := []string{"read_ticket", "issue_refund", "delete_account", "fail_tool"}; !slices.Equal(names, want) {
		t.Errorf("tools sent %q, want %q (export_data hidden)", names, want)
	}
	for _, tool := range first.Tools {
		var schema map[string]any
		if err := json.Unmarshal(tool.InputSchema, &schema); err != nil || schema["type"] != "object" {
			t.Errorf("tool %s: input_schema %s, want an object schema", tool.Name, tool.InputSchema)
		}
	}

	// Every tool_use got its tool_result, in the model's order.
	results := lastResults(t, bodies[1])
	if len(results) != 4 {
		t.Fatalf("%d tool results, want 4: %+v", len(results), results)
	}
	for i, id := range []string{"toolu_1", "toolu_2", "toolu_3", "toolu_4"} {
		if results[i].Type != "tool_result" || results[i].ToolUseID != id {
			t.Errorf("result %d is %s for %s, want tool_result for %s", i, results[i].Type, results[i].ToolUseID, id)
		}
	}

	// (a) The allowed call ran once, with the task's credential, as the
	// agent, and its output went back to the model.
	if results[0].IsError || !strings.Contains(results[0].text(), `"status":"open"`) {
		t.Errorf("read_ticket result: is_error %v, text %q", results[0].IsError, results[0].text())
	}
	if n := f.runs("read_ticket"); n != 1 {
		t.Errorf("read_ticket ran %d times, want 1", n)
	}
	if f.sawCredential.Load() != 1 {
		t.Error("read_ticket did not find the task's credential in its context")
	}
	var asked bool
	for _, req := range f.engine.Calls() {
		if req.Tool.Name == "read_ticket" {
			asked = true
			if req.Agent.ID.String() != agentguardtest.AgentID || req.CallID != "toolu_1" {
				t.Errorf("policy saw agent %s, call %s", req.Agent.ID, req.CallID)
			}
		}
	}
	if !asked {
		t.Error("policy was never asked about read_ticket")
	}

	// (b) The denied calls never reached a tool, and came back as is_error
	// results that say why.
	for name, n := range map[string]int{"delete_account": f.runs("delete_account"), "export_data": f.runs("export_data")} {
		if n != 0 {
			t.Errorf("%s ran %d times, want 0", name, n)
		}
	}
	for i, want := range []string{
		`"delete_account" was denied (authorize): the admin account is never deleted by an agent`,
		`"export_data" was denied (authorize)`,
		`"rm_rf" was denied (lookup)`,
	} {
		r := results[i+1]
		if !r.IsError || !strings.Contains(r.text(), want) {
			t.Errorf("result for %s: is_error %v, text %q, want it to hold %q", r.ToolUseID, r.IsError, r.text(), want)
		}
	}

	// (e) One span and one audit record per call, allowed and denied.
	records := f.toolCalls(t)
	for id, decision := range map[string]string{"toolu_1": audit.Allow, "toolu_2": audit.Deny, "toolu_3": audit.Deny, "toolu_4": audit.Deny} {
		if len(records[id]) != 1 {
			t.Errorf("call %s has %d tool-call records, want 1", id, len(records[id]))
			continue
		}
		e := records[id][0]
		if e.Decision != decision {
			t.Errorf("call %s: record decision %s, want %s", id, e.Decision, decision)
		}
		// A call of an unknown tool is refused at lookup, before the
		// agent is identified.
		if id != "toolu_4" && (e.Agent != agentguardtest.AgentID || e.Task != "task-1") {
			t.Errorf("call %s: record agent %q task %q", id, e.Agent, e.Task)
		}
	}
	if len(records) != 4 {
		t.Errorf("%d calls recorded, want 4:\n%s", len(records), audittest.List(f.env.Audit.Events()))
	}
	for _, name := range []string{"read_ticket", "delete_account", "export_data", "rm_rf"} {
		if n := f.toolSpans()["execute_tool "+name]; n != 1 {
			t.Errorf("%d execute_tool spans for %s, want 1 (spans: %v)", n, name, f.toolSpans())
		}
	}

	// (f) The credential value reached neither the model nor the records.
	for i, b := range bodies {
		if bytes.Contains(b, []byte(canary)) {
			t.Errorf("request %d to the model holds the credential value", i)
		}
	}
	f.expectNoCanary(t)
}

// TestLoopToolFailure: a tool that fails, echoing its credential, comes
// back to the model as an is_error result without the credential.
func TestLoopToolFailure(t *testing.T) {
	f := newFixture(t)
	model, client := newScriptedModel(t,
		messageJSON("tool_use", toolUse("toolu_9", "fail_tool", `{}`)),
		messageJSON("end_turn", `{"type":"text","text":"It failed."}`),
	)
	if _, err := loop(f.ctx, client, f.reg); err != nil {
		t.Fatal(err)
	}
	bodies := model.requests()
	results := lastResults(t, bodies[1])
	if len(results) != 1 || !results[0].IsError || !strings.Contains(results[0].text(), `The tool "fail_tool" failed: backend refused token`) {
		t.Fatalf("results %+v", results)
	}
	if f.runs("fail_tool") != 1 {
		t.Errorf("fail_tool ran %d times, want 1", f.runs("fail_tool"))
	}
	for i, b := range bodies {
		if bytes.Contains(b, []byte(canary)) {
			t.Errorf("request %d to the model holds the credential value", i)
		}
	}
	records := f.toolCalls(t)["toolu_9"]
	if len(records) != 1 || records[0].Outcome == audit.OutcomeOK {
		t.Errorf("records %+v, want one failed call", records)
	}
	f.expectNoCanary(t)
}
