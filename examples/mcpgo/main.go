// Command mcpgo runs a support bot's MCP tool calls through AgentGuard with
// the mcp-go adapter: the bot's mcp-go client talks to an "orders" MCP
// server in the same process, and a scripted model decides what to call.
//
// It shows the server's tool definitions reviewed and pinned, the model
// offered only the tools Cedar policy lets the bot call, an allowed call
// made with a task credential, a call denied by policy (of a tool the model
// was never offered), a refund that waits for a supervisor (the call comes
// back to the model as an isError result naming the request; the
// application records the supervisor's answer and the same call, in the
// same task, then runs), and a rug pull: the server rewrites a pinned
// tool's description and the next call of it is refused.
//
// Then the server side: a "billing" MCP server guarded by the adapter
// (its tools get a task credential; its audit records are printed), served
// over mcp-go's streamable HTTP transport on a loopback port, where each
// caller proves its SPIFFE ID with a JWT-SVID: the bot is shown and may
// call what the server's Cedar policy allows, a denial comes back as an
// isError result, and a caller without a token is shown nothing and
// refused. No network beyond loopback, no API key.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mcpgo:", err)
		os.Exit(1)
	}
}
