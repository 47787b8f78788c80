package main

import (
	"strings"

	"github.com/agentguard/go-sdk/examples/dispatch/helpdesk"
)

// script is what the scripted model answers, turn by turn, as the Messages
// API would: a message of text and tool_use blocks.
var script = helpdesk.Script{
	Path: "/v1/messages",
	Replies: []string{
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
	},
	Over: `{"type":"error","error":{"type":"invalid_request_error","message":"the script is over"}}`,
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
