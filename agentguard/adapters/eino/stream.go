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
	"github.com/agentguard/go-sdk/credentials"
)

// guardStream runs one call of a streaming tool through the guard. The
// guard decides before the tool starts (Guard.Begin); a denial is a
// stream of one chunk, deny's form of the text for the model. An allowed
// call's tool runs with the canonical arguments policy saw, and its stream
// is followed (followBuffered, or followLive with WithLiveStreams) so that
// the call is recorded when the stream ends, its audit record and span say
// how it ended, and its task's credentials stay valid while the tool
// streams.
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
		// only, say): denied and audited as a call of an unknown tool.
		_, err := s.unlisted.Call(ctx, call)
		if err == nil {
			err = errNotInNode
		}
		return denied(err)
	}
	tctx, x, err := s.g.Begin(ctx, t, call)
	if err != nil {
		return denied(err)
	}
	// The tool runs with what policy saw, as an invokable tool does: the
	// arguments' canonical form, which Begin has just checked.
	args, err := agentguard.CanonicalArgs(call.Args)
	if err != nil {
		_, err = x.End(nil, fmt.Errorf("einoguard: tool %q: arguments: %w", in.Name, err))
		return nil, err
	}
	c := *in
	c.Arguments = string(args)
	src, err := start(tctx, x, &c, next)
	if err != nil {
		var failed *agentguard.ToolError
		if errors.As(err, &failed) {
			return nil, err
		}
		// The audit record of the failure could not be written.
		return denied(err)
	}
	creds := credentials.AllFromContext(tctx)
	if s.live {
		return followLive(x, src, creds, deny), nil
	}
	return followBuffered(x, src, creds, deny), nil
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

// followBuffered reads src to its end, records the call (End), and only
// then passes the chunks on: as a plain tool's result is, a streaming
// tool's output is withheld unless its audit record was written (strict
// mode). The chunks are passed on as the tool sent them, unless together
// they hold a value of creds, even split across chunks: then they are
// passed on as one chunk, with the values removed. A stream that fails is
// recorded as failed, and the reader gets the guard's *agentguard.ToolError
// (which ends the run, as an invokable tool's failure does); a stream whose
// record cannot be written is replaced by the explanation for the model,
// as an invokable tool's result is.
//
// The reader is given a stream that closes itself once unreachable, so
// that the goroutine here ends even when eino drops the stream unread
// (ToolsNode.Stream does when another call of the message fails).
func followBuffered[T any](x *agentguard.Execution, src *schema.StreamReader[T], creds []*credentials.Credential, deny func(string) T) *schema.StreamReader[T] {
	out, w := schema.Pipe[T](0)
	out.SetAutomaticClose()
	go func() {
		defer w.Close()
		chunks, err := drain(src)
		if err == nil {
			chunks, err = scrubAll(chunks, creds)
		}
		if err != nil {
			_, err = x.End(nil, err)
			finish(w, err, deny)
			return
		}
		if _, err := x.End(&agentguard.Result{}, nil); err != nil {
			finish(w, err, deny)
			return
		}
		for _, c := range chunks {
			if closed := w.Send(c, nil); closed {
				return
			}
		}
	}()
	return out
}

// drain reads src to its end, or to its first error, and closes it.
func drain[T any](src *schema.StreamReader[T]) ([]T, error) {
	defer src.Close()
	var chunks []T
	for {
		chunk, err := src.Recv()
		if errors.Is(err, io.EOF) {
			return chunks, nil
		}
		if err != nil {
			return nil, err
		}
		chunks = append(chunks, chunk)
	}
}

// scrubAll removes the values of creds from a whole stream's chunks. When
// the chunks hold none, even split across chunks, they stay as they are;
// otherwise they become one chunk with the values removed.
func scrubAll[T any](chunks []T, creds []*credentials.Credential) ([]T, error) {
	if len(creds) == 0 || len(chunks) == 0 {
		return chunks, nil
	}
	whole, err := joinChunks(chunks)
	if err != nil {
		// Chunks eino cannot concatenate: each is checked alone.
		out := make([]T, len(chunks))
		for i, c := range chunks {
			if out[i], err = scrubChunk(c, creds); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	clean, err := scrubChunk(whole, creds)
	if err != nil {
		return nil, err
	}
	if any(clean) == any(whole) {
		return chunks, nil
	}
	return []T{clean}, nil
}

// followLive passes src on chunk by chunk, each with the values of creds
// removed, and ends x when src ends: at its end (the call succeeded), at
// its first error (the call failed: the reader gets the guard's
// *agentguard.ToolError, scrubbed of credential values, and the stream
// stops), or when the reader closes the stream early (recorded as
// ErrStreamClosed). The chunks reach the reader before the call is
// recorded: if the record cannot be written (strict mode), the stream
// ends with the explanation for the model as its last chunk.
//
// Like followBuffered's, the reader's stream closes itself once
// unreachable, so that the goroutine here always ends.
func followLive[T any](x *agentguard.Execution, src *schema.StreamReader[T], creds []*credentials.Credential, deny func(string) T) *schema.StreamReader[T] {
	out, w := schema.Pipe[T](0)
	out.SetAutomaticClose()
	go func() {
		defer w.Close()
		defer src.Close()
		for {
			chunk, err := src.Recv()
			if errors.Is(err, io.EOF) {
				if _, err := x.End(&agentguard.Result{}, nil); err != nil {
					finish(w, err, deny)
				}
				return
			}
			if err == nil {
				chunk, err = scrubChunk(chunk, creds)
			}
			if err != nil {
				_, err = x.End(nil, err)
				finish(w, err, deny)
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

// finish ends the stream of a call that End did not let through, as an
// invokable tool's call would end: the tool's failure is the stream's
// error (eino ends the run with it); any other refusal (the audit record
// could not be written) is the explanation for the model, as the last
// chunk, and the run goes on.
func finish[T any](w *schema.StreamWriter[T], err error, deny func(string) T) {
	var failed *agentguard.ToolError
	if errors.As(err, &failed) {
		var zero T
		w.Send(zero, err)
		return
	}
	w.Send(deny(agentguard.Explain(err)), nil)
}
