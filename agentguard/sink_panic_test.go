package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/identity"
)

// panickySink records into rec, but panics on the records of kind while
// panics is above zero, counting it down.
type panickySink struct {
	rec    *audittest.Recorder
	kind   audit.Kind
	panics atomic.Int64
}

func (s *panickySink) Write(ctx context.Context, e audit.Event) error {
	if e.Kind == s.kind && s.panics.Add(-1) >= 0 {
		panic("sink broke")
	}
	return s.rec.Write(ctx, e)
}

// TestLeaseIssueSinkPanics: a sink that panics while recording a lease's
// issue has not recorded it: the call is denied, the tool does not run,
// and the lease, cached for the task, is used by no later call until its
// issue is recorded.
func TestLeaseIssueSinkPanics(t *testing.T) {
	for _, tc := range []struct {
		name   string
		panics int64
	}{
		{"once", 1},                 // the call retries the record at once; denied all the same
		{"until it recovers", 1000}, // later calls are denied until it does
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &panickySink{rec: audittest.NewRecorder(), kind: audit.KindCredentialIssue}
			sink.panics.Store(tc.panics)
			env := agentguardtest.New(t, nil, "cred-value", agentguard.WithAudit(sink))
			ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
			if err != nil {
				t.Fatal(err)
			}
			defer task.End(context.Background())
			var runs atomic.Int64
			tool := &agentguard.Tool{Name: "t", Credentials: []credentials.Requirement{{Name: "c", Provider: agentguardtest.StaticProvider}},
				Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
					runs.Add(1)
					return &agentguard.Result{}, nil
				}}
			var de *agentguard.DenyError
			_, err = env.Guard.Invoke(ctx, tool, agentguard.Call{ID: "1"})
			if !errors.Is(err, agentguard.ErrAudit) || !errors.As(err, &de) || de.Step != agentguard.StepCredential {
				t.Fatalf("first call = %v, want a denial at the credential step wrapping ErrAudit", err)
			}
			if tc.panics > 1 {
				for _, id := range []string{"2", "3"} {
					if _, err := env.Guard.Invoke(ctx, tool, agentguard.Call{ID: id}); !errors.Is(err, agentguard.ErrAudit) {
						t.Fatalf("call %s with the issue still unrecorded = %v, want ErrAudit", id, err)
					}
				}
				audittest.ExpectNone(t, sink.rec.Events(), audittest.Want{Kind: audit.KindCredentialIssue})
				sink.panics.Store(0)
			}
			if runs.Load() != 0 {
				t.Fatalf("the tool ran %d times with a lease whose issue was not recorded", runs.Load())
			}
			if _, err := env.Guard.Invoke(ctx, tool, agentguard.Call{ID: "after"}); err != nil {
				t.Fatal(err)
			}
			issue := audittest.Expect(t, sink.rec.Events(), audittest.Want{Kind: audit.KindCredentialIssue})
			call := audittest.Expect(t, sink.rec.Events(), audittest.Want{Kind: audit.KindToolCall, CallID: "after", Decision: audit.Allow})
			if len(call.Leases) != 1 || len(issue.Leases) != 1 || call.Leases[0] != issue.Leases[0] {
				t.Errorf("the call used lease %v, the issue record is of %v", call.Leases, issue.Leases)
			}
			if runs.Load() != 1 {
				t.Errorf("the tool ran %d times, want 1", runs.Load())
			}
		})
	}
}

// TestTaskAndListSinkPanics: a sink that panics on the record of a task's
// start, end or refusal, or of a refused listing, has not recorded it:
// StartTask, End and List return an error wrapping ErrAudit, in either
// audit mode, and the panic goes no further.
func TestTaskAndListSinkPanics(t *testing.T) {
	bg := context.Background()
	for _, mode := range []struct {
		name string
		opts []agentguard.Option
	}{{"strict", nil}, {"best effort", []agentguard.Option{agentguard.WithBestEffortAudit()}}} {
		t.Run(mode.name, func(t *testing.T) {
			sink := &panickySink{rec: audittest.NewRecorder()}
			env := agentguardtest.New(t, nil, "tok", append(mode.opts, agentguard.WithAudit(sink))...)
			panicOn := func(k audit.Kind) {
				sink.kind = k
				sink.panics.Store(1)
			}

			panicOn(audit.KindTaskStart)
			if _, task, err := env.Guard.StartTask(bg, agentguard.TaskSpec{ID: "t1"}); !errors.Is(err, agentguard.ErrAudit) || task != nil {
				t.Fatalf("StartTask = %v, %v; want no task and ErrAudit", task, err)
			}
			// Not started: the ID is free.
			_, task, err := env.Guard.StartTask(bg, agentguard.TaskSpec{ID: "t1"})
			if err != nil {
				t.Fatal(err)
			}

			panicOn(audit.KindTaskStart) // the refusal of a second task of that ID
			if _, _, err := env.Guard.StartTask(bg, agentguard.TaskSpec{ID: "t1"}); !errors.Is(err, agentguard.ErrAudit) {
				t.Fatalf("refused StartTask = %v, want ErrAudit", err)
			}

			panicOn(audit.KindTaskEnd)
			if err := task.End(bg); !errors.Is(err, agentguard.ErrAudit) {
				t.Fatalf("End = %v, want ErrAudit", err)
			}
			// Ended all the same: the ID is free again.
			if _, again, err := env.Guard.StartTask(bg, agentguard.TaskSpec{ID: "t1"}); err != nil {
				t.Fatalf("StartTask after End: %v", err)
			} else {
				_ = again.End(bg)
			}

			if err := env.Guard.Suspend(bg, identity.MustParse(agentguardtest.AgentID).ID, "test"); err != nil {
				t.Fatal(err)
			}
			panicOn(audit.KindToolList)
			_, err = env.Guard.NewRegistry("x").List(bg)
			if !errors.Is(err, agentguard.ErrSuspended) || !errors.Is(err, agentguard.ErrAudit) {
				t.Fatalf("List = %v, want ErrSuspended and ErrAudit", err)
			}
		})
	}
}
