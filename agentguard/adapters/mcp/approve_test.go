package mcpguard_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/adapters/mcp"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
)

// user is the client's user, who answers elicitations.
type user struct {
	mu      sync.Mutex
	approve bool
	asked   []string
}

func (u *user) elicit(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.asked = append(u.asked, req.Params.Message)
	return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": u.approve}}, nil
}

func (u *user) questions() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.asked...)
}

// TestServerElicitationApproval: a call policy marks @approval is put to
// the client's user through MCP elicitation, on the 2026-07-28 protocol
// (an input-required result and a retried call) and on the 2025-11-25
// protocol (an elicitation request while the call is served).
func TestServerElicitationApproval(t *testing.T) {
	for _, proto := range []string{"2026-07-28", "2025-11-25"} {
		for _, approve := range []bool{true, false} {
			name := proto + "/refused"
			if approve {
				name = proto + "/granted"
			}
			t.Run(name, func(t *testing.T) {
				ctx := testContext(t)
				d := approval.NewDeferred()
				u := &user{approve: approve}
				f := newServerFixture(t, ctx, serverSetup{
					caller:     true,
					opts:       []mcpguard.Option{mcpguard.WithElicitation(d)},
					guardOpts:  []agentguard.Option{agentguard.WithApprover(d)},
					clientOpts: &mcp.ClientOptions{ElicitationHandler: u.elicit},
					session:    &mcp.ClientSessionOptions{ProtocolVersion: proto},
				})
				if got := f.client.InitializeResult().ProtocolVersion; got != proto {
					t.Fatalf("negotiated %s, want %s", got, proto)
				}
				res := f.call(t, ctx, "delete_file", map[string]any{"path": "/tmp/report.txt"})
				q := u.questions()
				if len(q) != 1 || !strings.Contains(q[0], `"delete_file"`) || !strings.Contains(q[0], "/tmp/report.txt") || !strings.Contains(q[0], "request approval-") {
					t.Fatalf("the user was asked %q", q)
				}
				recs := f.env.toolCalls("delete_file")
				if len(recs) != 2 {
					t.Fatalf("records:\n%s\nwant the paused call and the resumed one", audittest.List(recs))
				}
				audittest.Expect(t, recs[:1], audittest.Want{Decision: audit.Deny, Step: agentguard.StepApprove, Approval: agentguard.ApprovalPending})
				if n := f.env.executeSpans("delete_file"); n != 2 {
					t.Errorf("execute_tool spans = %d, want one per guarded run", n)
				}
				if approve {
					if res.IsError || text(res) != "deleted" || f.server.count("delete_file") != 1 {
						t.Fatalf("approved call = %v %q, ran %d times", res.IsError, text(res), f.server.count("delete_file"))
					}
					ev := audittest.Expect(t, recs[1:], audittest.Want{Decision: audit.Allow, Outcome: audit.OutcomeOK, Approval: agentguard.ApprovalGranted})
					// Who answered, as far as the server knows: the client
					// of the verified caller, never a name it chose.
					if ev.Approval == nil || strings.Join(ev.Approval.Approvers, ",") != "mcp-client:"+callerID.String() {
						t.Errorf("approval = %+v, want the calling client's", ev.Approval)
					}
					if recs[0].Task != recs[1].Task {
						t.Errorf("tasks %q and %q: the resumed call must be in the paused one's task", recs[0].Task, recs[1].Task)
					}
				} else {
					if !res.IsError || f.server.count("delete_file") != 0 {
						t.Fatalf("refused call = %v %q, ran %d times", res.IsError, text(res), f.server.count("delete_file"))
					}
					ev := audittest.Expect(t, recs[1:], audittest.Want{Decision: audit.Deny, Step: agentguard.StepApprove, Approval: agentguard.ApprovalRefused})
					if ev.Approval == nil || strings.Join(ev.Approval.Approvers, ",") != "mcp-client:"+callerID.String() {
						t.Errorf("refusal = %+v, want the calling client's", ev.Approval)
					}
				}
				if p := d.Pending(); len(p) != 0 {
					t.Errorf("requests left pending: %d", len(p))
				}
				f.env.expectNoCanary(t)
			})
		}
	}
}

// TestServerElicitationUnsupported: a client that cannot elicit gets the
// call refused; the tool does not run, and the requests asked about leave
// the Deferred, so that one such caller cannot fill it for others.
func TestServerElicitationUnsupported(t *testing.T) {
	ctx := testContext(t)
	d := approval.NewDeferred(approval.WithDeferredLimit(3))
	f := newServerFixture(t, ctx, serverSetup{
		caller:    true,
		opts:      []mcpguard.Option{mcpguard.WithElicitation(d)},
		guardOpts: []agentguard.Option{agentguard.WithApprover(d)},
		session:   &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"},
	})
	for i := range 5 {
		res := f.call(t, ctx, "delete_file", map[string]any{"path": "/tmp/x"})
		if !res.IsError || !strings.Contains(text(res), "the client could not ask its user") {
			t.Errorf("call %d = %v %q", i, res.IsError, text(res))
		}
	}
	if n := f.server.count("delete_file"); n != 0 {
		t.Errorf("delete_file ran %d times", n)
	}
	if p := d.Pending(); len(p) != 0 {
		t.Errorf("%d requests left pending", len(p))
	}
}

// TestServerElicitationAbandoned: on the 2026-07-28 protocol, a caller
// whose client never answers keeps at most MaxApprovalsPerCaller requests
// waiting; another caller's approval is still asked and granted.
func TestServerElicitationAbandoned(t *testing.T) {
	ctx := testContext(t)
	const limit = mcpguard.MaxApprovalsPerCaller + 2
	d := approval.NewDeferred(approval.WithDeferredLimit(limit))
	var asked sync.Mutex
	n := 0
	f := newServerFixture(t, ctx, serverSetup{
		caller:    true,
		opts:      []mcpguard.Option{mcpguard.WithElicitation(d)},
		guardOpts: []agentguard.Option{agentguard.WithApprover(d)},
		clientOpts: &mcp.ClientOptions{ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked.Lock()
			n++
			asked.Unlock()
			return nil, errors.New("the user walked away")
		}},
		session: &mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"},
	})
	for i := range limit + 3 {
		if _, err := f.client.CallTool(ctx, &mcp.CallToolParams{Name: "delete_file", Arguments: map[string]any{"path": fmt.Sprint("/tmp/", i)}}); err == nil {
			t.Fatalf("call %d went through without an answer", i)
		}
	}
	if got := len(d.Pending()); got != mcpguard.MaxApprovalsPerCaller {
		t.Errorf("%d requests pending for one caller, want %d", got, mcpguard.MaxApprovalsPerCaller)
	}
	if n != limit+3 {
		t.Errorf("the client was asked %d times, want %d", n, limit+3)
	}

	u := &user{approve: true}
	other := connectAs(t, ctx, f.server.Server, mcp.NewClient(&mcp.Implementation{Name: "other", Version: "1"}, &mcp.ClientOptions{ElicitationHandler: u.elicit}),
		&mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"}, otherCallerID)
	res, err := other.CallTool(ctx, &mcp.CallToolParams{Name: "delete_file", Arguments: map[string]any{"path": "/tmp/mine"}})
	if err != nil || res.IsError || text(res) != "deleted" {
		t.Fatalf("the other caller's approved call = %v, %q", err, text(res))
	}
	if len(u.questions()) != 1 {
		t.Errorf("the other caller's client was asked %d times", len(u.questions()))
	}
	if f.server.count("delete_file") != 1 {
		t.Errorf("delete_file ran %d times, want only the approved call", f.server.count("delete_file"))
	}
}
