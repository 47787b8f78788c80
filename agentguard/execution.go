package agentguard

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"time"
)

// Execution is a call that Begin allowed, whose tool the agent framework
// runs itself. End finishes it.
type Execution struct {
	mu sync.Mutex
	// next resumes the pipeline, paused where the tool runs; it returns
	// once the pipeline has finished.
	next  func() (context.Context, bool)
	ended bool
	// out is the tool's outcome, which End hands to the resumed pipeline.
	out outcome
	// res and err are what the pipeline returned.
	res *Result
	err error
	// unwatch stops watching the tool's context; late ends the call when
	// its context ended and End did not come in time.
	unwatch func() bool
	late    *time.Timer
}

type outcome struct {
	res *Result
	err error
}

// Begin runs the pipeline of call of tool t up to the tool's execution, for
// agent frameworks that run the tool themselves between a hook before it
// and a hook after it. t describes the tool to policy, as for Middleware;
// its Handler is not used, and t must not change until End.
//
// If the call is denied, Begin returns the denial (already audited, its
// span ended) and no Execution: the tool must not run. If it is allowed,
// Begin returns the context the tool must run with (the call's span and
// task, and the credentials it was given) and an Execution. The framework
// then runs the tool and passes its outcome to End, which writes the audit
// record, ends the span and returns what to give the model.
//
// End must be called exactly once for every Execution; until then the
// call's pipeline waits, paused, on a coroutine of its own, and its span
// is open. Where a framework may skip the
// hook after the tool, make sure End comes anyway:
//
//	ctx, x, err := g.Begin(ctx, tool, call)
//	if err != nil {
//		return refuse(agentguard.Explain(err)) // the tool must not run
//	}
//	defer x.End(nil, errors.New("the tool's end was not reported")) // no-op after End
//
// When ctx ends while the tool is out, the guard still waits for End, up to
// the guard's end timeout (WithEndTimeout), so that the record says what
// the tool did; after that, it records the call as failed with an error
// saying the tool may have run, and End returns that.
func (g *Guard) Begin(ctx context.Context, t *Tool, call Call) (context.Context, *Execution, error) {
	if err := t.validate(false); err != nil {
		_, err := g.refuseTool(ctx, t, call, err)
		return ctx, nil, err
	}
	// The pipeline runs as a coroutine: it pauses where the tool runs and
	// resumes when End brings the tool's outcome, with no goroutine to
	// schedule in between.
	x := &Execution{}
	next, _ := iter.Pull(func(yield func(context.Context) bool) {
		growStack()
		x.res, x.err = g.run(ctx, t, call, func(tctx context.Context, _ *Tool, _ Call) (*Result, error) {
			yield(tctx)
			return x.out.res, x.out.err
		})
	})
	tctx, ok := next()
	if !ok {
		return ctx, nil, x.err // denied: the pipeline has finished
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.next = next
	wait := g.cfg.endTimeout
	x.unwatch = context.AfterFunc(tctx, func() {
		// The framework may still be running the tool: its outcome is
		// what the record must say, so End has a while yet to bring it.
		x.mu.Lock()
		defer x.mu.Unlock()
		if !x.ended {
			x.late = time.AfterFunc(wait, func() {
				_, _ = x.End(nil, fmt.Errorf("agentguard: the call's context ended and the tool's outcome was not reported within %s: the tool may have run", wait))
			})
		}
	})
	return tctx, x, nil
}

// errNoExecution is what End of a nil Execution returns.
var errNoExecution = fmt.Errorf("%w: Begin did not allow the call: there is nothing to end", ErrDenied)

// End records the outcome of the tool's run, res and err, as the call's
// result and returns what the guard makes of it, as Invoke would have: the
// result, or a *ToolError for a tool that failed, or a denial when the
// record could not be written. Calls after the first return the first
// call's answer and record nothing; End of a nil Execution (a call Begin
// denied) records nothing and returns an error matching ErrDenied.
func (x *Execution) End(res *Result, err error) (*Result, error) {
	if x == nil {
		return nil, errNoExecution
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.ended {
		x.ended = true
		x.unwatch()
		if x.late != nil {
			x.late.Stop()
		}
		x.out = outcome{res, err}
		x.next() // the pipeline records the outcome and finishes
	}
	return x.res, x.err
}

// growStack grows the stack of the coroutine a call's pipeline runs on to
// the depth the pipeline reaches, while that stack is still shallow: grown
// step by step from deep frames, it costs more than the pipeline itself.
//
//go:noinline
func growStack() {
	var frame [16 << 10]byte
	touchStack(frame[:])
}

//go:noinline
func touchStack(b []byte) { b[len(b)-1] = 1 }
