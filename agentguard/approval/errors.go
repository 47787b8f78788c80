package approval

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
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

// errUnusableName is what Tokens returns for a token whose approver name
// is empty or has white space around it.
var errUnusableName = fmt.Errorf("%w: the token's approver name is empty or has surrounding white space", errUnauthenticated)

// Internal refinements of ErrNotPending, which let the HTTP handler tell an
// unknown request (404) from one already decided (409).
var (
	errUnknownRequest = fmt.Errorf("%w: unknown request", ErrNotPending)
	errDecided        = fmt.Errorf("%w: already decided", ErrNotPending)
)

// maxExcerpt bounds the part of a non-200 webhook response kept in a
// StatusError, in bytes.
const maxExcerpt = 128

// StatusError is the error of a webhook that answered with a status other
// than 200 OK. Excerpt holds the start of the body, at most 128 bytes of
// valid UTF-8 with control and format characters (such as newlines,
// escape sequences and bidirectional overrides) taken out, quoted when
// printed. The body is not signed: over plain HTTP anyone on the path
// may have written it, so it is a hint for whoever debugs, never proof of
// what the receiver said.
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

// newStatusError keeps at most maxExcerpt bytes of body's printable text.
func newStatusError(code int, body []byte) *StatusError {
	return &StatusError{StatusCode: code, Excerpt: excerpt(body, maxExcerpt)}
}

// excerpt returns the start of body as valid UTF-8 of at most limit
// bytes, without control characters (Cc), format characters (Cf, such as
// bidirectional overrides and zero-width spaces) and line or paragraph
// separators. Invalid UTF-8 is dropped.
func excerpt(body []byte, limit int) string {
	var b strings.Builder
	for len(body) > 0 {
		r, size := utf8.DecodeRune(body)
		body = body[size:]
		switch {
		case r == utf8.RuneError && size <= 1,
			unicode.IsControl(r), unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp):
			continue
		}
		if b.Len()+utf8.RuneLen(r) > limit {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
