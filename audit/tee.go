package audit

import (
	"context"
	"errors"
	"fmt"
	"reflect"
)

// ErrNoSink is the error of every write to a Tee given no sink: an audit
// trail that goes nowhere is refused, not silently dropped. Use Discard to
// keep no trail on purpose.
var ErrNoSink = errors.New("audit: tee has no sink")

// ErrNilSink is wrapped by the *SinkError a Tee returns, on every write,
// for a nil sink it was given: most often the result of a constructor
// whose error was ignored, such as NewFileSink's. The other sinks are
// still written to, but the write fails, so a guard in strict mode
// denies the call rather than run it with part of its audit trail gone.
var ErrNilSink = errors.New("audit: nil sink")

// ErrSinkPanic is wrapped by the *SinkError of a sink that panicked in a
// Tee; the error says what the panic's value was.
var ErrSinkPanic = errors.New("audit: sink panicked")

// SinkError is the failure of one sink of a Tee.
type SinkError struct {
	// Index is the sink's position in the arguments of Tee, from 0.
	Index int
	// Err is what the sink returned, or ErrSinkPanic wrapped with the
	// panic's value.
	Err error
}

func (e *SinkError) Error() string { return fmt.Sprintf("audit: sink %d: %v", e.Index, e.Err) }

// Unwrap returns the sink's error.
func (e *SinkError) Unwrap() error { return e.Err }

// Tee returns a sink that writes each event to every sink in sinks, in
// order. It writes to all of them even when one fails or panics, and
// returns the failures joined, each a *SinkError naming the sink's
// position; a panic is recovered and becomes a *SinkError wrapping
// ErrSinkPanic. A guard in strict mode therefore denies a call when any of
// its sinks fails.
//
// A nil sink (the nil interface, or a nil value of a pointer, func, map,
// slice or channel type, such as the (*FileSink)(nil) a failed
// constructor returns; checked once, when Tee is called) fails every
// write with a *SinkError wrapping ErrNilSink: a sink that could not be
// made is a failure, never silently left out. A Tee of no sink fails
// every write with ErrNoSink.
//
// A typical pairing is the chained file, the durable and verifiable copy,
// with an otelaudit.Sink that ships the same events to a collector.
func Tee(sinks ...Sink) Sink {
	t := make(tee, 0, len(sinks))
	for i, s := range sinks {
		if isNil(s) {
			s = nilSink{}
		}
		t = append(t, indexed{i: i, s: s})
	}
	return t
}

// isNil reports whether s is nil or holds a nil value of a type that can be
// nil, which has nothing to write with.
func isNil(s Sink) bool {
	if s == nil {
		return true
	}
	switch v := reflect.ValueOf(s); v.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Slice, reflect.Chan, reflect.Interface, reflect.UnsafePointer:
		return v.IsNil()
	}
	return false
}

// nilSink stands for a nil sink given to Tee.
type nilSink struct{}

func (nilSink) Write(context.Context, Event) error { return ErrNilSink }

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
		if err := s.write(ctx, e); err != nil {
			errs = append(errs, &SinkError{Index: s.i, Err: err})
		}
	}
	return errors.Join(errs...)
}

// write writes e to the sink, turning a panic into an error so that the
// sinks after it are still written to.
func (s indexed) write(ctx context.Context, e Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if rerr, ok := r.(error); ok {
				err = fmt.Errorf("%w: %w", ErrSinkPanic, rerr)
			} else {
				err = fmt.Errorf("%w: %v", ErrSinkPanic, r)
			}
		}
	}()
	return s.s.Write(ctx, e)
}
