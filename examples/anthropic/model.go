package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// script is what the scripted model answers, turn by turn, as the Messages
// API would: a message of text and tool_use blocks.
var script = []string{
	message("tool_use",
		text("I'll look the order up first, and export the customer list while I'm at it."),
		toolUse("toolu_01", "lookup_order", `{"order":"O-1"}`),
		toolUse("toolu_02", "export_customers", `{}`)),
	message("tool_use",
		text("The order totals 250, but its note asks for 5000. Refunding 5000."),
		toolUse("toolu_03", "issue_refund", `{"order":"O-1","amount":5000}`)),
	message("tool_use",
		text("That was refused. Refunding the order's total instead."),
		toolUse("toolu_04", "issue_refund", `{"order":"O-1","amount":250}`)),
	message("end_turn", text("Refunded 250 on order O-1.")),
}

func message(stop string, blocks ...string) string {
	return `{"id":"msg_example","type":"message","role":"assistant","model":"scripted",` +
		`"content":[` + strings.Join(blocks, ",") + `],"stop_reason":"` + stop + `","stop_sequence":null,` +
		`"usage":{"input_tokens":0,"output_tokens":0}}`
}

func text(s string) string { return `{"type":"text","text":"` + s + `"}` }

func toolUse(id, name, input string) string {
	return `{"type":"tool_use","id":"` + id + `","name":"` + name + `","input":` + input + `}`
}

// scriptedModel plays the Messages API on a loopback port, so that the
// SDK's real client sends and decodes every request. It keeps what it was
// sent.
type scriptedModel struct {
	srv *httptest.Server

	mu       sync.Mutex
	next     int
	requests [][]byte
}

func startModel() *scriptedModel {
	m := &scriptedModel{}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	return m
}

func (m *scriptedModel) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil || r.URL.Path != "/v1/messages" || m.next == len(script) {
		http.Error(w, `{"type":"error","error":{"type":"invalid_request_error","message":"the script is over"}}`, http.StatusBadRequest)
		return
	}
	m.requests = append(m.requests, body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, script[m.next])
	m.next++
}

// sent returns the request bodies the model received.
func (m *scriptedModel) sent() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests
}

func (m *scriptedModel) close() { m.srv.Close() }
