package adkguard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/tool"
	"google.golang.org/genai"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/credentials"
)

// callKey identifies a call in flight: ADK's function-call IDs are unique
// within an invocation (ADK makes one up when the model gives none).
type callKey struct{ invocation, call string }

// flight is a call BeforeTool allowed and AfterTool has not ended.
type flight struct {
	// tctx is ADK's context of the call: the same value reaches the
	// callbacks and the tool, which tells a call from another that reuses
	// its ID.
	tctx  tool.Context
	agent string
	// ctx is the context the tool must run with: the guard's span, task
	// and credentials. exec is nil while BeforeTool is still deciding.
	ctx  context.Context
	exec *agentguard.Execution
	// args are the arguments policy saw, as JSON.
	args json.RawMessage
	// stop cancels the removal of the flight when tctx is done.
	stop func() bool
}

func keyOf(ctx tool.Context) callKey {
	return callKey{invocation: ctx.InvocationID(), call: ctx.FunctionCallID()}
}

// BeforeTool is the guard's before-tool callback (an
// llmagent.BeforeToolCallback): it runs the call through the guard up to
// the tool's execution. An allowed call returns (nil, nil), so that ADK runs
// the tool; AfterTool then records its outcome. A refused call returns the
// result the model sees instead of the tool's, {"error": <explanation>},
// and the tool does not run. A call that needs a human's approval asks for
// an ADK tool confirmation (see WithApprovals).
//
// Install it last among an agent's before-tool callbacks (Configure does),
// so that the arguments policy sees are those the tool gets.
func (g *Guard) BeforeTool(ctx tool.Context, t tool.Tool, args map[string]any) (map[string]any, error) {
	key := keyOf(ctx)
	f := &flight{tctx: ctx, agent: ctx.AgentName()}
	g.mu.Lock()
	if other, ok := g.flights[key]; ok {
		g.mu.Unlock()
		if sameContext(other.tctx, ctx) {
			// Guarded already: both the plugin and the agent's callbacks
			// are installed.
			return nil, nil
		}
		return refusal(fmt.Sprintf("The call was not made: %v: %q.", ErrDuplicateCall, key.call)), nil
	}
	g.flights[key] = f // reserved while the guard decides
	g.mu.Unlock()

	release := func() {
		g.mu.Lock()
		if g.flights[key] == f {
			delete(g.flights, key)
		}
		g.mu.Unlock()
	}
	at, err := g.describe(t)
	if err != nil {
		release()
		return refusal(fmt.Sprintf("The call to tool %q was not made: %v.", t.Name(), err)), nil
	}
	raw, err := callArgs(args)
	if err != nil {
		release()
		return refusal(fmt.Sprintf("The call to tool %q was not made: its arguments are not JSON.", at.Name)), nil
	}
	if conf := ctx.ToolConfirmation(); conf != nil {
		if out := g.answer(ctx, conf.Confirmed); out != nil {
			release()
			return out, nil
		}
	}
	call := agentguard.Call{ID: key.call, Name: at.Name, Args: raw}
	tctx, exec, err := g.g.Begin(ctx, at, call)
	if err != nil {
		release()
		return g.refused(ctx, err), nil
	}
	g.mu.Lock()
	f.ctx, f.exec, f.args = tctx, exec, raw
	// A call whose context is done is finished by the guard; forget it
	// then, should AfterTool never come.
	f.stop = context.AfterFunc(ctx, release)
	g.mu.Unlock()
	return nil, nil
}

// AfterTool is the guard's after-tool callback (an
// llmagent.AfterToolCallback): it records the outcome of a call BeforeTool
// allowed, paired with it by the function-call ID, and ends its span. It
// leaves the tool's result as it is, or replaces a failure with
// {"error": <explanation>} (the tool's error scrubbed of credentials),
// and withholds a result the guard could not record. It does nothing for
// calls the guard refused: their result is the refusal already.
//
// Install it first among an agent's after-tool callbacks (Configure does):
// ADK skips the callbacks after one that answers.
func (g *Guard) AfterTool(ctx tool.Context, t tool.Tool, args, result map[string]any, err error) (map[string]any, error) {
	key := keyOf(ctx)
	g.mu.Lock()
	f, ok := g.flights[key]
	if ok && (f.exec == nil || !sameContext(f.tctx, ctx)) {
		ok = false
	}
	if ok {
		delete(g.flights, key)
	}
	g.mu.Unlock()
	if !ok {
		if ctx.Err() != nil {
			// Possibly a call the guard finished when its context was
			// cancelled: nothing from it reaches the model.
			return refusal("The call was not completed: " + ctx.Err().Error() + "."), nil
		}
		return nil, nil
	}
	f.stop()
	if now, aerr := callArgs(args); aerr != nil || !bytes.Equal(now, f.args) {
		// The tool ran (or a wrapped one refused to run) with arguments
		// policy did not see: whatever it returned is withheld.
		result, err = nil, fmt.Errorf("%w: tool %q", ErrArgsChanged, t.Name())
	}
	res, gerr := f.exec.End(&agentguard.Result{Output: result}, err)
	if gerr != nil {
		return refusal(agentguard.Explain(gerr)), nil
	}
	if err != nil {
		// Never hand ADK the tool's own error: it may hold a credential.
		return refusal(agentguard.Explain(err)), nil
	}
	var out map[string]any
	if res != nil {
		out, _ = res.Output.(map[string]any)
	}
	if sameMap(out, result) {
		return nil, nil
	}
	return out, nil
}

// AfterAgent is an agent.AfterAgentCallback that finishes the calls of
// the agent's run that BeforeTool allowed and AfterTool never saw (another
// after-tool callback answered first), recording them as failed
// (ErrUnfinished). Configure installs it; the plugin does the same at the
// end of each run.
func (g *Guard) AfterAgent(ctx agent.CallbackContext) (*genai.Content, error) {
	inv, name := ctx.InvocationID(), ctx.AgentName()
	g.sweep(func(k callKey, f *flight) bool { return k.invocation == inv && f.agent == name })
	return nil, nil
}

// afterRun finishes every call of the invocation still in flight.
func (g *Guard) afterRun(ctx agent.InvocationContext) {
	inv := ctx.InvocationID()
	g.sweep(func(k callKey, _ *flight) bool { return k.invocation == inv })
}

// sweep ends the calls in flight that match, as unfinished.
func (g *Guard) sweep(match func(callKey, *flight) bool) {
	var done []*flight
	g.mu.Lock()
	for k, f := range g.flights {
		if f.exec != nil && match(k, f) {
			delete(g.flights, k)
			done = append(done, f)
		}
	}
	g.mu.Unlock()
	for _, f := range done {
		f.stop()
		_, _ = f.exec.End(nil, ErrUnfinished)
	}
}

// flightFor returns the call in flight for ctx, nil if the guard has not
// allowed it.
func (g *Guard) flightFor(ctx tool.Context) *flight {
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.flights[keyOf(ctx)]
	if !ok || f.exec == nil || !sameContext(f.tctx, ctx) {
		return nil
	}
	return f
}

// Credential returns the credential the guard leased for the call of ctx
// under name, for a tool that is not wrapped (Guard.Tools, Guard.Toolset)
// and so cannot find it with credentials.FromContext. It reports false
// outside a call the guard allowed.
func (g *Guard) Credential(ctx tool.Context, name string) (*credentials.Credential, bool) {
	f := g.flightFor(ctx)
	if f == nil {
		return nil, false
	}
	return credentials.FromContext(f.ctx, name)
}

// refusal is the result the model sees in place of a tool's.
func refusal(text string) map[string]any {
	return map[string]any{"error": text}
}

// sameContext reports whether a and b are the same tool context, without
// panicking on a context type that cannot be compared.
func sameContext(a, b tool.Context) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// sameMap reports whether a and b are the same map (not merely equal).
func sameMap(a, b map[string]any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}
