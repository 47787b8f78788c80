package audit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
)

// TestTee: every sink gets every event, in order, even after one failed;
// the failures come back joined, each naming its sink's position.
func TestTee(t *testing.T) {
	var order []string
	tap := func(name string, err error) audit.Sink {
		return audit.SinkFunc(func(_ context.Context, e audit.Event) error {
			order = append(order, name+":"+e.Task)
			return err
		})
	}
	errA, errC := errors.New("disk full"), errors.New("collector down")
	last := audittest.NewRecorder()
	sink := audit.Tee(tap("a", errA), tap("b", nil), tap("c", errC), last)

	err := sink.Write(context.Background(), audit.Event{Kind: audit.KindTaskStart, Task: "t1"})
	if fmt.Sprint(order) != "[a:t1 b:t1 c:t1]" {
		t.Errorf("written in order %v", order)
	}
	if n := len(last.Events()); n != 1 {
		t.Errorf("the last sink got %d events", n)
	}
	if !errors.Is(err, errA) || !errors.Is(err, errC) {
		t.Fatalf("error %v does not hold both failures", err)
	}
	if want := "audit: sink 0: disk full\naudit: sink 2: collector down"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	var se *audit.SinkError
	if !errors.As(err, &se) || se.Index != 0 || se.Err != errA {
		t.Errorf("errors.As = %+v", se)
	}

	order = nil
	if err := audit.Tee(tap("a", nil), tap("b", nil)).Write(context.Background(), audit.Event{Task: "t2"}); err != nil {
		t.Errorf("no sink failed, Write = %v", err)
	}
	if fmt.Sprint(order) != "[a:t2 b:t2]" {
		t.Errorf("written in order %v", order)
	}
}

// TestTeeNoSink: a tee that would write nowhere fails closed.
func TestTeeNoSink(t *testing.T) {
	if err := audit.Tee().Write(context.Background(), audit.Event{}); !errors.Is(err, audit.ErrNoSink) {
		t.Errorf("Write = %v, want ErrNoSink", err)
	}
	if err := audit.Tee(nil, nil).Write(context.Background(), audit.Event{}); !errors.Is(err, audit.ErrNilSink) {
		t.Errorf("Tee(nil, nil): Write = %v, want ErrNilSink", err)
	}
}

// TestTeeCopiesArguments: changing the slice given to Tee later does not
// change the sinks written to.
func TestTeeCopiesArguments(t *testing.T) {
	a, b := audittest.NewRecorder(), audittest.NewRecorder()
	sinks := []audit.Sink{a}
	sink := audit.Tee(sinks...)
	sinks[0] = b
	if err := sink.Write(context.Background(), audit.Event{}); err != nil {
		t.Fatal(err)
	}
	if len(a.Events()) != 1 || len(b.Events()) != 0 {
		t.Errorf("wrote to a %d, b %d", len(a.Events()), len(b.Events()))
	}
}

// TestTeePanic: a sink that panics does not stop the sinks after it; its
// panic comes back as a *SinkError wrapping ErrSinkPanic (and the panic's
// error, when it is one).
func TestTeePanic(t *testing.T) {
	first, last := audittest.NewRecorder(), audittest.NewRecorder()
	errBroken := errors.New("broken pipe")
	sink := audit.Tee(
		first,
		audit.SinkFunc(func(context.Context, audit.Event) error { panic("boom") }),
		audit.SinkFunc(func(context.Context, audit.Event) error { panic(errBroken) }),
		last,
	)
	err := sink.Write(context.Background(), audit.Event{Kind: audit.KindToolCall, Tool: "refund"})
	if len(first.Events()) != 1 || len(last.Events()) != 1 {
		t.Errorf("first got %d events, last %d; want 1 each", len(first.Events()), len(last.Events()))
	}
	if !errors.Is(err, audit.ErrSinkPanic) || !errors.Is(err, errBroken) {
		t.Fatalf("Write = %v, want ErrSinkPanic and the panic's error", err)
	}
	want := "audit: sink 1: audit: sink panicked: boom\naudit: sink 2: audit: sink panicked: broken pipe"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	var se *audit.SinkError
	if !errors.As(err, &se) || se.Index != 1 || !errors.Is(se, audit.ErrSinkPanic) {
		t.Errorf("errors.As = %+v", se)
	}

	// A sink that panics once, then works, is written to again.
	n := 0
	flaky := audit.Tee(audit.SinkFunc(func(context.Context, audit.Event) error {
		if n++; n == 1 {
			panic("once")
		}
		return nil
	}))
	if err := flaky.Write(context.Background(), audit.Event{}); !errors.Is(err, audit.ErrSinkPanic) {
		t.Errorf("first Write = %v", err)
	}
	if err := flaky.Write(context.Background(), audit.Event{}); err != nil {
		t.Errorf("second Write = %v", err)
	}
}

// mapSink is a sink of a map type, nil or not.
type mapSink map[string]int

func (m mapSink) Write(_ context.Context, e audit.Event) error {
	m[e.Task]++
	return nil
}

// valueSink is a sink that is a plain value, never nil.
type valueSink struct{ n *int }

func (v valueSink) Write(context.Context, audit.Event) error {
	*v.n++
	return nil
}

// TestTeeTypedNil: nil values of a pointer, func or map type are skipped
// like the nil interface; other values are kept.
func TestTeeTypedNil(t *testing.T) {
	rec := audittest.NewRecorder()
	m := mapSink{}
	var n int
	sink := audit.Tee((*audit.FileSink)(nil), audit.SinkFunc(nil), mapSink(nil), (*audittest.Recorder)(nil),
		rec, m, valueSink{&n})
	err := sink.Write(context.Background(), audit.Event{Task: "t"})
	// Each nil sink fails the write (a constructor's error was ignored):
	// a guard in strict mode denies rather than lose part of its trail.
	if !errors.Is(err, audit.ErrNilSink) {
		t.Fatalf("Write = %v, want ErrNilSink", err)
	}
	for _, i := range []int{0, 1, 2, 3} {
		if !strings.Contains(err.Error(), fmt.Sprintf("audit: sink %d: audit: nil sink", i)) {
			t.Errorf("error %q does not name nil sink %d", err, i)
		}
	}
	// The sinks that exist are still written to.
	if len(rec.Events()) != 1 || m["t"] != 1 || n != 1 {
		t.Errorf("recorder %d, map %d, value %d; want 1 each", len(rec.Events()), m["t"], n)
	}
	if err := audit.Tee().Write(context.Background(), audit.Event{}); !errors.Is(err, audit.ErrNoSink) {
		t.Errorf("a Tee of no sink: Write = %v, want ErrNoSink", err)
	}
}

// Tee writes to every sink and names the ones that failed: a guard in
// strict mode denies the call.
func ExampleTee() {
	kept := audittest.NewRecorder()
	down := audit.SinkFunc(func(context.Context, audit.Event) error { return errors.New("collector unreachable") })
	sink := audit.Tee(kept, down)

	err := sink.Write(context.Background(), audit.Event{Kind: audit.KindToolCall, Tool: "refund"})
	fmt.Println(err)
	fmt.Println(len(kept.Events()), "event kept")
	// Output:
	// audit: sink 1: collector unreachable
	// 1 event kept
}
