// Package audittest provides an in-memory audit sink for tests.
package audittest

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/agentguard/go-sdk/audit"
)

// Recorder is an audit.Sink that keeps every event in memory. Set Err to make
// it fail (for testing strict mode). It is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	events []audit.Event
	err    error
}

var _ audit.Sink = (*Recorder)(nil)

// ErrSinkFailed is the error a Recorder returns after Fail.
var ErrSinkFailed = errors.New("audittest: sink failed")

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{} }

// Write records e, or returns the error set by Fail without recording.
func (r *Recorder) Write(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.events = append(r.events, e)
	return nil
}

// Fail makes every following Write return err (ErrSinkFailed if nil).
// Fail(nil) after Fail(err) does not restore it; use Recover.
func (r *Recorder) Fail(err error) {
	if err == nil {
		err = ErrSinkFailed
	}
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// Recover makes Write succeed again.
func (r *Recorder) Recover() {
	r.mu.Lock()
	r.err = nil
	r.mu.Unlock()
}

// Events returns a copy of the recorded events, oldest first.
func (r *Recorder) Events() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Kind returns the recorded events of kind k, oldest first.
func (r *Recorder) Kind(k audit.Kind) []audit.Event {
	var out []audit.Event
	for _, e := range r.Events() {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// Last returns the newest event, and false if there is none.
func (r *Recorder) Last() (audit.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		return audit.Event{}, false
	}
	return r.events[len(r.events)-1], true
}

// Reset forgets every event.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}
