package mcpgoguard

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentguard/go-sdk/identity"
)

func TestCallers(t *testing.T) {
	id := identity.MustParse("spiffe://example.org/agent/a")
	src := Callers()
	tests := []struct {
		name string
		ctx  context.Context
		ok   bool
	}{
		{"no caller", context.Background(), false},
		{"verified", withCaller(context.Background(), caller{id: id, expires: time.Now().Add(time.Minute)}), true},
		{"no end", withCaller(context.Background(), caller{id: id}), true},
		{"expired", withCaller(context.Background(), caller{id: id, expires: time.Now().Add(-time.Second)}), false},
		{"zero identity", withCaller(context.Background(), caller{}), false},
	}
	for _, tc := range tests {
		got, err := src.Identity(tc.ctx)
		if tc.ok != (err == nil) || (tc.ok && got.ID != id.ID) {
			t.Errorf("%s: %v, %v", tc.name, got, err)
		}
		if !tc.ok && !errors.Is(err, ErrNoCaller) {
			t.Errorf("%s: %v, want ErrNoCaller", tc.name, err)
		}
	}
}

func TestBearer(t *testing.T) {
	tests := map[string]string{
		"Bearer abc":  "abc",
		"bearer  abc": "abc",
		"Basic abc":   "",
		"Bearer":      "",
		"Bearer   ":   "",
		"":            "",
	}
	for h, want := range tests {
		r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		got, ok := bearer(r)
		if got != want || ok != (want != "") {
			t.Errorf("bearer(%q) = %q, %v", h, got, ok)
		}
	}
}

// otherSession is a client session that is not mcp-go's in-process one,
// as a stdio or HTTP session is not.
type otherSession struct{}

func (otherSession) Initialize()                                         {}
func (otherSession) Initialized() bool                                   { return true }
func (otherSession) NotificationChannel() chan<- mcp.JSONRPCNotification { return nil }
func (otherSession) SessionID() string                                   { return "other" }

// TestInProcessCallerRules: the in-process caller applies to an in-process
// session's request without headers and without a verified caller, and to
// nothing else.
func TestInProcessCallerRules(t *testing.T) {
	fixed := identity.MustParse("spiffe://example.org/agent/in-process")
	verified := identity.MustParse("spiffe://example.org/agent/verified")
	srv := server.NewMCPServer("billing", "1")
	inProcess := srv.WithContext(context.Background(), server.NewInProcessSession("s1", nil))
	other := srv.WithContext(context.Background(), otherSession{})
	withHeader := http.Header{"Content-Type": {"application/json"}}
	s := &Server{cfg: newConfig([]Option{WithInProcessCaller(fixed)})}
	tests := []struct {
		name   string
		s      *Server
		ctx    context.Context
		header http.Header
		want   string // "" for no caller
	}{
		{"in-process", s, inProcess, nil, fixed.ID.String()},
		{"in-process, empty header", s, inProcess, http.Header{}, fixed.ID.String()},
		{"request with headers", s, inProcess, withHeader, ""},
		{"other session", s, other, nil, ""},
		{"no session", s, context.Background(), nil, ""},
		{"verified caller kept", s, withCaller(inProcess, caller{id: verified}), nil, verified.ID.String()},
		{"expired caller not replaced", s, withCaller(inProcess, caller{id: verified, expires: time.Now().Add(-time.Second)}), nil, ""},
		{"option not set", &Server{cfg: newConfig(nil)}, inProcess, nil, ""},
	}
	for _, tc := range tests {
		got, err := Callers().Identity(tc.s.callerContext(tc.ctx, tc.header))
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: caller %s, want none", tc.name, got.ID)
			}
			continue
		}
		if err != nil || got.ID.String() != tc.want {
			t.Errorf("%s: caller %v, %v; want %s", tc.name, got.ID, err, tc.want)
		}
	}
}
