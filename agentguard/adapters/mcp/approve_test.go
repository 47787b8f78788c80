package mcpguard_test

import (
	"context"
	"errors"
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
				approver := func(_ context.Context, req *mcp.CallToolRequest) (string, error) {
					if req.Params.Name != "delete_file" {
						return "", errors.New("unexpected request")
					}
					return "alice", nil
				}
				f := newServerFixture(t, ctx, serverSetup{
					opts:       []mcpguard.Option{testCaller(), mcpguard.WithElicitation(d, approver)},
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
					if ev.Approval == nil || strings.Join(ev.Approval.Approvers, ",") != "alice" {
						t.Errorf("approval = %+v, want alice's", ev.Approval)
					}
					if recs[0].Task != recs[1].Task {
						t.Errorf("tasks %q and %q: the resumed call must be in the paused one's task", recs[0].Task, recs[1].Task)
					}
				} else {
					if !res.IsError || f.server.count("delete_file") != 0 {
						t.Fatalf("refused call = %v %q, ran %d times", res.IsError, text(res), f.server.count("delete_file"))
					}
					audittest.Expect(t, recs[1:], audittest.Want{Decision: audit.Deny, Step: agentguard.StepApprove, Approval: agentguard.ApprovalRefused})
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
// call refused; the tool does not run.
func TestServerElicitationUnsupported(t *testing.T) {
	ctx := testContext(t)
	d := approval.NewDeferred()
	f := newServerFixture(t, ctx, serverSetup{
		opts:      []mcpguard.Option{testCaller(), mcpguard.WithElicitation(d, func(context.Context, *mcp.CallToolRequest) (string, error) { return "alice", nil })},
		guardOpts: []agentguard.Option{agentguard.WithApprover(d)},
		session:   &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"},
	})
	res := f.call(t, ctx, "delete_file", map[string]any{"path": "/tmp/x"})
	if !res.IsError || !strings.Contains(text(res), "approval") || f.server.count("delete_file") != 0 {
		t.Errorf("call = %v %q, ran %d times", res.IsError, text(res), f.server.count("delete_file"))
	}
}
