package openaiguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

// ErrNoRegistry: Run, RunResponse, Tools or ResponseTools was given no
// registry.
var ErrNoRegistry = errors.New("openaiguard: no registry")

// Option configures Run and RunResponse.
type Option func(*config)

type config struct {
	concurrency int
}

// WithConcurrency lets up to n of a turn's tool calls run at once. The
// results stay in the model's order whatever order the calls finish in.
// Without it (or with n <= 1) the calls run one after the other, in the
// model's order, which keeps policy decisions that depend on the task's
// state (calls made, taint a result adds) the same from run to run: use
// it only for tools that do not depend on each other.
func WithConcurrency(n int) Option {
	return func(c *config) { c.concurrency = n }
}

// Call is one tool call of a model turn and what the guard made of it.
type Call struct {
	// ID is the call's ID (tool_calls[].id, or a Responses item's call_id).
	ID string
	// Name is the tool's name as the model gave it; Namespace the
	// Responses API's namespace, if any.
	Name      string
	Namespace string
	// Arguments are the arguments as the model wrote them: a function's
	// JSON arguments, or a custom tool's free-form input.
	Arguments string
	// Custom marks a custom tool call (free-form input), which the guard
	// refuses: the registry's tools take JSON arguments.
	Custom bool
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

// Failed reports whether the call did not give a result: it was denied,
// waits for approval, or its tool failed. Text then explains why.
func (c *Call) Failed() bool {
	_, failed := c.output()
	return failed
}

// Text returns the content of the call's tool message or output item:
// the tool's output (a string as it is, json.RawMessage as its text, any
// other value as JSON), or agentguard.Explain's text for a denial, a call
// waiting for approval, or a tool's failure. The API has no error flag
// for tool results: the text says it.
func (c *Call) Text() string {
	text, _ := c.output()
	return text
}

// output is the call's text and whether it is an error.
func (c *Call) output() (string, bool) {
	if c.Err != nil {
		return agentguard.Explain(c.Err), true
	}
	if c.Result == nil {
		return "", false
	}
	switch out := c.Result.Output.(type) {
	case nil:
		return "", false
	case string:
		return out, false
	case json.RawMessage:
		return string(out), false
	}
	b, err := json.Marshal(c.Result.Output)
	if err != nil {
		return fmt.Sprintf("The tool %q ran, but its result could not be encoded for the model.", c.Name), true
	}
	return string(b), false
}

// Message returns the Chat Completions tool message answering the call.
func (c *Call) Message() openai.ChatCompletionMessageParamUnion {
	return openai.ToolMessage(c.Text(), c.ID)
}

// InputItem returns the Responses API item answering the call: a
// function_call_output, or a custom_tool_call_output for a custom call.
func (c *Call) InputItem() responses.ResponseInputItemUnionParam {
	if c.Custom {
		return responses.ResponseInputItemParamOfCustomToolCallOutput(c.ID, c.Text())
	}
	item := responses.ResponseInputItemParamOfFunctionCallOutput(c.Text())
	item.OfFunctionCallOutput.CallID = openai.String(c.ID)
	return item
}

// guardedName is the name the registry is asked for. A custom or
// namespaced call is never one of the registry's function tools, so it
// gets a name no tool can have (the guard's names hold no "/"): it is
// denied at lookup and audited, whatever tool of the same plain name the
// registry holds.
func (c *Call) guardedName() string {
	switch {
	case c.Custom:
		return "custom/" + c.Name
	case c.Namespace != "":
		return c.Namespace + "/" + c.Name
	}
	return c.Name
}

// call is the guard's call of the model's.
func (c *Call) call() agentguard.Call {
	var args json.RawMessage
	if !c.Custom && c.Arguments != "" {
		args = json.RawMessage(c.Arguments)
	}
	return agentguard.Call{ID: c.ID, Name: c.guardedName(), Args: args}
}

// Turn is the tool calls of one model turn, run through a guarded
// registry. It is not safe for concurrent use.
type Turn struct {
	// Calls are the turn's tool calls, in the model's order.
	Calls []*Call

	reg *agentguard.Registry
	cfg config
}

// Run runs every tool call of a Chat Completions message
// (ChatCompletion.Choices[i].Message) through r (Registry.Call, with the
// call's ID) and returns the turn, whose Messages are the tool messages to
// append after the assistant's message (ChatCompletionMessage.ToParam).
// Every call gets an answer: a denied call, a call waiting for approval
// and a tool's failure come back as a tool message holding
// agentguard.Explain's text, so that the model can carry on. A turn with
// no calls means the model has finished. Calls run in the model's order,
// one at a time, unless WithConcurrency says otherwise.
//
// A call naming a tool r does not hold is denied (agentguard.ErrUnknownTool)
// and audited; so is a custom tool call, looked up as "custom/<name>".
func Run(ctx context.Context, r *agentguard.Registry, msg *openai.ChatCompletionMessage, opts ...Option) (*Turn, error) {
	if msg == nil {
		return nil, errors.New("openaiguard: nil message")
	}
	calls := make([]*Call, 0, len(msg.ToolCalls))
	for _, tc := range msg.ToolCalls {
		c := &Call{ID: tc.ID}
		switch tc.Type {
		case "function":
			c.Name, c.Arguments = tc.Function.Name, tc.Function.Arguments
		case "custom":
			c.Name, c.Arguments, c.Custom = tc.Custom.Name, tc.Custom.Input, true
		default:
			// A kind of call this package does not know: a name no
			// tool can have, so that it is refused at lookup.
			c.Name = tc.Type + "/" + tc.Function.Name + tc.Custom.Name
		}
		calls = append(calls, c)
	}
	return run(ctx, r, calls, opts)
}

// RunResponse is Run for the Responses API: it runs the function_call and
// custom_tool_call items of resp.Output and returns the turn, whose
// InputItems are the items to send next (with PreviousResponseID set to
// resp.ID, or after resp's output items). Items the API ran itself (web
// search, file search, code interpreter, remote MCP) are not calls to
// answer; items of built-in tools the application runs (computer use,
// shell, apply_patch) are not answered either: see the package
// documentation.
func RunResponse(ctx context.Context, r *agentguard.Registry, resp *responses.Response, opts ...Option) (*Turn, error) {
	if resp == nil {
		return nil, errors.New("openaiguard: nil response")
	}
	var calls []*Call
	for _, item := range resp.Output {
		switch item.Type {
		case "function_call":
			fc := item.AsFunctionCall()
			calls = append(calls, &Call{ID: fc.CallID, Name: fc.Name, Namespace: fc.Namespace, Arguments: fc.Arguments})
		case "custom_tool_call":
			cc := item.AsCustomToolCall()
			calls = append(calls, &Call{ID: cc.CallID, Name: cc.Name, Arguments: cc.Input, Custom: true})
		}
	}
	return run(ctx, r, calls, opts)
}

// run runs calls through r.
func run(ctx context.Context, r *agentguard.Registry, calls []*Call, opts []Option) (*Turn, error) {
	if r == nil {
		return nil, ErrNoRegistry
	}
	t := &Turn{Calls: calls, reg: r}
	for _, o := range opts {
		o(&t.cfg)
	}
	all := make([]int, len(calls))
	for i := range calls {
		all[i] = i
	}
	t.run(ctx, all)
	return t, nil
}

// Messages returns the Chat Completions tool messages answering the turn,
// one per call, in the model's order.
func (t *Turn) Messages() []openai.ChatCompletionMessageParamUnion {
	out := make([]openai.ChatCompletionMessageParamUnion, len(t.Calls))
	for i, c := range t.Calls {
		out[i] = c.Message()
	}
	return out
}

// InputItems returns the Responses API items answering the turn, one per
// call, in the model's order.
func (t *Turn) InputItems() []responses.ResponseInputItemUnionParam {
	out := make([]responses.ResponseInputItemUnionParam, len(t.Calls))
	for i, c := range t.Calls {
		out[i] = c.InputItem()
	}
	return out
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
