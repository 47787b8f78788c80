package mcpguard

import (
	"context"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// fixedConn reads the messages it holds.
type fixedConn struct {
	mcp.Connection
	msgs []jsonrpc.Message
}

func (c *fixedConn) Read(context.Context) (jsonrpc.Message, error) {
	m := c.msgs[0]
	c.msgs = c.msgs[1:]
	return m, nil
}

// TestCallerConnKeepsTransportInfo: a request that carries its transport's
// own information keeps it; one without gets the connection's caller.
func TestCallerConnKeepsTransportInfo(t *testing.T) {
	id := spiffeid.RequireFromString("spiffe://example.org/agent/test")
	verified := &mcp.RequestExtra{TokenInfo: &auth.TokenInfo{UserID: "spiffe://example.org/agent/verified"}}
	with := &jsonrpc.Request{Method: "tools/call", Extra: verified}
	without := &jsonrpc.Request{Method: "tools/call"}
	c := &callerConn{Connection: &fixedConn{msgs: []jsonrpc.Message{with, without}}, id: id}
	for range 2 {
		if _, err := c.Read(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if with.Extra != verified {
		t.Errorf("the transport's own request information was replaced: %+v", with.Extra)
	}
	s := &Server{}
	if got := s.callerOf(&mcp.CallToolRequest{Extra: without.Extra.(*mcp.RequestExtra)}); got.err != nil || got.id != id {
		t.Errorf("caller = %+v, want %s", got, id)
	}
	// A UserID alone names nobody without WithTokenUserIDs.
	if got := s.callerOf(&mcp.CallToolRequest{Extra: verified}); got.err == nil {
		t.Errorf("a bare UserID named the caller %s", got.id)
	}
}
