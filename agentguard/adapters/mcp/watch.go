package mcpguard

import (
	"context"
	"runtime"
	"sync"
	"weak"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// watched maps each guarded client session to its Sessions, for
// ToolListChanged. Both are held weakly: an entry keeps neither the client
// session nor a Session alive, and a Session dropped without Close leaves
// the table when the garbage collector frees it (see watch).
var watched = struct {
	sync.Mutex
	m map[weak.Pointer[mcp.ClientSession]][]weak.Pointer[Session]
}{m: map[weak.Pointer[mcp.ClientSession]][]weak.Pointer[Session]{}}

// watch adds s to the Sessions of cs. A Session the program drops without
// closing it is taken out once it is freed.
func watch(cs *mcp.ClientSession, s *Session) {
	k := weak.Make(cs)
	watched.Lock()
	watched.m[k] = append(live(watched.m[k]), weak.Make(s))
	watched.Unlock()
	runtime.AddCleanup(s, prune, k)
}

// unwatch takes s out of the Sessions of cs.
func unwatch(cs *mcp.ClientSession, s *Session) {
	k := weak.Make(cs)
	ws := weak.Make(s)
	watched.Lock()
	defer watched.Unlock()
	var kept []weak.Pointer[Session]
	for _, p := range live(watched.m[k]) {
		if p != ws {
			kept = append(kept, p)
		}
	}
	set(k, kept)
}

// watchers returns the Sessions of cs still in use.
func watchers(cs *mcp.ClientSession) []*Session {
	k := weak.Make(cs)
	watched.Lock()
	ps := live(watched.m[k])
	set(k, ps)
	watched.Unlock()
	out := make([]*Session, 0, len(ps))
	for _, p := range ps {
		if s := p.Value(); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// prune drops the freed Sessions of the client session k.
func prune(k weak.Pointer[mcp.ClientSession]) {
	watched.Lock()
	defer watched.Unlock()
	set(k, live(watched.m[k]))
}

// live returns the Sessions of ps not freed yet, in a new slice.
func live(ps []weak.Pointer[Session]) []weak.Pointer[Session] {
	var out []weak.Pointer[Session]
	for _, p := range ps {
		if p.Value() != nil {
			out = append(out, p)
		}
	}
	return out
}

// set makes ps the Sessions of k, dropping k when there are none. The
// caller holds the lock.
func set(k weak.Pointer[mcp.ClientSession], ps []weak.Pointer[Session]) {
	if len(ps) == 0 {
		delete(watched.m, k)
		return
	}
	watched.m[k] = ps
}

// inTable reports whether the table holds an entry for cs, for tests.
func inTable(cs *mcp.ClientSession) bool {
	watched.Lock()
	defer watched.Unlock()
	_, ok := watched.m[weak.Make(cs)]
	return ok
}

// ToolListChanged returns the handler to set as the client's
// mcp.ClientOptions.ToolListChangedHandler: on a server's
// notifications/tools/list_changed it refreshes every guarded Session of
// that client session (Session.Refresh), so that changed definitions are
// held for review before the next call, then calls next, if not nil. A
// notification for a session that is not guarded only reaches next.
//
//	client := mcp.NewClient(impl, &mcp.ClientOptions{
//		ToolListChangedHandler: mcpguard.ToolListChanged(nil),
//	})
//
// The refreshes run on the client's notification goroutine, one after the
// other, before the notifications that follow are handled. Each error goes
// to its session's refresh hook (WithRefreshHook), or else to its logger.
func ToolListChanged(next func(context.Context, *mcp.ToolListChangedRequest)) func(context.Context, *mcp.ToolListChangedRequest) {
	return func(ctx context.Context, req *mcp.ToolListChangedRequest) {
		if req != nil && req.Session != nil {
			for _, s := range watchers(req.Session) {
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
