package agentguard

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Execution is a call that Begin allowed, whose tool the agent framework
// runs itself. End finishes it.
type Execution struct {
	outcome chan outcome
	done    chan struct{}
	once    sync.Once
	// res and err are what the pipeline returned, set before done closes.
	res *Result
	err error
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
// End must be called exactly once for every Execution; until then the call
// holds a goroutine and its span is open. Where a framework may skip the
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
	x := &Execution{outcome: make(chan outcome, 1), done: make(chan struct{})}
	started := make(chan context.Context, 1)
	go func() {
		defer close(x.done)
		x.res, x.err = g.run(ctx, t, call, func(tctx context.Context, _ *Tool, _ Call) (*Result, error) {
			started <- tctx
			select {
			case o := <-x.outcome:
				return o.res, o.err
			case <-tctx.Done():
			}
			// The framework may still be running the tool: its outcome
			// is what the record must say.
			wait := time.NewTimer(g.cfg.endTimeout)
			defer wait.Stop()
			select {
			case o := <-x.outcome:
				return o.res, o.err
			case <-wait.C:
				return nil, fmt.Errorf("agentguard: the call's context ended and the tool's outcome was not reported within %s: the tool may have run", g.cfg.endTimeout)
			}
		})
	}()
	select {
	case tctx := <-started:
		return tctx, x, nil
	case <-x.done:
		// The tool was handed out after all (End gives its outcome).
		select {
		case tctx := <-started:
			return tctx, x, nil
		default:
		}
		return ctx, nil, x.err
	}
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
	x.once.Do(func() { x.outcome <- outcome{res, err} })
	<-x.done
	return x.res, x.err
}
