package mcpguard

import (
	"context"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// watched maps each guarded client session to its Session, for
// ToolListChanged.
var watched sync.Map // *mcp.ClientSession -> *Session

func watch(cs *mcp.ClientSession, s *Session) { watched.Store(cs, s) }

func unwatch(cs *mcp.ClientSession, s *Session) { watched.CompareAndDelete(cs, s) }

// ToolListChanged returns the handler to set as the client's
// mcp.ClientOptions.ToolListChangedHandler: on a server's
// notifications/tools/list_changed it refreshes the guarded Session of that
// client session (Session.Refresh), so that changed definitions are held
// for review before the next call, then calls next, if not nil. A
// notification for a session that is not guarded only reaches next.
//
//	client := mcp.NewClient(impl, &mcp.ClientOptions{
//		ToolListChangedHandler: mcpguard.ToolListChanged(nil),
//	})
//
// The refresh runs on the client's notification goroutine, before the
// notifications that follow are handled. Its error goes to the session's
// refresh hook (WithRefreshHook), or else to its logger.
func ToolListChanged(next func(context.Context, *mcp.ToolListChangedRequest)) func(context.Context, *mcp.ToolListChangedRequest) {
	return func(ctx context.Context, req *mcp.ToolListChangedRequest) {
		if req != nil && req.Session != nil {
			if v, ok := watched.Load(req.Session); ok {
				s := v.(*Session)
				if _, err := s.Refresh(ctx); err != nil && s.cfg.onRefresh == nil {
					s.cfg.logger.Warn("mcpguard: refresh after tools/list_changed", "toolset", s.toolset, "error", err)
				}
			}
		}
		if next != nil {
			next(ctx, req)
		}
	}
}
