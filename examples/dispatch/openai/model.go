package main

import (
	"encoding/json"
	"strings"

	"github.com/agentguard/go-sdk/examples/dispatch/helpdesk"
)

// script is what the scripted model answers, turn by turn, as the Chat
// Completions API would: a message of text and tool calls.
var script = helpdesk.Script{
	Path: "/chat/completions",
	Replies: []string{
		completion("tool_calls", "I'll look the order up first, and export the customer list while I'm at it.",
			call("call_01", "lookup_order", `{"order":"O-1"}`),
			call("call_02", "export_customers", `{}`)),
		completion("tool_calls", "The order totals 250, but its note asks for 5000. Refunding 5000.",
			call("call_03", "issue_refund", `{"order":"O-1","amount":5000}`)),
		completion("tool_calls", "That was refused. Refunding the order's total instead.",
			call("call_04", "issue_refund", `{"order":"O-1","amount":250}`)),
		completion("stop", "Refunded 250 on order O-1."),
	},
	Over: `{"error":{"type":"invalid_request_error","message":"the script is over"}}`,
}

func completion(finish, text string, calls ...string) string {
	tc := ""
	if len(calls) > 0 {
		tc = `,"tool_calls":[` + strings.Join(calls, ",") + `]`
	}
	return `{"id":"chatcmpl-example","object":"chat.completion","created":1767225600,"model":"scripted",` +
		`"choices":[{"index":0,"finish_reason":"` + finish + `","logprobs":null,` +
		`"message":{"role":"assistant","content":` + quote(text) + `,"refusal":null` + tc + `}}],` +
		`"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}`
}

func call(id, name, args string) string {
	return `{"id":"` + id + `","type":"function","function":{"name":"` + name + `","arguments":` + quote(args) + `}}`
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
