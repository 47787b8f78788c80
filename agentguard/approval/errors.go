package approval

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors to branch on with errors.Is.
var (
	// ErrNotPending: the request is unknown to the queue or no longer
	// pending (decided, timed out, withdrawn or refused by Close).
	ErrNotPending = errors.New("approval: request not pending")
	// ErrNoApprover: a decision named no approver.
	ErrNoApprover = errors.New("approval: no approver named")
	// ErrDuplicateApprover: an approver granted the same request twice; a
	// quorum needs distinct approvers.
	ErrDuplicateApprover = errors.New("approval: approver already granted this request")
	// ErrClosed: the queue is closed.
	ErrClosed = errors.New("approval: queue closed")
	// ErrBadSignature: a webhook message is unsigned or its signature does
	// not verify: forged, tampered with, signed with another key, or an
	// answer to another request replayed.
	ErrBadSignature = errors.New("approval: bad or missing signature")
	// ErrStaleAnswer: a signed webhook answer's timestamp is further from
	// now than the allowed skew.
	ErrStaleAnswer = errors.New("approval: stale answer")
	// ErrWrongRequest: a signed webhook answer names another request ID or
	// digest than the request asked.
	ErrWrongRequest = errors.New("approval: answer names another request")
	// ErrBadAnswer: a webhook answer is malformed, too large, or grants
	// without naming an approver.
	ErrBadAnswer = errors.New("approval: malformed answer")
)

// errUnauthenticated is what Tokens returns for a request it does not
// recognise. It never says which token was presented.
var errUnauthenticated = errors.New("approval: not authenticated")

// Internal refinements of ErrNotPending, which let the HTTP handler tell an
// unknown request (404) from one already decided (409).
var (
	errUnknownRequest = fmt.Errorf("%w: unknown request", ErrNotPending)
	errDecided        = fmt.Errorf("%w: already decided", ErrNotPending)
)

// maxExcerpt bounds the part of a non-200 webhook response kept in a
// StatusError.
const maxExcerpt = 256

// StatusError is the error of a webhook that answered with a status other
// than 200 OK. Excerpt holds at most the first 256 bytes of the body,
// quoted when printed.
type StatusError struct {
	StatusCode int
	Excerpt    string
}

// Error gives the status and the excerpt.
func (e *StatusError) Error() string {
	msg := "approval: webhook answered status " + strconv.Itoa(e.StatusCode)
	if e.Excerpt != "" {
		msg += ": " + strconv.Quote(e.Excerpt)
	}
	return msg
}

// newStatusError keeps at most maxExcerpt bytes of body, as valid UTF-8.
func newStatusError(code int, body []byte) *StatusError {
	if len(body) > maxExcerpt {
		body = body[:maxExcerpt]
	}
	return &StatusError{StatusCode: code, Excerpt: strings.ToValidUTF8(string(body), "")}
}
