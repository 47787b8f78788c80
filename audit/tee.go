package audit

import (
	"context"
	"errors"
	"fmt"
)

// ErrNoSink is the error of every write to a Tee given no sink: an audit
// trail that goes nowhere is refused, not silently dropped. Use Discard to
// keep no trail on purpose.
var ErrNoSink = errors.New("audit: tee has no sink")

// SinkError is the failure of one sink of a Tee.
type SinkError struct {
	// Index is the sink's position in the arguments of Tee, from 0.
	Index int
	// Err is what the sink returned.
	Err error
}

func (e *SinkError) Error() string { return fmt.Sprintf("audit: sink %d: %v", e.Index, e.Err) }

// Unwrap returns the sink's error.
func (e *SinkError) Unwrap() error { return e.Err }

// Tee returns a sink that writes each event to every sink in sinks, in
// order. It writes to all of them even when one fails, and returns the
// failures joined, each a *SinkError naming the sink's position. A guard in
// strict mode therefore denies a call when any of its sinks fails. Nil
// sinks are skipped; a Tee with no sink fails every write with ErrNoSink.
//
// A typical pairing is the chained file, the durable and verifiable copy,
// with an OTelSink that ships the same events to a collector.
func Tee(sinks ...Sink) Sink {
	t := make(tee, 0, len(sinks))
	for i, s := range sinks {
		if s != nil {
			t = append(t, indexed{i: i, s: s})
		}
	}
	return t
}

type indexed struct {
	i int
	s Sink
}

type tee []indexed

func (t tee) Write(ctx context.Context, e Event) error {
	if len(t) == 0 {
		return ErrNoSink
	}
	var errs []error
	for _, s := range t {
		if err := s.s.Write(ctx, e); err != nil {
			errs = append(errs, &SinkError{Index: s.i, Err: err})
		}
	}
	return errors.Join(errs...)
}
