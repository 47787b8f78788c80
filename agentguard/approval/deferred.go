package approval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
)

// Defaults of a Deferred.
const (
	// DefaultDeferredTTL is how long a pending request can be decided, and
	// how long a decision waits for its call to be made again.
	DefaultDeferredTTL = 24 * time.Hour
	// DefaultDeferredLimit bounds the requests a Deferred holds at once,
	// pending and decided together.
	DefaultDeferredLimit = 10000
	// DefaultDeferredAgentLimit bounds the requests of one agent pending
	// at once, so that one agent cannot starve the others.
	DefaultDeferredAgentLimit = 100
	// DefaultDecisionTTL is how long a decision waits for its call to be
	// made again: the framework resumes the run right after the human
	// answered.
	DefaultDecisionTTL = 10 * time.Minute
)

// ErrQuorum: a grant named fewer distinct approvers than the request's
// kind needs (WithDeferredQuorum).
var ErrQuorum = errors.New("approval: not enough approvers")

// ErrFull: a Deferred holds as many requests as it may, in all or for the
// calling agent; the call is denied until some are decided or expire.
var ErrFull = errors.New("approval: too many requests waiting")

// Deferred is the Approver for agent frameworks whose human-in-the-loop
// pauses a run and resumes it later (eino's interrupts, genkit's tool
// interrupts, ADK's tool confirmations). It never waits for a human.
//
// A call that needs approval, and for which no decision is stored, is
// denied at once with an error that matches agentguard.ErrApprovalPending
// and carries the request (PendingRequest finds it). The framework adapter
// pauses the run in the framework's way, showing the request to a human.
// When the human has answered, the adapter calls Decide with the request's
// ID and the answer, and the framework runs the call again. The guard asks
// again with a new request; when that request has the same Digest (the
// same action, tool and definition, arguments, task and agent, so the task
// must be the same across the pause), Deferred answers it with the stored
// decision, once. A decision is used by one call only, and never for
// another call, other arguments, another task or another agent.
//
// A decision counts only for a request of the same kind whose quorum it
// meets: if the call, made again, needs another kind of approval (policy
// changed meanwhile), the decision is dropped and the call waits again. The
// same call asked again before anyone answered gets the request already
// pending, with its ID, rather than a new one.
//
// Pending requests expire after WithDeferredTTL (24 hours by default),
// decisions after WithDecisionTTL (10 minutes); at most WithDeferredLimit
// requests are held, and WithDeferredAgentLimit per agent. All methods are
// safe for concurrent use; the zero value is not usable: use NewDeferred.
type Deferred struct {
	ttl         time.Duration
	decisionTTL time.Duration
	limit       int
	agentLimit  int
	quorum      map[string]int
	now         func() time.Time

	mu sync.Mutex
	// pending holds the requests waiting for a human, by ID.
	pending map[string]*deferredRequest
	// decided holds the decisions waiting for their call, by digest.
	decided map[string]*deferredDecision
}

var _ agentguard.Approver = (*Deferred)(nil)

type deferredRequest struct {
	req     *agentguard.ApprovalRequest
	expires time.Time
}

type deferredDecision struct {
	Decision
	// kind and id are the kind and ID of the request decided.
	kind, id string
	expires  time.Time
}

// Decision is a human's answer to a pending request.
type Decision struct {
	// Granted says whether the call may go ahead.
	Granted bool
	// Approvers name who decided; at least one, and as many distinct
	// names as the request's kind needs for a grant (WithDeferredQuorum).
	// They come from the application (who is signed in), never from
	// the model.
	Approvers []string
	// Reason is the approvers' comment.
	Reason string
}

// DeferredOption configures a Deferred.
type DeferredOption func(*Deferred)

// WithDeferredTTL sets how long a pending request can be decided. d <= 0
// keeps the default, DefaultDeferredTTL.
func WithDeferredTTL(d time.Duration) DeferredOption {
	return func(x *Deferred) {
		if d > 0 {
			x.ttl = d
		}
	}
}

// WithDecisionTTL sets how long a decision waits for its call to be made
// again. d <= 0 keeps the default, DefaultDecisionTTL.
func WithDecisionTTL(d time.Duration) DeferredOption {
	return func(x *Deferred) {
		if d > 0 {
			x.decisionTTL = d
		}
	}
}

// WithDeferredAgentLimit bounds the requests of one agent (by SPIFFE ID)
// pending at once; a request beyond it is refused with ErrFull. n <= 0
// keeps the default, DefaultDeferredAgentLimit.
func WithDeferredAgentLimit(n int) DeferredOption {
	return func(x *Deferred) {
		if n > 0 {
			x.agentLimit = n
		}
	}
}

// WithDeferredLimit bounds the requests held at once, pending and decided
// together; a request beyond it is refused with ErrFull (the call is
// denied). n <= 0 keeps the default, DefaultDeferredLimit.
func WithDeferredLimit(n int) DeferredOption {
	return func(x *Deferred) {
		if n > 0 {
			x.limit = n
		}
	}
}

// WithDeferredQuorum makes a grant of a request of kind (as
// ApprovalRequest.Kind names it, such as "two-person") name at least n
// distinct approvers. Kinds match without regard to case; a request of
// several kinds needs the largest quorum of its kinds.
func WithDeferredQuorum(kind string, n int) DeferredOption {
	return func(x *Deferred) { x.quorum[foldName(kind)] = n }
}

// WithDeferredClock sets the clock expiry is measured with, for tests.
func WithDeferredClock(now func() time.Time) DeferredOption {
	return func(x *Deferred) {
		if now != nil {
			x.now = now
		}
	}
}

// NewDeferred returns a Deferred with no request pending.
func NewDeferred(opts ...DeferredOption) *Deferred {
	d := &Deferred{
		ttl: DefaultDeferredTTL, decisionTTL: DefaultDecisionTTL, limit: DefaultDeferredLimit,
		agentLimit: DefaultDeferredAgentLimit, quorum: map[string]int{}, now: time.Now,
		pending: map[string]*deferredRequest{}, decided: map[string]*deferredDecision{},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Approve answers req with the decision stored for its digest, and
// forgets that decision. Without one, it keeps req pending (or finds the
// request for the same call already pending) and returns an
// *agentguard.PendingError carrying a copy of it.
func (d *Deferred) Approve(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.expireLocked(now)
	if dec, ok := d.decided[req.Digest]; ok {
		delete(d.decided, req.Digest)
		// A decision answers only the kind of approval the human was
		// asked for, with the quorum it needs now.
		// One refusal is enough, whatever the quorum.
		if foldName(dec.kind) == foldName(req.Kind) && (!dec.Granted || len(dec.Approvers) >= d.need(req.Kind)) {
			if !dec.Granted {
				return req.Refuse(dec.Reason, dec.Approvers...), nil
			}
			a := req.Grant(dec.Approvers...)
			a.Reason = dec.Reason
			return a, nil
		}
	}
	agent, mine := req.Agent.ID.String(), 0
	for _, p := range d.pending {
		if p.req.Digest == req.Digest && foldName(p.req.Kind) == foldName(req.Kind) {
			return agentguard.Approval{}, &agentguard.PendingError{Request: copyRequest(p.req)}
		}
		if p.req.Agent.ID.String() == agent {
			mine++
		}
	}
	if len(d.pending)+len(d.decided) >= d.limit || mine >= d.agentLimit {
		return agentguard.Approval{}, fmt.Errorf("approval: request %s: %w", req.ID, ErrFull)
	}
	kept := copyRequest(req)
	d.pending[req.ID] = &deferredRequest{req: kept, expires: now.Add(d.ttl)}
	return agentguard.Approval{}, &agentguard.PendingError{Request: copyRequest(kept)}
}

// Decide records a human's answer to the pending request id. The request
// leaves the pending list, together with every other pending request for
// the same call (the same digest), and the answer waits for the call to be
// made again. It returns ErrNotPending for a request that is unknown,
// decided or expired, ErrNoApprover when dec names no approver (or a blank
// one), and ErrQuorum when a grant names fewer distinct approvers than
// the request's kind needs; the request stays pending after the last two.
func (d *Deferred) Decide(id string, dec Decision) error {
	approvers := make([]string, 0, len(dec.Approvers))
	for _, a := range dec.Approvers {
		a = strings.TrimSpace(a)
		if a == "" {
			return ErrNoApprover
		}
		if !slices.ContainsFunc(approvers, func(b string) bool { return foldName(a) == foldName(b) }) {
			approvers = append(approvers, a)
		}
	}
	if len(approvers) == 0 {
		return ErrNoApprover
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.expireLocked(now)
	p, ok := d.pending[id]
	if !ok {
		return fmt.Errorf("approval: request %s: %w", id, ErrNotPending)
	}
	if need := d.need(p.req.Kind); dec.Granted && len(approvers) < need {
		return fmt.Errorf("approval: request %s needs %d approvers, %d named: %w", id, need, len(approvers), ErrQuorum)
	}
	digest := p.req.Digest
	for k, q := range d.pending {
		if q.req.Digest == digest {
			delete(d.pending, k)
		}
	}
	d.decided[digest] = &deferredDecision{
		Decision: Decision{Granted: dec.Granted, Approvers: approvers, Reason: dec.Reason},
		kind:     p.req.Kind,
		id:       id,
		expires:  now.Add(d.decisionTTL),
	}
	return nil
}

// Withdraw takes back the pending request id, with every other pending
// request for the same call, for an adapter that gave up on it (the run
// was abandoned, the human cannot be asked), so that it holds no place
// WithDeferredLimit counts. The call, made again, waits for a new
// decision. A request already decided is left alone (see Discard). It
// returns ErrNotPending when id is not pending.
func (d *Deferred) Withdraw(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expireLocked(d.now())
	p, ok := d.pending[id]
	if !ok {
		return fmt.Errorf("approval: request %s: %w", id, ErrNotPending)
	}
	for k, q := range d.pending {
		if q.req.Digest == p.req.Digest {
			delete(d.pending, k)
		}
	}
	return nil
}

// Discard forgets the decision made for request id that its call has not
// used yet (the run went another way), so that it answers nothing and holds
// no place WithDeferredLimit counts. It returns ErrNotPending when no such
// decision is held.
func (d *Deferred) Discard(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expireLocked(d.now())
	for k, dec := range d.decided {
		if dec.id == id {
			delete(d.decided, k)
			return nil
		}
	}
	return fmt.Errorf("approval: request %s: no unused decision: %w", id, ErrNotPending)
}

// Pending returns copies of the requests waiting for a human, oldest
// first.
func (d *Deferred) Pending() []*agentguard.ApprovalRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expireLocked(d.now())
	out := make([]*agentguard.ApprovalRequest, 0, len(d.pending))
	for _, p := range d.pending {
		out = append(out, copyRequest(p.req))
	}
	slices.SortFunc(out, func(a, b *agentguard.ApprovalRequest) int {
		if c := a.RequestedAt.Compare(b.RequestedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// need is the number of distinct approvers a grant of kind needs.
func (d *Deferred) need(kind string) int {
	n := 1
	for k := range strings.SplitSeq(kind, ",") {
		n = max(n, d.quorum[foldName(k)])
	}
	return n
}

// expireLocked forgets the requests and decisions that expired by now.
func (d *Deferred) expireLocked(now time.Time) {
	for k, p := range d.pending {
		if !now.Before(p.expires) {
			delete(d.pending, k)
		}
	}
	for k, p := range d.decided {
		if !now.Before(p.expires) {
			delete(d.decided, k)
		}
	}
}

// copyRequest copies r deeply enough that nobody shares its slices.
func copyRequest(r *agentguard.ApprovalRequest) *agentguard.ApprovalRequest {
	c := *r
	c.Agent.Chain = slices.Clone(r.Agent.Chain)
	c.Args = slices.Clone(r.Args)
	c.Policies = slices.Clone(r.Policies)
	return &c
}

// PendingRequest returns a copy of the request of a call that was denied
// because its approval waits for a human (agentguard.ErrApprovalPending),
// as an adapter needs it to pause the run: its ID, tool, arguments, kind
// and reason. Like agentguard.PendingApproval, it looks only at the
// guard's own error, never inside the error of a tool that ran.
func PendingRequest(err error) (*agentguard.ApprovalRequest, bool) {
	r, ok := agentguard.PendingApproval(err)
	if !ok {
		return nil, false
	}
	return copyRequest(r), true
}
