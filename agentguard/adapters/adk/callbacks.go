package adkguard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/tool"
	"google.golang.org/genai"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/credentials"
)

// callKey identifies a call in flight: ADK's function-call IDs are unique
// within one model response of one agent (ADK makes one up when the model
// gives none); the branch and agent tell apart the agents of a
// ParallelAgent, which share the invocation.
type callKey struct{ invocation, branch, agent, call string }

// flight is a call BeforeTool allowed whose outcome the adapter has not
// yet recorded.
type flight struct {
	// tctx is ADK's context of the call: the same value reaches the
	// callbacks and the tool, which tells a call from another that reuses
	// its ID.
	tctx tool.Context
	// ctx is the context the tool must run with: the guard's span, task
	// and credentials. exec is nil while BeforeTool is still deciding.
	ctx  context.Context
	exec *agentguard.Execution
	// args are the arguments policy saw, as JSON.
	args json.RawMessage
	// ran: a wrapped tool (Guard.Tools) runs for the call, and records
	// its outcome itself. Guarded by Guard.mu.
	ran bool
	// stop cancels the watch on tctx.
	stop func() bool
	// ended is closed once the outcome is recorded.
	ended chan struct{}
	once  sync.Once
}

func keyOf(ctx tool.Context) callKey {
	return callKey{invocation: ctx.InvocationID(), branch: ctx.Branch(), agent: ctx.AgentName(), call: ctx.FunctionCallID()}
}

// BeforeTool is the guard's before-tool callback (an
// llmagent.BeforeToolCallback): it runs the call through the guard up to
// the tool's execution. An allowed call returns (nil, nil), so that ADK runs
// the tool; a wrapped tool records its outcome when it returns, AfterTool or
// OnToolError that of another tool. A refused call returns the result the
// model sees instead of the tool's, {"error": <explanation>}, and the tool
// does not run. A call that needs a human's approval asks for an ADK tool
// confirmation (see WithApprovals).
//
// Install it last among an agent's before-tool callbacks (Configure does),
// so that the arguments policy sees are those the tool gets.
func (g *Guard) BeforeTool(ctx tool.Context, t tool.Tool, args map[string]any) (map[string]any, error) {
	key := keyOf(ctx)
	f := &flight{tctx: ctx, ended: make(chan struct{})}
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

	release := func() { g.forget(key, f) }
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
	var mismatch error
	if conf := ctx.ToolConfirmation(); conf != nil {
		out, merr := g.answer(ctx, conf, at.Name, raw)
		if out != nil {
			release()
			return out, nil
		}
		mismatch = merr
	}
	call := agentguard.Call{ID: key.call, Name: at.Name, Args: raw}
	tctx, exec, err := g.g.Begin(ctx, at, call)
	if err != nil {
		release()
		return g.refused(ctx, err, mismatch), nil
	}
	g.mu.Lock()
	f.ctx, f.exec, f.args = tctx, exec, raw
	// Should the run's context end with the call in flight, the guard
	// waits (Guard.Begin) for its outcome; the adapter forgets the call
	// once it is recorded.
	f.stop = context.AfterFunc(ctx, func() { g.orphaned(key, f) })
	g.mu.Unlock()
	switch {
	case mismatch != nil:
		// The call is allowed without a human's answer, but it comes as
		// the answer to a confirmation that is not its own: it does not
		// run, and its record says why.
		_, _ = g.finish(key, f, nil, mismatch)
		return refusal(fmt.Sprintf("The confirmation answered was not taken (%v); the call was not made.", mismatch)), nil
	case isAgentTool(t):
		// Not wrapped by Guard.AgentTool: the agent it runs is not known
		// to be guarded.
		_, gerr := g.finish(key, f, nil, fmt.Errorf("%w: tool %q", ErrUnguardedAgent, t.Name()))
		return refusal(agentguard.Explain(gerr)), nil
	}
	return nil, nil
}

// AfterTool is the guard's after-tool callback (an
// llmagent.AfterToolCallback): it records the outcome of a call BeforeTool
// allowed, paired with it by the function-call ID, and ends its span,
// unless the wrapped tool recorded it already. It leaves the tool's result
// as it is, or replaces a failure with {"error": <explanation>} (the
// tool's error scrubbed of credentials), and withholds a result the guard
// could not record. It does nothing for calls the guard refused: their
// result is the refusal already.
//
// Install it first among an agent's after-tool callbacks (Configure does):
// ADK skips the callbacks after one that answers.
func (g *Guard) AfterTool(ctx tool.Context, t tool.Tool, args, result map[string]any, err error) (map[string]any, error) {
	key := keyOf(ctx)
	f := g.lookup(key, ctx)
	if f == nil {
		var te *agentguard.ToolError
		var de *agentguard.DenyError
		switch {
		case err != nil && g.wraps(t) && (errors.As(err, &te) || errors.As(err, &de)):
			// A wrapped tool recorded its call, and failed or had its
			// result withheld: the model reads the guard's account.
			return refusal(agentguard.Explain(err)), nil
		case ctx.Err() != nil:
			// Possibly a call the guard finished when its context was
			// cancelled: nothing from it reaches the model.
			return refusal("The call was not completed: " + ctx.Err().Error() + "."), nil
		}
		return nil, nil
	}
	if now, aerr := callArgs(args); aerr != nil || !bytes.Equal(now, f.args) {
		// The tool ran (or a wrapped one refused to run) with arguments
		// policy did not see: whatever it returned is withheld.
		result, err = nil, fmt.Errorf("%w: tool %q", ErrArgsChanged, t.Name())
	}
	res, gerr := g.finish(key, f, &agentguard.Result{Output: result}, err)
	if gerr != nil {
		return refusal(agentguard.Explain(gerr)), nil
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

// OnToolError is the guard's tool-error callback (an
// llmagent.OnToolErrorCallback). ADK runs the tool-error callbacks before
// the after-tool ones, so it is where the guard must see a failure first:
// the plugin has it, and Configure installs it first among the agent's.
//
//   - A tool that is not wrapped failed: the call is recorded with the
//     tool's error and the model gets the guard's explanation, scrubbed of
//     the call's credentials; the callbacks after it do not run.
//   - A wrapped tool failed: it recorded the failure and handed ADK the
//     scrubbed error (*agentguard.ToolError), which the callbacks after it
//     may see (ADK's retryandreflect plugin, for one).
//   - ADK found no tool of the name the model called (one it invented, or
//     one BeforeModel hid): the call is recorded as a lookup denial and the
//     model is told so.
func (g *Guard) OnToolError(ctx tool.Context, t tool.Tool, args map[string]any, err error) (map[string]any, error) {
	key := keyOf(ctx)
	f := g.lookup(key, ctx)
	if f == nil {
		if _, ok := t.(runnable); !ok {
			return g.unknownCall(ctx, t.Name(), args), nil
		}
		return nil, nil // refused, recorded by a wrapped tool, or stopped before the guard's callback
	}
	_, gerr := g.finish(key, f, nil, err)
	return refusal(agentguard.Explain(gerr)), nil
}

// wraps reports whether t is one of g's wrapped tools.
func (g *Guard) wraps(t tool.Tool) bool {
	w, ok := t.(*guardedTool)
	return ok && w.g == g
}

// unknownCall records a call of a tool ADK does not have as a lookup
// denial, and returns what the model is told.
func (g *Guard) unknownCall(ctx tool.Context, name string, args map[string]any) map[string]any {
	raw, err := callArgs(args)
	if err != nil {
		raw = nil
	}
	_, err = g.unknown.Call(ctx, agentguard.Call{ID: ctx.FunctionCallID(), Name: name, Args: raw})
	if err == nil {
		// Nothing is registered there; fail closed all the same.
		err = fmt.Errorf("adkguard: no tool %q", name)
	}
	return refusal(agentguard.Explain(err))
}

// AfterAgent is an agent.AfterAgentCallback that finishes the calls of
// the agent's run that BeforeTool allowed and whose outcome no callback
// reported (another after-tool callback answered first), recording them as
// failed (ErrUnfinished). Configure installs it; the plugin does the same
// at the end of each run.
func (g *Guard) AfterAgent(ctx agent.CallbackContext) (*genai.Content, error) {
	g.sweepAgent(ctx)
	return nil, nil
}

// sweepAgent finishes the calls of the agent of ctx in its invocation:
// ADK runs all the calls of a model response before asking the model
// again, so none of them is still running.
func (g *Guard) sweepAgent(ctx agent.CallbackContext) {
	inv, branch, name := ctx.InvocationID(), ctx.Branch(), ctx.AgentName()
	g.sweep(func(k callKey) bool { return k.invocation == inv && k.branch == branch && k.agent == name })
}

// afterRun finishes every call of the invocation still in flight.
func (g *Guard) afterRun(ctx agent.InvocationContext) {
	inv := ctx.InvocationID()
	g.sweep(func(k callKey) bool { return k.invocation == inv })
}

// sweep ends the calls in flight that match, as unfinished.
func (g *Guard) sweep(match func(callKey) bool) {
	type entry struct {
		key callKey
		f   *flight
	}
	var done []entry
	g.mu.Lock()
	for k, f := range g.flights {
		if f.exec != nil && match(k) {
			done = append(done, entry{k, f})
		}
	}
	g.mu.Unlock()
	for _, e := range done {
		_, _ = g.finish(e.key, e.f, nil, ErrUnfinished) // a no-op for a call recorded already
	}
}

// finish records the outcome of f (the first outcome counts) and forgets f.
func (g *Guard) finish(key callKey, f *flight, res *agentguard.Result, err error) (*agentguard.Result, error) {
	g.forget(key, f)
	g.mu.Lock()
	stop := f.stop
	g.mu.Unlock()
	if stop != nil {
		stop()
	}
	r, e := f.exec.End(res, err)
	f.once.Do(func() { close(f.ended) })
	return r, e
}

// forget removes f from the calls in flight.
func (g *Guard) forget(key callKey, f *flight) {
	g.mu.Lock()
	if g.flights[key] == f {
		delete(g.flights, key)
	}
	g.mu.Unlock()
}

// orphaned runs when the context of a call in flight ends. The guard
// waits for the call's outcome (Guard.Begin, up to its end timeout) and
// then records what it knows; the adapter keeps the call until its outcome
// is reported or its task ends, so that a late AfterTool still counts.
func (g *Guard) orphaned(key callKey, f *flight) {
	var done <-chan struct{}
	if task, ok := agentguard.TaskFromContext(f.ctx); ok {
		done = task.Done()
	}
	if done != nil {
		select {
		case <-f.ended:
			return
		case <-done:
		}
	}
	_, _ = g.finish(key, f, nil, ErrUnfinished)
}

// lookup returns the call in flight for ctx, nil if the guard has not
// allowed it.
func (g *Guard) lookup(key callKey, ctx tool.Context) *flight {
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.flights[key]
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
	f := g.lookup(keyOf(ctx), ctx)
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
