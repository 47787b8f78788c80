package approval

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
)

const (
	// maxRequestBody bounds a webhook request the handler accepts.
	maxRequestBody = 4 << 20
	// defaultReplayCapacity is how many unexpired request IDs a handler
	// remembers by default.
	defaultReplayCapacity = 100_000
)

// WithReplayCapacity sets how many request IDs a webhook handler
// remembers at once to refuse replays (default 100 000). An ID is
// remembered until its request expires; while the memory is full the
// handler refuses new requests with 503 rather than forget one early. A
// Webhook ignores this option.
func WithReplayCapacity(n int) WebhookOption {
	return func(cfg *webhookConfig) {
		if n > 0 {
			cfg.capacity = n
		}
	}
}

// DecideFunc decides a request that reached a webhook handler. It should
// answer with req.Grant or req.Refuse; ctx ends when the HTTP request does
// or when req expires.
type DecideFunc func(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error)

// NewWebhookHandler returns the receiving side of a Webhook, for key. For
// each POST it checks, in order: the body is at most 4 MiB (413), the
// signature verifies (401), the timestamp is within the skew (401), the
// body is a version 1 request (400), the request has not expired (410),
// its ID was not seen before (409: a replay), and the replay memory has
// room (503). It then calls decide and answers 200, signed, with the
// request's own ID and digest. A granted answer from decide counts only if
// it is bound to the request (made with req.Grant); any other grant is
// sent as a refusal naming no approver. An error from decide answers 500,
// unsigned, and its text is not sent; 504 when it came because the request
// expired (decide's context passed its deadline).
//
// Options: WithMaxSkew, WithClock, WithReplayCapacity.
func NewWebhookHandler(key []byte, decide DecideFunc, opts ...WebhookOption) (http.Handler, error) {
	if decide == nil {
		return nil, errors.New("approval: webhook handler needs a decide function")
	}
	s, err := newSigner(key)
	if err != nil {
		return nil, err
	}
	cfg := newWebhookConfig(opts)
	return &webhookHandler{
		sign: s, decide: decide, skew: cfg.skew, now: cfg.now,
		seen: &seenIDs{ids: map[string]time.Time{}, capacity: cfg.capacity},
	}, nil
}

type webhookHandler struct {
	sign   signer
	decide DecideFunc
	skew   time.Duration
	now    func() time.Time
	seen   *seenIDs
}

func (h *webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "body too large")
		} else {
			writeError(w, http.StatusBadRequest, "body unreadable")
		}
		return
	}
	ts := r.Header.Get(TimestampHeader)
	signedAt, ok := parseTimestamp(ts)
	if !ok || !verify(r.Header.Get(SignatureHeader), h.sign.requestMAC(ts, body)) {
		writeError(w, http.StatusUnauthorized, "bad or missing signature")
		return
	}
	now := h.now()
	if !withinSkew(signedAt, now, h.skew) {
		writeError(w, http.StatusUnauthorized, "stale timestamp")
		return
	}
	var wr wireRequest
	if err := json.Unmarshal(body, &wr); err != nil {
		writeError(w, http.StatusBadRequest, "body is not an approval request")
		return
	}
	req, err := fromWire(&wr)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !now.Before(req.ExpiresAt) {
		writeError(w, http.StatusGone, "request expired")
		return
	}
	switch h.seen.add(req.ID, req.ExpiresAt, now) {
	case errReplay:
		writeError(w, http.StatusConflict, "request already received")
		return
	case errMemoryFull:
		writeError(w, http.StatusServiceUnavailable, "too many open requests")
		return
	}

	// The deadline is the request's expiry on this handler's clock.
	ctx, cancel := context.WithTimeout(r.Context(), req.ExpiresAt.Sub(now))
	defer cancel()
	id, digest := req.ID, req.Digest
	a, err := h.decide(ctx, req)
	switch {
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil:
		writeError(w, http.StatusGatewayTimeout, "no decision before the request expired")
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "approver failed")
		return
	}
	answer := wireAnswer{RequestID: id, Digest: digest, Granted: a.Granted, Approvers: slices.Clone(a.Approvers), Reason: a.Reason}
	if a.Granted && (a.RequestID != id || a.Digest != digest) {
		answer.Granted, answer.Approvers = false, nil
		answer.Reason = "approval: the approver's grant was not bound to this request"
	}
	if answer.Approvers == nil {
		answer.Approvers = []string{}
	}
	out, err := marshalJSON(answer)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding failed")
		return
	}
	ats := timestamp(h.now())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(TimestampHeader, ats)
	w.Header().Set(SignatureHeader, header(h.sign.answerMAC(ats, id, out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

var (
	errReplay     = errors.New("approval: request already received")
	errMemoryFull = errors.New("approval: replay memory full")
)

// seenIDs remembers request IDs until they expire, at most capacity at
// once.
type seenIDs struct {
	mu       sync.Mutex
	ids      map[string]time.Time
	expiry   expiryHeap
	capacity int
}

// add records id, which expires at exp. It returns errReplay for an ID
// still remembered and errMemoryFull when no room is left.
func (s *seenIDs) add(id string, exp, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.expiry) > 0 && !now.Before(s.expiry[0].exp) {
		delete(s.ids, heap.Pop(&s.expiry).(seen).id)
	}
	if _, ok := s.ids[id]; ok {
		return errReplay
	}
	if len(s.ids) >= s.capacity {
		return errMemoryFull
	}
	s.ids[id] = exp
	heap.Push(&s.expiry, seen{id: id, exp: exp})
	return nil
}

type seen struct {
	id  string
	exp time.Time
}

// expiryHeap orders remembered IDs by expiry, soonest first.
type expiryHeap []seen

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].exp.Before(h[j].exp) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(seen)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
