package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
)

func credTool(leases *sync.Map) *agentguard.Tool {
	return &agentguard.Tool{
		Name: "api",
		Credentials: []credentials.Requirement{{
			Name: "token", Provider: agentguardtest.StaticProvider, Audience: "api.example", Scopes: []string{"b", "a"}, TTL: time.Minute,
		}},
		Handler: func(ctx context.Context, _ json.RawMessage) (*agentguard.Result, error) {
			c, ok := credentials.FromContext(ctx, "token")
			if !ok {
				return nil, errors.New("no credential")
			}
			leases.Store(c.LeaseID, c)
			return &agentguard.Result{}, nil
		},
	}
}

func TestTaskEndRevokesCredentials(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	var leases sync.Map
	tool := credTool(&leases)
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "t1", OnBehalfOf: "user:42"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := env.Guard.Invoke(ctx, tool, agentguard.Call{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := env.Provider.Issued(); n != 1 {
		t.Fatalf("provider issued %d credentials for one task and scope, want 1", n)
	}
	var leaseID string
	leases.Range(func(k, _ any) bool { leaseID = k.(string); return true })
	if err := env.Provider.Check(leaseID); err != nil {
		t.Fatalf("lease revoked during the task: %v", err)
	}
	// End with the task's own context, as agents usually do.
	if err := task.End(ctx); err != nil {
		t.Fatal(err)
	}
	if err := env.Provider.Check(leaseID); !errors.Is(err, credentials.ErrRevoked) {
		t.Fatalf("after End: Check = %v, want ErrRevoked", err)
	}
	if ctx.Err() == nil {
		t.Error("task context not cancelled by End")
	}
	revs := env.Audit.Kind(audit.KindCredentialRevoke)
	if len(revs) != 1 || revs[0].Leases[0] != leaseID || revs[0].Outcome != audit.OutcomeOK || revs[0].Task != "t1" {
		t.Errorf("revocation events = %+v", revs)
	}
	ends := env.Audit.Kind(audit.KindTaskEnd)
	if len(ends) != 1 || ends[0].OnBehalfOf != "user:42" {
		t.Errorf("task_end events = %+v", ends)
	}
	if _, err := env.Guard.Invoke(ctx, tool, agentguard.Call{}); !errors.Is(err, agentguard.ErrTaskEnded) {
		t.Errorf("call after End: %v, want ErrTaskEnded", err)
	}
	if err := task.End(context.Background()); err != nil {
		t.Errorf("second End: %v", err)
	}
}

func TestTaskEndsWhenContextDone(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	var leases sync.Map
	parent, cancel := context.WithCancel(context.Background())
	ctx, task, err := env.Guard.StartTask(parent, agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Guard.Invoke(ctx, credTool(&leases), agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-task.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("task did not end after its context was cancelled")
	}
	leases.Range(func(k, _ any) bool {
		if err := env.Provider.Check(k.(string)); !errors.Is(err, credentials.ErrRevoked) {
			t.Errorf("lease %s not revoked", k)
		}
		return true
	})
	if ends := env.Audit.Kind(audit.KindTaskEnd); len(ends) != 1 {
		t.Errorf("task_end events = %d, want 1", len(ends))
	}
}

func TestCallWithoutTaskRevokesAfterCall(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	var leases sync.Map
	if _, err := env.Guard.Invoke(context.Background(), credTool(&leases), agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	n := 0
	leases.Range(func(k, _ any) bool {
		n++
		if err := env.Provider.Check(k.(string)); !errors.Is(err, credentials.ErrRevoked) {
			t.Errorf("lease %s of a call outside any task not revoked", k)
		}
		return true
	})
	if n != 1 {
		t.Fatalf("%d leases, want 1", n)
	}
	if revs := env.Audit.Kind(audit.KindCredentialRevoke); len(revs) != 1 {
		t.Errorf("revocation events = %d, want 1", len(revs))
	}
}

func TestCloseEndsTasksAndRefusesCalls(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	var leases sync.Map
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Guard.Invoke(ctx, credTool(&leases), agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	if err := env.Guard.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-task.Done():
	default:
		t.Fatal("Close left a task open")
	}
	var runs atomic.Int64
	_, err = env.Guard.Invoke(context.Background(), counted("x", &runs), agentguard.Call{})
	if !errors.Is(err, agentguard.ErrClosed) || runs.Load() != 0 {
		t.Fatalf("after Close: err = %v, runs %d", err, runs.Load())
	}
	if _, _, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{}); !errors.Is(err, agentguard.ErrClosed) {
		t.Errorf("StartTask after Close: %v", err)
	}
	if err := env.Guard.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestRevocationFailureIsReportedAndAudited(t *testing.T) {
	failing := &failingRevoker{StaticProvider: credentials.NewStaticProvider("tok")}
	broker := credentials.NewBroker(credentials.WithProvider(agentguardtest.StaticProvider, failing))
	env := agentguardtest.New(t, nil, "unused", agentguard.WithBroker(broker))
	var leases sync.Map
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Guard.Invoke(ctx, credTool(&leases), agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	if err := task.End(context.Background()); err == nil {
		t.Fatal("End reported no error although revocation failed")
	}
	revs := env.Audit.Kind(audit.KindCredentialRevoke)
	if len(revs) != 1 || revs[0].Outcome != audit.OutcomeError || revs[0].Error == "" {
		t.Errorf("revocation events = %+v, want one failure", revs)
	}
	if ends := env.Audit.Kind(audit.KindTaskEnd); len(ends) != 1 || ends[0].Outcome != audit.OutcomeError {
		t.Errorf("task_end = %+v, want outcome error", ends)
	}
}

type failingRevoker struct{ *credentials.StaticProvider }

func (f *failingRevoker) Revoke(context.Context, *credentials.Credential) error {
	return errors.New("revocation endpoint unavailable")
}

func TestStartTaskOnDoneContext(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := env.Guard.StartTask(ctx, agentguard.TaskSpec{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("StartTask on a cancelled context: %v, want context.Canceled", err)
	}
}

// TestCloseRacesStartTask runs Close while tasks start and calls run; under
// -race it proves the bookkeeping is safe, and every task that started ends.
func TestCloseRacesStartTask(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	var leases sync.Map
	var wg sync.WaitGroup
	var mu sync.Mutex
	var tasks []*agentguard.Task
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
			if err != nil {
				if !errors.Is(err, agentguard.ErrClosed) {
					t.Error(err)
				}
				return
			}
			mu.Lock()
			tasks = append(tasks, task)
			mu.Unlock()
			_, _ = env.Guard.Invoke(ctx, credTool(&leases), agentguard.Call{})
		}()
	}
	if err := env.Guard.Close(context.Background()); err != nil {
		t.Error(err)
	}
	wg.Wait()
	for _, task := range tasks {
		select {
		case <-task.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a task started before Close is still open")
		}
	}
	leases.Range(func(k, _ any) bool {
		if err := env.Provider.Check(k.(string)); !errors.Is(err, credentials.ErrRevoked) {
			t.Errorf("lease %s outlived Close", k)
		}
		return true
	})
}

// TestLeaseBoundByTaskNotCall: a credential never outlives its task's
// deadline, and short per-call deadlines do not cause a new lease per call.
func TestLeaseBoundByTaskNotCall(t *testing.T) {
	env := agentguardtest.New(t, nil, "tok")
	var leases sync.Map
	tool := credTool(&leases) // asks for a one-minute TTL
	parent, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx, task, err := env.Guard.StartTask(parent, agentguard.TaskSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	taskDeadline, _ := ctx.Deadline()
	for range 5 {
		callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := env.Guard.Invoke(callCtx, tool, agentguard.Call{})
		callCancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := env.Provider.Issued(); n != 1 {
		t.Errorf("issued %d credentials for 5 calls of one task, want 1", n)
	}
	leases.Range(func(_, v any) bool {
		c := v.(*credentials.Credential)
		if c.ExpiresAt.After(taskDeadline) {
			t.Errorf("lease expires %v, after the task's deadline %v", c.ExpiresAt, taskDeadline)
		}
		return true
	})
}

// TestTaskEndLinkedToSpan: the records of a task's end and of the
// revocations it makes carry the trace and span of the context End is
// called with, as its start record carries StartTask's.
func TestTaskEndLinkedToSpan(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	tracer := tp.Tracer("test")
	env := agentguardtest.New(t, nil, "tok")
	startCtx, startSpan := tracer.Start(context.Background(), "start")
	ctx, task, err := env.Guard.StartTask(startCtx, agentguard.TaskSpec{ID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	startSpan.End()
	if _, err := env.Guard.Invoke(ctx, credTool(&sync.Map{}), agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	endCtx, endSpan := tracer.Start(context.Background(), "end")
	if err := task.End(endCtx); err != nil {
		t.Fatal(err)
	}
	endSpan.End()
	start := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindTaskStart, Task: "t1"})
	if sc := startSpan.SpanContext(); start.TraceID != sc.TraceID().String() || start.SpanID != sc.SpanID().String() {
		t.Errorf("task_start linked to %s/%s, want StartTask's span", start.TraceID, start.SpanID)
	}
	sc := endSpan.SpanContext()
	for _, k := range []audit.Kind{audit.KindTaskEnd, audit.KindCredentialRevoke} {
		e := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: k, Task: "t1"})
		if e.TraceID != sc.TraceID().String() || e.SpanID != sc.SpanID().String() {
			t.Errorf("%s linked to %q/%q, want End's span %s/%s", k, e.TraceID, e.SpanID, sc.TraceID(), sc.SpanID())
		}
	}
}
