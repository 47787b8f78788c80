package mcpguard

import (
	"errors"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentguard/go-sdk/agentguard"
)

// ErrToolFailed matches a ToolFailure: the MCP tool ran and answered with
// a result whose isError is set.
var ErrToolFailed = errors.New("mcpguard: tool reported an error")

// maxFailureText bounds how much of a failed result's text a ToolFailure's
// message holds.
const maxFailureText = 1024

// ToolFailure is the error of an MCP tool that ran and reported a failure
// (a CallToolResult with isError). Result is what the server answered.
// Through the guard it arrives wrapped in an *agentguard.ToolError, whose
// message has the call's credential values removed; errors.As finds it.
type ToolFailure struct {
	Tool   string
	Result *mcp.CallToolResult
}

// Error gives the tool's name and the text of its result, shortened.
func (e *ToolFailure) Error() string {
	return fmt.Sprintf("mcpguard: tool %q reported an error: %s", e.Tool, resultText(e.Result, maxFailureText))
}

// Is reports true for ErrToolFailed.
func (e *ToolFailure) Is(target error) bool { return target == ErrToolFailed }

// resultText joins the text contents of res, cut to at most max bytes on a
// rune boundary.
func resultText(res *mcp.CallToolResult, max int) string {
	if res == nil {
		return ""
	}
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	s := strings.Join(parts, "\n")
	if len(s) <= max {
		return s
	}
	s = strings.ToValidUTF8(s[:max], "")
	return s + "…"
}

// ErrorResult returns the MCP form of a guarded call's error, to give the
// model in place of the tool's result so that the agent's run goes on:
// a CallToolResult with isError set and, as its text, agentguard.Explain's
// account of the error (which tool was denied at which step and why, the
// ID of an approval request a human must answer, or a tool's failure as
// its scrubbed message). It never holds a credential value. A nil err
// gives nil. Session.CallTool and Invoke return it with their error
// already; it is for errors met elsewhere, such as the application's own.
func ErrorResult(err error) *mcp.CallToolResult {
	if err == nil {
		return nil
	}
	return &mcp.CallToolResult{
		Content: []mcp.Content{&mcp.TextContent{Text: agentguard.Explain(err)}},
		IsError: true,
	}
}
