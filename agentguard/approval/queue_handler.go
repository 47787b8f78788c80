package approval

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// maxDecisionBody bounds the body of a decision posted to the handler.
const maxDecisionBody = 16 << 10

// queueItem is an entry of the handler's listing: the request, who has
// granted it so far and how many grants it needs.
type queueItem struct {
	wireRequest
	GrantedBy []string `json:"granted_by"`
	Needed    int      `json:"needed"`
}

// decision is the body of a POST to the handler.
type decision struct {
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
}

// Handler returns an HTTP API for people to decide the queue's requests.
// Mount it under a prefix with http.StripPrefix; it serves:
//
//	GET  /      the pending requests, oldest first, as a JSON array
//	POST /{id}  {"decision": "grant" | "refuse", "reason": "..."}
//
// Every request must pass auth, which names the approver: a decision is
// always made in that name, and the body has no field to name anyone. A
// POST must have Content-Type application/json (optionally with
// "; charset=utf-8"), which a browser does not send across origins
// without a CORS preflight, so that an authenticator relying on cookies is
// not open to cross-site request forgery; the body must hold exactly the
// fields above. A POST answers 200 with {"id", "status" ("granted",
// "refused" or "pending" while a quorum is short), "approvers", "needed"};
// 400 for a bad body (unknown fields included), 401 when auth fails, 404
// for an unknown request, 409 for one already decided (or granted by this
// approver before, under any spelling of the name differing only in case
// and surrounding spaces), 405 for another method, 413 for a body over 16
// KiB, 415 for another content type. Errors are JSON {"error": "..."}.
//
// With a nil auth the handler answers 401 to everything: approvals fail
// closed.
func (q *Queue) Handler(auth Authenticator) http.Handler {
	return &queueHandler{q: q, auth: auth}
}

type queueHandler struct {
	q    *Queue
	auth Authenticator
}

func (h *queueHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.auth == nil {
		unauthorized(w)
		return
	}
	approver, err := h.auth(r)
	if err != nil || strings.TrimSpace(approver) == "" {
		unauthorized(w)
		return
	}
	id := strings.TrimPrefix(r.URL.Path, "/")
	if id == "" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		writeJSON(w, http.StatusOK, h.q.listing())
		return
	}
	if strings.Contains(id, "/") {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if !jsonContent(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	var d decision
	if status, msg := decodeBody(w, r, maxDecisionBody, &d); status != 0 {
		writeError(w, status, msg)
		return
	}
	var grant bool
	switch d.Decision {
	case "grant":
		grant = true
	case "refuse":
	default:
		writeError(w, http.StatusBadRequest, `decision must be "grant" or "refuse"`)
		return
	}
	out, err := h.q.decide(id, approver, d.Reason, grant)
	switch {
	case errors.Is(err, errUnknownRequest):
		writeError(w, http.StatusNotFound, "unknown request")
	case errors.Is(err, errDecided):
		writeError(w, http.StatusConflict, "request already decided")
	case errors.Is(err, ErrDuplicateApprover):
		writeError(w, http.StatusConflict, "approver already granted this request")
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// listing returns the pending requests as the handler lists them.
func (q *Queue) listing() []queueItem {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]queueItem, 0, len(q.pending))
	for _, e := range q.sortedLocked() {
		grants := slices.Clone(e.grants)
		if grants == nil {
			grants = []string{}
		}
		out = append(out, queueItem{wireRequest: toWire(e.req), GrantedBy: grants, Needed: e.need})
	}
	return out
}

// jsonContent reports whether a Content-Type header value is
// application/json, with no parameter but an optional charset=utf-8.
func jsonContent(value string) bool {
	mt, params, err := mime.ParseMediaType(value)
	if err != nil || mt != "application/json" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return true
}

// decodeBody decodes one JSON value of at most limit bytes from r's body
// into v, refusing fields v does not have. On failure it returns the
// status and message to answer.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) (int, string) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		return http.StatusBadRequest, "body must hold one JSON object"
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "body too large"
	case err != nil && strings.HasPrefix(err.Error(), "json: unknown field "):
		return http.StatusBadRequest, "body has an unknown field"
	case err != nil:
		return http.StatusBadRequest, "body is not a JSON object"
	}
	return 0, ""
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", "Bearer")
	writeError(w, http.StatusUnauthorized, "not authenticated")
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeJSON answers v as JSON, its strings and arguments unescaped
// (marshalJSON), followed by a newline.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshalJSON(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
