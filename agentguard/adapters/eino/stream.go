package einoguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"

	"github.com/agentguard/go-sdk/agentguard"
)

// guardStream runs one call of a streaming tool through the guard. The
// guard decides before the tool starts (Guard.Begin); a denial is a
// stream of one chunk, deny's form of the text for the model. An allowed
// call's stream is passed on chunk by chunk, and the call is recorded when
// the stream ends (follow), so that its audit record and span say how it
// ended and its task's credentials stay valid while the tool streams.
func guardStream[T any](s *Toolset, ctx context.Context, in *compose.ToolInput,
	next func(context.Context, *compose.ToolInput) (*schema.StreamReader[T], error), deny func(string) T) (*schema.StreamReader[T], error) {
	if proceed, err := s.resumed(ctx, in); !proceed {
		return nil, err
	}
	call := agentguard.Call{ID: in.CallID, Name: in.Name, Args: json.RawMessage(in.Arguments)}
	denied := func(err error) (*schema.StreamReader[T], error) {
		text, err := s.refused(ctx, in, err)
		if err != nil {
			return nil, err
		}
		return schema.StreamReaderFromArray([]T{deny(text)}), nil
	}
	t, ok := s.reg.Lookup(in.Name)
	if !ok {
		// Not one of the toolset's tools (a tool list given to this run
		// only, say): the registry denies and audits it.
		_, err := s.reg.Call(ctx, call)
		if err == nil {
			err = errNotInNode
		}
		return denied(err)
	}
	tctx, x, err := s.g.Begin(ctx, t, call)
	if err != nil {
		return denied(err)
	}
	src, err := start(tctx, x, in, next)
	if err != nil {
		var failed *agentguard.ToolError
		if errors.As(err, &failed) {
			return nil, err
		}
		// The audit record of the failure could not be written.
		return denied(err)
	}
	return follow(x, src), nil
}

// start starts the tool's stream in the call's context. If the tool fails
// to start (or panics), the call ends here.
func start[T any](ctx context.Context, x *agentguard.Execution, in *compose.ToolInput,
	next func(context.Context, *compose.ToolInput) (*schema.StreamReader[T], error)) (sr *schema.StreamReader[T], err error) {
	defer func() {
		if r := recover(); r != nil {
			_, _ = x.End(nil, fmt.Errorf("einoguard: tool %q panicked", in.Name))
			panic(r)
		}
	}()
	sr, err = next(ctx, in)
	if err != nil {
		_, err = x.End(nil, err)
		return nil, err
	}
	return sr, nil
}

// follow passes src on and ends x when src ends: at its end (the call
// succeeded), at its first error (the call failed: the reader gets the
// guard's *agentguard.ToolError, scrubbed of credential values, and the
// stream stops), or when the reader closes the stream early (recorded as
// ErrStreamClosed). The goroutine that passes the chunks on stops then, as
// eino's own stream conversions do; like every eino stream, the result
// must be read to its end or closed.
//
// Chunks reach the reader as the tool sends them, before the call is
// recorded: if the audit record cannot be written (strict mode), the reader
// gets the guard's error after the chunks rather than instead of them.
func follow[T any](x *agentguard.Execution, src *schema.StreamReader[T]) *schema.StreamReader[T] {
	out, w := schema.Pipe[T](0)
	go func() {
		defer w.Close()
		defer src.Close()
		var zero T
		for {
			chunk, err := src.Recv()
			if errors.Is(err, io.EOF) {
				if _, err := x.End(&agentguard.Result{}, nil); err != nil {
					w.Send(zero, err)
				}
				return
			}
			if err != nil {
				_, err = x.End(nil, err)
				w.Send(zero, err)
				return
			}
			if closed := w.Send(chunk, nil); closed {
				_, _ = x.End(nil, ErrStreamClosed)
				return
			}
		}
	}()
	return out
}
