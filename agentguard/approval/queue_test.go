package approval_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/identity"
)

// next waits for the queue's next request, failing the test after a while.
func next(t *testing.T, q *approval.Queue) *agentguard.ApprovalRequest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := q.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return req
}

func wantPendingEmpty(t *testing.T, q *approval.Queue) {
	t.Helper()
	if p := q.Pending(); len(p) != 0 {
		t.Fatalf("Pending() = %d requests after the outcome, want none (first %s)", len(p), p[0].ID)
	}
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("call did not return")
		return nil
	}
}

func TestQueueGrantRunsCallOnce(t *testing.T) {
	q := approval.NewQueue()
	env := guardWith(t, "manager", q)
	var runs atomic.Int64
	done := invoke(context.Background(), env.Guard, counted("refund", &runs), `{"amount": 40}`)

	req := next(t, q)
	// The guard is blocked in Approve: the tool cannot have run.
	if n := runs.Load(); n != 0 {
		t.Fatalf("tool ran %d times before the grant", n)
	}
	select {
	case err := <-done:
		t.Fatalf("call returned before the grant: %v", err)
	default:
	}
	if req.Tool != "refund" || string(req.Args) != `{"amount":40}` || req.Kind != "manager" ||
		req.Agent.ID.String() != agentguardtest.AgentID || req.Action != agentguard.ApproveCall ||
		req.Digest == "" || req.ExpiresAt.IsZero() {
		t.Fatalf("request = %+v", req)
	}
	if p := q.Pending(); len(p) != 1 || p[0].ID != req.ID {
		t.Fatalf("Pending() = %v, want the one request", p)
	}
	if err := q.Grant(req.ID, "alice", "checked"); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err != nil {
		t.Fatalf("granted call: %v", err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("tool ran %d times, want 1", n)
	}
	a := wantApproval(t, env, agentguard.ApprovalGranted, "alice")
	if a.Reason != "checked" || a.RequestID != req.ID || a.Digest != req.Digest {
		t.Fatalf("audit approval = %+v", a)
	}
	wantPendingEmpty(t, q)
	if err := q.Grant(req.ID, "bob", ""); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("Grant after the outcome: %v, want ErrNotPending", err)
	}
}

func TestQueueRefusal(t *testing.T) {
	q := approval.NewQueue()
	env := guardWith(t, "manager", q)
	var runs atomic.Int64
	done := invoke(context.Background(), env.Guard, counted("refund", &runs), `{"amount": 4000}`)
	req := next(t, q)
	if err := q.Refuse(req.ID, "bob", "too much"); err != nil {
		t.Fatal(err)
	}
	err := wait(t, done)
	if !errors.Is(err, agentguard.ErrApprovalRequired) || !errors.Is(err, agentguard.ErrDenied) {
		t.Fatalf("refused call: %v, want ErrApprovalRequired", err)
	}
	if runs.Load() != 0 {
		t.Fatal("refused call ran")
	}
	if a := wantApproval(t, env, agentguard.ApprovalRefused, "bob"); a.Reason != "too much" {
		t.Fatalf("audit reason = %q", a.Reason)
	}
	wantPendingEmpty(t, q)
}

func TestQueueTimeout(t *testing.T) {
	for _, tc := range []struct {
		name  string
		queue []approval.QueueOption
		guard []agentguard.Option
	}{
		{name: "queue timeout", queue: []approval.QueueOption{approval.WithTimeout(20 * time.Millisecond)}},
		{name: "request expiry", guard: []agentguard.Option{agentguard.WithApprovalTimeout(50 * time.Millisecond)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := approval.NewQueue(tc.queue...)
			env := guardWith(t, "manager", q, tc.guard...)
			var runs atomic.Int64
			// Nobody decides.
			_, err := env.Guard.Invoke(context.Background(), counted("refund", &runs), agentguard.Call{})
			if !errors.Is(err, agentguard.ErrApprovalRequired) || !errors.Is(err, agentguard.ErrApprovalTimeout) {
				t.Fatalf("undecided call: %v, want ErrApprovalRequired wrapping ErrApprovalTimeout", err)
			}
			if runs.Load() != 0 {
				t.Fatal("undecided call ran")
			}
			a := wantApproval(t, env, agentguard.ApprovalTimeout)
			wantPendingEmpty(t, q)
			if err := q.Grant(a.RequestID, "alice", ""); !errors.Is(err, approval.ErrNotPending) {
				t.Fatalf("Grant after the timeout: %v, want ErrNotPending", err)
			}
		})
	}
}

// request returns a request as the guard would send it.
func request(id, kind string) *agentguard.ApprovalRequest {
	return &agentguard.ApprovalRequest{ID: id, Action: agentguard.ApproveCall, Tool: "refund",
		Agent: identity.MustParse(agentguardtest.AgentID),
		Kind:  kind, Digest: "sha256:" + id, ExpiresAt: time.Now().Add(time.Minute)}
}

func TestQueueCancelled(t *testing.T) {
	q := approval.NewQueue()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := q.Approve(ctx, request("r1", ""))
		done <- err
	}()
	next(t, q)
	cancel()
	err := wait(t, done)
	if !errors.Is(err, context.Canceled) || errors.Is(err, agentguard.ErrApprovalTimeout) {
		t.Fatalf("cancelled Approve: %v, want context.Canceled and no timeout", err)
	}
	wantPendingEmpty(t, q)
}

func TestQueueDeadline(t *testing.T) {
	// Called directly, Approve is bounded by its context's deadline.
	q := approval.NewQueue()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := q.Approve(ctx, request("r1", ""))
	if !errors.Is(err, agentguard.ErrApprovalTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Approve past its deadline: %v, want ErrApprovalTimeout", err)
	}
	wantPendingEmpty(t, q)
}

func TestQueueQuorum(t *testing.T) {
	q := approval.NewQueue(approval.WithQuorum("two-person", 2))
	env := guardWith(t, "two-person", q)
	var runs atomic.Int64
	tool := counted("refund", &runs)

	done := invoke(context.Background(), env.Guard, tool, `{"amount": 1}`)
	req := next(t, q)
	if err := q.Grant(req.ID, "alice", "ok"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("call returned after one grant of two: %v", err)
	default:
	}
	if err := q.Grant(req.ID, "alice", "again"); !errors.Is(err, approval.ErrDuplicateApprover) {
		t.Fatalf("second grant by alice: %v, want ErrDuplicateApprover", err)
	}
	if err := q.Grant(req.ID, "", ""); !errors.Is(err, approval.ErrNoApprover) {
		t.Fatalf("grant by nobody: %v, want ErrNoApprover", err)
	}
	if len(q.Pending()) != 1 {
		t.Fatal("request left the queue before its quorum")
	}
	if err := q.Grant(req.ID, "bob", "fine"); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if a := wantApproval(t, env, agentguard.ApprovalGranted, "alice", "bob"); a.Reason != "ok; fine" {
		t.Fatalf("audit reason = %q", a.Reason)
	}

	// One refusal refuses, even after a grant, even by a granter.
	done = invoke(context.Background(), env.Guard, tool, `{"amount": 2}`)
	req = next(t, q)
	if err := q.Grant(req.ID, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if err := q.Refuse(req.ID, "carol", "no"); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); !errors.Is(err, agentguard.ErrApprovalRequired) {
		t.Fatalf("refused call: %v", err)
	}
	wantApproval(t, env, agentguard.ApprovalRefused, "carol")
	if runs.Load() != 1 {
		t.Fatalf("runs = %d, want 1", runs.Load())
	}
	wantPendingEmpty(t, q)
}

func TestQueueQuorumOfSeveralKinds(t *testing.T) {
	// A request of several kinds needs the largest of their quorums.
	q := approval.NewQueue(approval.WithQuorum("two-person", 2), approval.WithQuorum("board", 3))
	for _, tc := range []struct {
		kind string
		need int
	}{{"", 1}, {"manager", 1}, {"manager,two-person", 2}, {"board,two-person", 3}} {
		done := make(chan agentguard.Approval, 1)
		go func() {
			a, _ := q.Approve(context.Background(), request("r-"+tc.kind, tc.kind))
			done <- a
		}()
		req := next(t, q)
		for i := range tc.need {
			select {
			case <-done:
				t.Fatalf("kind %q: decided after %d grants, want %d", tc.kind, i, tc.need)
			default:
			}
			if err := q.Grant(req.ID, fmt.Sprint("approver-", i), ""); err != nil {
				t.Fatal(err)
			}
		}
		a := <-done
		if !a.Granted || len(a.Approvers) != tc.need || a.RequestID != req.ID || a.Digest != req.Digest {
			t.Fatalf("kind %q: approval %+v", tc.kind, a)
		}
	}
}

func TestQueueClose(t *testing.T) {
	q := approval.NewQueue()
	env := guardWith(t, "manager", q)
	var runs atomic.Int64
	tool := counted("refund", &runs)
	d1 := invoke(context.Background(), env.Guard, tool, `{"amount": 1}`)
	d2 := invoke(context.Background(), env.Guard, tool, `{"amount": 2}`)
	next(t, q)
	next(t, q)
	// A scripted approver waiting for more wakes on Close.
	waiting := make(chan error, 1)
	go func() {
		_, err := q.Next(context.Background())
		waiting <- err
	}()

	q.Close()
	q.Close() // idempotent
	for _, d := range []<-chan error{d1, d2} {
		if err := wait(t, d); !errors.Is(err, agentguard.ErrApprovalRequired) {
			t.Fatalf("call pending at Close: %v", err)
		}
	}
	if runs.Load() != 0 {
		t.Fatal("a call ran after Close")
	}
	for _, e := range env.Audit.Events() {
		if e.Approval != nil && e.Approval.Status != agentguard.ApprovalRefused {
			t.Fatalf("audit approval %+v, want refused", e.Approval)
		}
	}
	if err := wait(t, waiting); !errors.Is(err, approval.ErrClosed) {
		t.Fatalf("Next across Close: %v", err)
	}
	if _, err := q.Approve(context.Background(), request("late", "")); !errors.Is(err, approval.ErrClosed) {
		t.Fatalf("Approve after Close: %v", err)
	}
	if _, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{}); !errors.Is(err, approval.ErrClosed) {
		t.Fatalf("call after Close: %v, want ErrClosed", err)
	}
	wantPendingEmpty(t, q)
}

func TestQueueNextHandsOutOnce(t *testing.T) {
	q := approval.NewQueue()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer q.Close()
	ask := func(id string) {
		wg.Go(func() { _, _ = q.Approve(context.Background(), request(id, "")) })
	}
	ask("r1")
	if r := next(t, q); r.ID != "r1" {
		t.Fatalf("Next = %s, want r1", r.ID)
	}
	ask("r2")
	if r := next(t, q); r.ID != "r2" {
		t.Fatalf("Next = %s, want r2 (r1 was handed out already)", r.ID)
	}
	// Nothing left to hand out: Next waits, here until its context ends.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if r, err := q.Next(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with everything handed out = %v, %v; want context.Canceled", r, err)
	}
	p := q.Pending()
	if len(p) != 2 || p[0].ID != "r1" || p[1].ID != "r2" {
		t.Fatalf("Pending() lists %v, want r1, r2", p)
	}
	// Copies: changing one changes nothing queued.
	p[0].Tool = "changed"
	if q.Pending()[0].Tool != "refund" {
		t.Fatal("Pending returned the queued request, not a copy")
	}
	got := make(chan string, 1)
	go func() {
		r, err := q.Next(context.Background())
		if err != nil {
			got <- err.Error()
			return
		}
		got <- r.ID
	}()
	ask("r3")
	if id := <-got; id != "r3" {
		t.Fatalf("waiting Next = %s, want r3", id)
	}
}

func TestQueueBadRequests(t *testing.T) {
	q := approval.NewQueue()
	defer q.Close()
	go func() { _, _ = q.Approve(context.Background(), request("r1", "")) }()
	next(t, q)
	for name, req := range map[string]*agentguard.ApprovalRequest{
		"nil":          nil,
		"no ID":        request("", ""),
		"duplicate ID": request("r1", ""),
		"args not JSON": func() *agentguard.ApprovalRequest {
			r := request("r2", "")
			r.Args = []byte("{nope")
			return r
		}(),
	} {
		if _, err := q.Approve(context.Background(), req); err == nil {
			t.Errorf("%s: Approve accepted it", name)
		}
	}
	if p := q.Pending(); len(p) != 1 || p[0].ID != "r1" {
		t.Fatalf("bad requests changed the queue: %v", p)
	}
	if err := q.Refuse("r1", "", "no"); !errors.Is(err, approval.ErrNoApprover) {
		t.Fatalf("Refuse by nobody: %v", err)
	}
	if err := q.Grant("unknown", "alice", ""); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("Grant of an unknown request: %v", err)
	}
}

// TestQueueConcurrent: many calls and several scripted approvers at once.
// Every grant runs its call once, every refusal none, and nothing is left
// pending.
func TestQueueConcurrent(t *testing.T) {
	q := approval.NewQueue()
	env := guardWith(t, "manager", q)
	var runs atomic.Int64
	tool := counted("refund", &runs)
	const calls = 64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	want := int64(0)
	for i := range calls {
		if i%3 != 0 {
			want++
		}
	}
	var granted atomic.Int64
	var approvers sync.WaitGroup
	for i := range 4 {
		approvers.Go(func() {
			for {
				req, err := q.Next(ctx)
				if err != nil {
					return
				}
				_ = q.Pending()
				if strings.Contains(string(req.Args), "grant") {
					granted.Add(1)
					err = q.Grant(req.ID, fmt.Sprint("approver-", i), "")
				} else {
					err = q.Refuse(req.ID, fmt.Sprint("approver-", i), "")
				}
				if err != nil {
					t.Errorf("deciding %s: %v", req.ID, err)
				}
			}
		})
	}
	var callers sync.WaitGroup
	var allowed atomic.Int64
	for i := range calls {
		callers.Go(func() {
			args := fmt.Sprintf(`{"n": %d, "d": "refuse"}`, i)
			if i%3 != 0 {
				args = fmt.Sprintf(`{"n": %d, "d": "grant"}`, i)
			}
			_, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{Args: []byte(args)})
			switch {
			case err == nil:
				allowed.Add(1)
			case !errors.Is(err, agentguard.ErrApprovalRequired):
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	callers.Wait()
	cancel()
	approvers.Wait()
	if runs.Load() != granted.Load() || allowed.Load() != granted.Load() || granted.Load() != want {
		t.Fatalf("runs %d, allowed %d, granted %d", runs.Load(), allowed.Load(), granted.Load())
	}
	wantPendingEmpty(t, q)
}

func BenchmarkQueueApprove(b *testing.B) {
	q := approval.NewQueue()
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			req, err := q.Next(ctx)
			if err != nil {
				return
			}
			_ = q.Grant(req.ID, "bench", "")
		}
	}()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := q.Approve(ctx, request(fmt.Sprint("r", i), "")); err != nil {
			b.Fatal(err)
		}
	}
}

// TestQueueQuorumNameVariants: spellings of one name that differ in case
// or surrounding spaces are one approver, and count once toward a quorum.
func TestQueueQuorumNameVariants(t *testing.T) {
	q := approval.NewQueue(approval.WithQuorum("two-person", 2))
	defer q.Close()
	done := make(chan agentguard.Approval, 1)
	go func() {
		a, _ := q.Approve(context.Background(), request("r1", "two-person"))
		done <- a
	}()
	req := next(t, q)
	if err := q.Grant(req.ID, "alice", "ok"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Alice ", "ALICE", " alice", "\talIce\n"} {
		if err := q.Grant(req.ID, name, ""); !errors.Is(err, approval.ErrDuplicateApprover) {
			t.Errorf("grant by %q after alice: %v, want ErrDuplicateApprover", name, err)
		}
	}
	for _, name := range []string{"", " ", "\t\n"} {
		if err := q.Grant(req.ID, name, ""); !errors.Is(err, approval.ErrNoApprover) {
			t.Errorf("grant by %q: %v, want ErrNoApprover", name, err)
		}
	}
	select {
	case a := <-done:
		t.Fatalf("one person's spellings met a two-person quorum: %+v", a)
	default:
	}
	if err := q.Grant(req.ID, " Bob ", "fine"); err != nil {
		t.Fatal(err)
	}
	// Names are recorded without their surrounding spaces.
	if a := <-done; !a.Granted || !slices.Equal(a.Approvers, []string{"alice", "Bob"}) {
		t.Fatalf("approval %+v, want granted by alice and Bob", a)
	}
}

// TestQueueQuorumKindCase: kinds match without regard to case or spaces,
// in WithQuorum and in each kind of a request's comma-separated Kind.
func TestQueueQuorumKindCase(t *testing.T) {
	q := approval.NewQueue(approval.WithQuorum("two-person", 2), approval.WithQuorum(" Board ", 3))
	defer q.Close()
	for _, tc := range []struct {
		kind string
		need int
	}{{"Two-Person", 2}, {"TWO-PERSON", 2}, {"manager, Two-Person ", 2}, {"board", 3}, {"Manager,BOARD", 3}} {
		done := make(chan agentguard.Approval, 1)
		go func() {
			a, _ := q.Approve(context.Background(), request("r-"+tc.kind, tc.kind))
			done <- a
		}()
		req := next(t, q)
		for i := range tc.need {
			select {
			case a := <-done:
				t.Fatalf("kind %q: decided after %d grants, want %d: %+v", tc.kind, i, tc.need, a)
			default:
			}
			if err := q.Grant(req.ID, fmt.Sprint("approver-", i), ""); err != nil {
				t.Fatal(err)
			}
		}
		if a := waitApproval(t, done); !a.Granted || len(a.Approvers) != tc.need {
			t.Fatalf("kind %q: approval %+v", tc.kind, a)
		}
	}

	// Through the guard: @approval("Two-Person") needs the quorum of
	// WithQuorum("two-person", 2).
	env := guardWith(t, "Two-Person", q)
	var runs atomic.Int64
	call := invoke(context.Background(), env.Guard, counted("refund", &runs), `{}`)
	req := next(t, q)
	if err := q.Grant(req.ID, "alice", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-call:
		t.Fatalf("call returned after one grant of two: %v", err)
	default:
	}
	if p := q.Pending(); len(p) != 1 || runs.Load() != 0 {
		t.Fatalf("one grant decided a two-person request: pending %d, runs %d", len(p), runs.Load())
	}
	if err := q.Grant(req.ID, "bob", ""); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, call); err != nil {
		t.Fatal(err)
	}
	wantApproval(t, env, agentguard.ApprovalGranted, "alice", "bob")
}

func waitApproval(t *testing.T, done <-chan agentguard.Approval) agentguard.Approval {
	t.Helper()
	select {
	case a := <-done:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("Approve did not return")
		return agentguard.Approval{}
	}
}

// TestQueueZeroValue: a zero Queue is an empty queue without options:
// it queues, hands out, decides, lists and closes without panicking.
func TestQueueZeroValue(t *testing.T) {
	var q approval.Queue
	if p := q.Pending(); len(p) != 0 {
		t.Fatalf("Pending() of a zero queue = %v", p)
	}
	if err := q.Grant("r0", "alice", ""); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("Grant on a zero queue: %v", err)
	}
	done := make(chan agentguard.Approval, 1)
	go func() {
		a, err := q.Approve(context.Background(), request("r1", "two-person"))
		if err != nil {
			t.Error(err)
		}
		done <- a
	}()
	req := next(t, &q)
	srv := serveQueue(t, &q)
	if status, body := do(t, "GET", srv.URL+"/approvals/", aliceToken, ""); status != http.StatusOK || !strings.Contains(string(body), `"r1"`) {
		t.Fatalf("listing of a zero queue = %d %s", status, body)
	}
	if err := q.Grant(req.ID, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if a := waitApproval(t, done); !a.Granted || a.RequestID != "r1" {
		t.Fatalf("approval %+v", a)
	}
	go func() { _, _ = q.Approve(context.Background(), request("r2", "")) }()
	next(t, &q)
	q.Close()
	if _, err := q.Next(context.Background()); !errors.Is(err, approval.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	wantPendingEmpty(t, &q)

	var closed approval.Queue
	closed.Close()
	if _, err := closed.Approve(context.Background(), request("r1", "")); !errors.Is(err, approval.ErrClosed) {
		t.Fatalf("Approve on a closed zero queue: %v", err)
	}
}
