package anthropicguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

// ErrNoRegistry: Run, RunBlocks or Tools was given no registry.
var ErrNoRegistry = errors.New("anthropicguard: no registry")

// Option configures Run.
type Option func(*config)

type config struct {
	concurrency int
}

// WithConcurrency lets Run run up to n of a turn's tool calls at once.
// The results stay in the model's order whatever order the calls finish
// in. Without it (or with n <= 1) the calls run one after the other, in
// the model's order, which keeps policy decisions that depend on the
// task's state (calls made, taint a result adds) the same from run to
// run: use it only for tools that do not depend on each other.
func WithConcurrency(n int) Option {
	return func(c *config) { c.concurrency = n }
}

// Call is one tool_use block of a model turn and what the guard made of it.
type Call struct {
	// Block is the model's tool_use block.
	Block anthropic.ToolUseBlock
	// Result is the tool's result when the call was allowed and the tool
	// succeeded; Err is the error otherwise: a *agentguard.DenyError for
	// a call the guard refused (the tool did not run), a
	// *agentguard.ToolError for a tool that failed.
	Result *agentguard.Result
	Err    error
}

// Pending returns the approval request a call waits for, when it was
// denied because its approval was passed on to a human who has not
// answered yet (approval.Deferred): decide it, then Turn.Resume.
func (c *Call) Pending() (*agentguard.ApprovalRequest, bool) {
	return approval.PendingRequest(c.Err)
}

// ResultBlock returns the tool_result block answering the call: the tool's
// output, or, with is_error set, agentguard.Explain's text for a denial, a
// call waiting for approval, or a tool's failure.
func (c *Call) ResultBlock() anthropic.ContentBlockParamUnion {
	content, isError := c.content()
	b := anthropic.ToolResultBlockParam{ToolUseID: c.Block.ID, Content: content}
	if isError {
		b.IsError = anthropic.Bool(true)
	}
	if c.Block.ToolsetName != "" {
		b.ToolsetName = anthropic.String(c.Block.ToolsetName)
	}
	return anthropic.ContentBlockParamUnion{OfToolResult: &b}
}

// Text returns the text of the call's tool_result, as the model reads it.
func (c *Call) Text() string {
	content, _ := c.content()
	var b strings.Builder
	for _, part := range content {
		if part.OfText != nil {
			b.WriteString(part.OfText.Text)
		}
	}
	return b.String()
}

// content is the tool_result's content and whether it is an error.
func (c *Call) content() ([]anthropic.ToolResultBlockParamContentUnion, bool) {
	if c.Err != nil {
		return textContent(agentguard.Explain(c.Err)), true
	}
	content, err := outputContent(c.Result)
	if err != nil {
		return textContent(fmt.Sprintf("The tool %q ran, but its result could not be encoded for the model.", c.Block.Name)), true
	}
	return content, false
}

// outputContent turns a tool's result into tool_result content: a string
// or json.RawMessage as text, content blocks as they are, any other value
// as its JSON encoding. Nothing (nil, blank text) is no content.
func outputContent(res *agentguard.Result) ([]anthropic.ToolResultBlockParamContentUnion, error) {
	if res == nil {
		return nil, nil
	}
	switch out := res.Output.(type) {
	case nil:
		return nil, nil
	case string:
		return textContent(out), nil
	case json.RawMessage:
		return textContent(string(out)), nil
	case []anthropic.ToolResultBlockParamContentUnion:
		return out, nil
	}
	b, err := json.Marshal(res.Output)
	if err != nil {
		return nil, err
	}
	return textContent(string(b)), nil
}

// textContent is s as one text block; nothing for a blank s (the API
// refuses a text block with no text but white space).
func textContent(s string) []anthropic.ToolResultBlockParamContentUnion {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return []anthropic.ToolResultBlockParamContentUnion{{OfText: &anthropic.TextBlockParam{Text: s}}}
}

// Turn is the tool calls of one model turn, run through a guarded
// registry. It is not safe for concurrent use.
type Turn struct {
	// Calls are the turn's tool_use blocks, in the model's order.
	Calls []*Call

	reg *agentguard.Registry
	cfg config
}

// ToolUses returns the tool_use blocks of msg, in order: the calls the
// application must answer. Blocks the API ran itself (server_tool_use)
// are not among them.
func ToolUses(msg *anthropic.Message) []anthropic.ToolUseBlock {
	if msg == nil {
		return nil
	}
	var out []anthropic.ToolUseBlock
	for _, b := range msg.Content {
		if b.Type == "tool_use" {
			out = append(out, b.AsToolUse())
		}
	}
	return out
}

// Run runs every tool_use block of msg through r (Registry.Call, with the
// block's ID as the call ID) and returns the turn, whose Message is the
// user message of tool_result blocks to send next. Every block gets a
// result: a denied call, a call waiting for approval and a tool's failure
// come back as is_error results with agentguard.Explain's text, so that
// the model can carry on. A turn with no calls means the model has
// finished. Calls run in the model's order, one at a time, unless
// WithConcurrency says otherwise.
//
// A block naming a tool r does not hold is denied (agentguard.ErrUnknownTool)
// and audited. So is a block of a toolset member (ToolUseBlock.ToolsetName
// set, as for a toolset the API declares), which r cannot hold: it is
// looked up as "<toolset>/<name>".
func Run(ctx context.Context, r *agentguard.Registry, msg *anthropic.Message, opts ...Option) (*Turn, error) {
	if msg == nil {
		return nil, errors.New("anthropicguard: nil message")
	}
	return RunBlocks(ctx, r, ToolUses(msg), opts...)
}

// RunBlocks is Run for tool_use blocks taken from a message (ToolUses) or
// built otherwise.
func RunBlocks(ctx context.Context, r *agentguard.Registry, blocks []anthropic.ToolUseBlock, opts ...Option) (*Turn, error) {
	if r == nil {
		return nil, ErrNoRegistry
	}
	t := &Turn{reg: r, Calls: make([]*Call, len(blocks))}
	for _, o := range opts {
		o(&t.cfg)
	}
	all := make([]int, len(blocks))
	for i, b := range blocks {
		t.Calls[i] = &Call{Block: b}
		all[i] = i
	}
	t.run(ctx, all)
	return t, nil
}

// Message returns the user message answering the turn: one tool_result
// block per call, in the model's order. Append it to the conversation
// after the assistant's message (Message.ToParam).
func (t *Turn) Message() anthropic.MessageParam {
	blocks := make([]anthropic.ContentBlockParamUnion, len(t.Calls))
	for i, c := range t.Calls {
		blocks[i] = c.ResultBlock()
	}
	return anthropic.NewUserMessage(blocks...)
}

// Pending returns the approval requests the turn's calls wait for, in the
// model's order (see Call.Pending).
func (t *Turn) Pending() []*agentguard.ApprovalRequest {
	var out []*agentguard.ApprovalRequest
	for _, c := range t.Calls {
		if req, ok := c.Pending(); ok {
			out = append(out, req)
		}
	}
	return out
}

// Resume runs again the calls that waited for approval (Call.Pending),
// once the human's decisions are recorded (approval.Deferred.Decide): the
// guard asks again, the approver answers with the stored decision, and a
// granted call runs. The other calls are left as they are, so no tool runs
// twice. ctx must carry the same task as Run's, since an approval is bound
// to the task. A call still undecided waits again, with a new request.
func (t *Turn) Resume(ctx context.Context) {
	var idx []int
	for i, c := range t.Calls {
		if _, ok := c.Pending(); ok {
			idx = append(idx, i)
		}
	}
	t.run(ctx, idx)
}

// run runs the calls at idx, at most cfg.concurrency at once.
func (t *Turn) run(ctx context.Context, idx []int) {
	calls := make([]agentguard.Call, len(idx))
	for k, i := range idx {
		calls[k] = t.Calls[i].call()
	}
	for k, o := range t.reg.CallEach(ctx, calls, t.cfg.concurrency) {
		c := t.Calls[idx[k]]
		c.Result, c.Err = o.Result, o.Err
	}
}

// call is the guard's call of the block.
func (c *Call) call() agentguard.Call {
	name := c.Block.Name
	if c.Block.ToolsetName != "" {
		name = c.Block.ToolsetName + "/" + name
	}
	return agentguard.Call{ID: c.Block.ID, Name: name, Args: c.Block.Input}
}
