package helpdesk

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
)

// Script is what a scripted model answers, as the API it plays would.
type Script struct {
	// Path is the API's endpoint, such as "/v1/messages".
	Path string
	// Replies are the response bodies, one per request, in order.
	Replies []string
	// Over is the body of the error the model answers once the script is
	// over, or to a request it does not expect, in the API's format.
	Over string
}

// scriptedModel plays a model API on a loopback port, so that the SDK's
// real client sends and decodes every request. It keeps what it was sent.
type scriptedModel struct {
	srv    *httptest.Server
	script Script

	mu       sync.Mutex
	next     int
	requests [][]byte
}

func startModel(s Script) *scriptedModel {
	m := &scriptedModel{script: s}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	return m
}

func (m *scriptedModel) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil || r.URL.Path != m.script.Path || m.next == len(m.script.Replies) {
		http.Error(w, m.script.Over, http.StatusBadRequest)
		return
	}
	m.requests = append(m.requests, body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, m.script.Replies[m.next])
	m.next++
}

// sent returns the request bodies the model received.
func (m *scriptedModel) sent() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests
}

func (m *scriptedModel) close() { m.srv.Close() }
