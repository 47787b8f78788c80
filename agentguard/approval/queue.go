package approval

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/internal/canonical"
)

// decidedMemory is how many decided request IDs a Queue remembers, so that
// a late decision is told "already decided" rather than "unknown".
const decidedMemory = 4096

// Queue is an Approver that holds each request until someone decides it:
// a person through the queue's HTTP handler, or a program through Next,
// Grant and Refuse. All its methods are safe for concurrent use. The zero
// value is an empty queue with no options, ready to use; NewQueue sets
// options.
//
// A request leaves the queue when it is decided, when it times out, when
// the guard stops waiting (its context ends) and when the queue is closed;
// nothing pending outlives the Approve call that asked.
type Queue struct {
	timeout time.Duration
	// quorum maps a kind, folded (foldName), to the grants it needs.
	quorum map[string]int

	mu      sync.Mutex
	pending map[string]*entry
	seq     uint64
	closed  bool
	// changed is closed and replaced whenever a request arrives or the
	// queue closes, waking Next.
	changed chan struct{}
	// decided remembers the IDs of recently decided requests, in a ring.
	decided     map[string]struct{}
	decidedRing []string
	decidedNext int
}

var _ agentguard.Approver = (*Queue)(nil)

// entry is one pending request.
type entry struct {
	req  *agentguard.ApprovalRequest
	seq  uint64
	need int
	// handed says Next has given the request out.
	handed  bool
	grants  []string
	reasons []string
	// done is closed once answer is set, by a decision or Close.
	done   chan struct{}
	answer agentguard.Approval
}

// QueueOption configures a Queue.
type QueueOption func(*Queue)

// WithTimeout refuses, as a timeout, a request nobody decided within d.
// Without it (or with d <= 0) a request waits until the context the guard
// passes ends, which is at the request's ExpiresAt.
func WithTimeout(d time.Duration) QueueOption {
	return func(q *Queue) { q.timeout = d }
}

// WithQuorum makes requests of the given kind need n distinct approvers to
// grant; a single refusal refuses. A request's Kind may list several kinds
// ("manager,two-person"); it then needs the largest quorum of its kinds.
// Kinds without a quorum need one approver. Kinds match without regard to
// case or surrounding spaces: WithQuorum("two-person", 2) applies to an
// @approval("Two-Person") as well.
//
// Approvers count as distinct when their names differ other than in case
// and surrounding spaces: "alice" and "Alice " are one person.
func WithQuorum(kind string, n int) QueueOption {
	return func(q *Queue) {
		if q.quorum == nil {
			q.quorum = map[string]int{}
		}
		q.quorum[foldName(kind)] = n
	}
}

// NewQueue returns an empty queue. Close it to refuse what is still pending
// when the program stops.
func NewQueue(opts ...QueueOption) *Queue {
	q := &Queue{
		quorum:  map[string]int{},
		pending: map[string]*entry{},
		changed: make(chan struct{}),
		decided: map[string]struct{}{},
	}
	for _, o := range opts {
		o(q)
	}
	return q
}

// need is the number of grants a request of kind, a comma-separated list
// of kinds, needs. Kinds are folded as WithQuorum folds them.
func (q *Queue) need(kind string) int {
	n := 1
	for k := range strings.SplitSeq(kind, ",") {
		n = max(n, q.quorum[foldName(k)])
	}
	return n
}

// foldName is the form in which kinds and approver names are compared:
// without surrounding spaces, and case-folded (strings.EqualFold(a, b)
// implies foldName(a) == foldName(b) for trimmed a and b).
func foldName(s string) string { return canonical.Fold(strings.TrimSpace(s)) }

// initLocked makes the maps and the channel a zero Queue lacks.
func (q *Queue) initLocked() {
	if q.pending == nil {
		q.pending = map[string]*entry{}
	}
	if q.decided == nil {
		q.decided = map[string]struct{}{}
	}
	if q.changed == nil {
		q.changed = make(chan struct{})
	}
}

// Approve queues req and waits until it is decided, it times out
// (WithTimeout), ctx ends or the queue is closed. The answer is bound to
// req. A timeout, or ctx's deadline passing, gives an error wrapping
// agentguard.ErrApprovalTimeout; a cancelled ctx gives one wrapping
// ctx.Err(); a closed queue ErrClosed. Approve does not read
// req.ExpiresAt: the guard's ctx carries it as its deadline.
func (q *Queue) Approve(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
	switch {
	case req == nil || req.ID == "":
		return agentguard.Approval{}, errors.New("approval: request without an ID")
	case len(req.Args) > 0 && !json.Valid(req.Args):
		return agentguard.Approval{}, fmt.Errorf("approval: request %s: arguments are not JSON", req.ID)
	}
	var timeout <-chan time.Time
	if q.timeout > 0 {
		t := time.NewTimer(q.timeout)
		defer t.Stop()
		timeout = t.C
	}
	e := &entry{req: cloneRequest(req), need: q.need(req.Kind), done: make(chan struct{})}

	q.mu.Lock()
	q.initLocked()
	if q.closed {
		q.mu.Unlock()
		return agentguard.Approval{}, ErrClosed
	}
	if _, dup := q.pending[req.ID]; dup {
		q.mu.Unlock()
		return agentguard.Approval{}, fmt.Errorf("approval: request %s is already queued", req.ID)
	}
	q.seq++
	e.seq = q.seq
	q.pending[req.ID] = e
	q.notifyLocked()
	q.mu.Unlock()

	select {
	case <-e.done:
		return e.answer, nil
	case <-timeout:
		return q.withdraw(e, fmt.Errorf("approval: request %s undecided after %v: %w", req.ID, q.timeout, agentguard.ErrApprovalTimeout))
	case <-ctx.Done():
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("approval: request %s undecided before its deadline: %w: %w", req.ID, agentguard.ErrApprovalTimeout, err)
		} else {
			err = fmt.Errorf("approval: request %s: %w", req.ID, err)
		}
		return q.withdraw(e, err)
	}
}

// withdraw takes e out of the queue undecided, with err; if a decision
// got there first, that decision stands.
func (q *Queue) withdraw(e *entry, err error) (agentguard.Approval, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-e.done:
		return e.answer, nil
	default:
	}
	q.removeLocked(e)
	return agentguard.Approval{}, err
}

// finishLocked answers e and takes it out of the queue.
func (q *Queue) finishLocked(e *entry, a agentguard.Approval) {
	e.answer = a
	close(e.done)
	q.removeLocked(e)
}

func (q *Queue) removeLocked(e *entry) {
	id := e.req.ID
	if q.pending[id] != e {
		return
	}
	delete(q.pending, id)
	if len(q.decidedRing) < decidedMemory {
		q.decidedRing = append(q.decidedRing, id)
	} else {
		delete(q.decided, q.decidedRing[q.decidedNext])
		q.decidedRing[q.decidedNext] = id
		q.decidedNext = (q.decidedNext + 1) % decidedMemory
	}
	q.decided[id] = struct{}{}
}

func (q *Queue) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// Pending returns copies of the pending requests, oldest first.
func (q *Queue) Pending() []*agentguard.ApprovalRequest {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]*agentguard.ApprovalRequest, 0, len(q.pending))
	for _, e := range q.sortedLocked() {
		out = append(out, cloneRequest(e.req))
	}
	return out
}

func (q *Queue) sortedLocked() []*entry {
	es := make([]*entry, 0, len(q.pending))
	for _, e := range q.pending {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
	return es
}

// Next returns a copy of the oldest pending request that Next has not
// returned before, waiting for one to arrive. Each request is handed out
// by Next once, to whichever caller asks first, so several scripted
// approvers calling Next share the work rather than each seeing every
// request (Pending and the HTTP handler list all of them). Next returns
// ctx's error when ctx ends and ErrClosed once the queue is closed.
func (q *Queue) Next(ctx context.Context) (*agentguard.ApprovalRequest, error) {
	for {
		q.mu.Lock()
		q.initLocked()
		if q.closed {
			q.mu.Unlock()
			return nil, ErrClosed
		}
		for _, e := range q.sortedLocked() {
			if !e.handed {
				e.handed = true
				r := cloneRequest(e.req)
				q.mu.Unlock()
				return r, nil
			}
		}
		changed := q.changed
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}

// Grant records approver's grant of the request id, with an optional
// reason. The request is granted once it has as many distinct approvers as
// its kind needs (WithQuorum), one by default. Names are recorded without
// surrounding spaces and compared without regard to case: "alice" and
// "Alice " are the same approver. It returns ErrNoApprover for an empty or
// blank name, ErrNotPending for a request that is unknown or no longer
// pending, and ErrDuplicateApprover when approver already granted it.
func (q *Queue) Grant(id, approver, reason string) error {
	_, err := q.decide(id, approver, reason, true)
	return err
}

// Refuse refuses the request id in approver's name, for reason. One
// refusal is enough, even after grants toward a quorum, and an approver
// who granted may still refuse. Errors are as for Grant, except that there
// is no ErrDuplicateApprover.
func (q *Queue) Refuse(id, approver, reason string) error {
	_, err := q.decide(id, approver, reason, false)
	return err
}

// outcome is where a request stands after a decision.
type outcome struct {
	ID string `json:"id"`
	// Status is agentguard.ApprovalGranted, agentguard.ApprovalRefused or
	// "pending" (a quorum still short of approvers).
	Status    string   `json:"status"`
	Approvers []string `json:"approvers"`
	Needed    int      `json:"needed"`
}

// statusPending: a quorum is still short of approvers.
const statusPending = "pending"

func (q *Queue) decide(id, approver, reason string, grant bool) (outcome, error) {
	approver = strings.TrimSpace(approver)
	if approver == "" {
		return outcome{}, ErrNoApprover
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.pending[id]
	if e == nil {
		if _, ok := q.decided[id]; ok {
			return outcome{}, fmt.Errorf("approval: request %s: %w", id, errDecided)
		}
		return outcome{}, fmt.Errorf("approval: request %s: %w", id, errUnknownRequest)
	}
	if !grant {
		a := e.req.Refuse(reason, approver)
		q.finishLocked(e, a)
		return outcome{ID: id, Status: agentguard.ApprovalRefused, Approvers: a.Approvers, Needed: e.need}, nil
	}
	who := foldName(approver)
	if slices.ContainsFunc(e.grants, func(g string) bool { return foldName(g) == who }) {
		return outcome{}, fmt.Errorf("approval: request %s: %w", id, ErrDuplicateApprover)
	}
	e.grants = append(e.grants, approver)
	if reason != "" {
		e.reasons = append(e.reasons, reason)
	}
	if len(e.grants) < e.need {
		return outcome{ID: id, Status: statusPending, Approvers: slices.Clone(e.grants), Needed: e.need}, nil
	}
	a := e.req.Grant(e.grants...)
	a.Reason = strings.Join(e.reasons, "; ")
	q.finishLocked(e, a)
	return outcome{ID: id, Status: agentguard.ApprovalGranted, Approvers: slices.Clone(a.Approvers), Needed: e.need}, nil
}

// Close refuses every pending request, wakes every Next, and makes later
// Approve and Next calls return ErrClosed. It is idempotent.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.initLocked()
	if q.closed {
		return
	}
	q.closed = true
	for _, e := range q.sortedLocked() {
		q.finishLocked(e, e.req.Refuse("approval queue closed"))
	}
	q.notifyLocked()
}
