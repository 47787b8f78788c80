package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
)

var identityChange = audittest.Want{Kind: audit.KindIdentityChange}

// switchSource is an identity source a test switches between identities
// and failures. It honours its context, as real sources do.
type switchSource struct {
	mu    sync.Mutex
	id    identity.Identity
	err   error
	calls atomic.Int64
}

func (s *switchSource) Identity(ctx context.Context) (identity.Identity, error) {
	s.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return identity.Identity{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, s.err
}

func (s *switchSource) set(id string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id, s.err = identity.Identity{}, err
	if id != "" {
		s.id = identity.MustParse(id)
	}
}

// TestIdentityChangeRotation: the first identity the guard sees and each
// rotation of its SVID are recorded once, with the SVID's serial and
// expiry, linked to the call that saw them; calls in between record
// nothing more.
func TestIdentityChangeRotation(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, "example.org", identity.WithDevClock(clock.Now), identity.WithDevTTL(10*time.Minute, 0))
	agent, err := iss.Agent("/agent/a")
	if err != nil {
		t.Fatal(err)
	}
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	env := agentguardtest.New(t, nil, "tok", agentguard.WithIdentity(agent), agentguard.WithTracerProvider(tp))
	ctx := context.Background()
	var runs atomic.Int64
	tool := counted("t", &runs)
	for range 3 {
		if _, err := env.Guard.Invoke(ctx, tool, agentguard.Call{}); err != nil {
			t.Fatal(err)
		}
	}
	first := audittest.Expect(t, env.Audit.Events(), identityChange)
	sv, err := agent.SVID()
	if err != nil {
		t.Fatal(err)
	}
	serial := sv.Certificates[0].SerialNumber.Text(16)
	ch := first.Identity
	if first.Agent != agent.ID().String() || ch == nil || ch.Reason != "identity acquired" || first.Reason != ch.Reason ||
		ch.Previous != "" || ch.Serial != serial || !ch.NotAfter.Equal(sv.Certificates[0].NotAfter) || first.Outcome != audit.OutcomeOK {
		t.Errorf("first identity record = %+v %+v", first, ch)
	}
	// Recorded by the first call, before its own record, in its span.
	evs := env.Audit.Events()
	if evs[0].Kind != audit.KindIdentityChange {
		t.Errorf("first record is %s, want the identity change", evs[0].Kind)
	}
	span := sr.Ended()[0]
	if first.TraceID != span.SpanContext().TraceID().String() || first.SpanID != span.SpanContext().SpanID().String() {
		t.Errorf("identity record not linked to the call that saw it: %s/%s", first.TraceID, first.SpanID)
	}

	// Past half its life the SVID is renewed: a rotation.
	clock.Advance(6 * time.Minute)
	for range 2 {
		if _, err := env.Guard.Invoke(ctx, tool, agentguard.Call{}); err != nil {
			t.Fatal(err)
		}
	}
	changes := audittest.ExpectCount(t, env.Audit.Events(), identityChange, 2)
	rot := changes[1]
	sv, _ = agent.SVID()
	if rot.Agent != agent.ID().String() || rot.Identity.Reason != "SVID rotated" || rot.Identity.Previous != agent.ID().String() ||
		rot.Identity.PreviousSerial != serial || rot.Identity.Serial != sv.Certificates[0].SerialNumber.Text(16) || rot.Identity.Serial == serial {
		t.Errorf("rotation record = %+v %+v", rot, rot.Identity)
	}
	if runs.Load() != 5 {
		t.Errorf("tool ran %d times, want 5", runs.Load())
	}
}

// TestIdentityLostAndRegained: a source that fails after having given an
// identity records the loss once, however often it fails, then the
// identity regained, then another SPIFFE ID; failures before any identity
// record nothing.
func TestIdentityLostAndRegained(t *testing.T) {
	src := &switchSource{}
	env := agentguardtest.New(t, nil, "tok", agentguard.WithIdentity(src))
	ctx := context.Background()
	tool := counted("t", new(atomic.Int64))
	invoke := func() error {
		_, err := env.Guard.Invoke(ctx, tool, agentguard.Call{})
		return err
	}
	const a, b = "spiffe://example.org/agent/a", "spiffe://example.org/agent/b"
	outage := errors.New("workload API unreachable")

	src.set("", outage)
	if err := invoke(); !errors.Is(err, agentguard.ErrNoIdentity) {
		t.Fatalf("no identity yet: %v", err)
	}
	audittest.ExpectNone(t, env.Audit.Events(), identityChange)

	src.set(a, nil)
	if err := invoke(); err != nil {
		t.Fatal(err)
	}
	audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindIdentityChange, Agent: a, Reason: "identity acquired"})

	src.set("", outage)
	for range 3 {
		if err := invoke(); !errors.Is(err, agentguard.ErrNoIdentity) {
			t.Fatalf("identity lost: %v", err)
		}
	}
	lost := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindIdentityChange, Reason: "identity lost: workload API unreachable"})
	if lost.Agent != "" || lost.Identity.Previous != a || lost.Outcome != audit.OutcomeError || !strings.Contains(lost.Error, "unreachable") {
		t.Errorf("loss record = %+v %+v", lost, lost.Identity)
	}

	src.set(a, nil)
	for range 2 {
		if err := invoke(); err != nil {
			t.Fatal(err)
		}
	}
	back := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindIdentityChange, Agent: a, Reason: "identity regained"})
	if back.Identity.Previous != a {
		t.Errorf("regained record = %+v", back.Identity)
	}

	src.set(b, nil)
	if err := invoke(); err != nil {
		t.Fatal(err)
	}
	changed := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindIdentityChange, Agent: b, Reason: "identity changed"})
	if changed.Identity.Previous != a {
		t.Errorf("changed record = %+v", changed.Identity)
	}
	audittest.ExpectCount(t, env.Audit.Events(), identityChange, 4)

	// A call whose own context is done is no loss of identity.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := env.Guard.Invoke(cctx, tool, agentguard.Call{}); err == nil {
		t.Fatal("a call with a cancelled context went ahead")
	}
	audittest.ExpectCount(t, env.Audit.Events(), identityChange, 4)
}

// TestIdentityChangeRecordedOnce: calls that see the same change at the
// same time record it once; the others wait for that record and go ahead.
func TestIdentityChangeRecordedOnce(t *testing.T) {
	const n = 16
	src := &switchSource{}
	src.set("spiffe://example.org/agent/a", nil)
	release := make(chan struct{})
	var identityWrites atomic.Int64
	rec := audittest.NewRecorder()
	sink := audit.SinkFunc(func(ctx context.Context, e audit.Event) error {
		if e.Kind == audit.KindIdentityChange {
			identityWrites.Add(1)
			<-release // held until every call has asked for its identity
		}
		return rec.Write(ctx, e)
	})
	env := agentguardtest.New(t, nil, "tok", agentguard.WithIdentity(src), agentguard.WithAudit(sink))
	tool := counted("t", new(atomic.Int64))
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{})
			errs <- err
		}()
	}
	waitFor(t, "every call to ask for its identity", func() bool { return src.calls.Load() >= n })
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if identityWrites.Load() != 1 {
		t.Errorf("identity change written %d times, want once", identityWrites.Load())
	}
	audittest.Expect(t, rec.Events(), identityChange)
	audittest.ExpectCount(t, rec.Events(), audittest.Want{Kind: audit.KindToolCall, Decision: audit.Allow}, n)
	_ = env
}

// TestIdentityChangeStrict: in strict mode an identity change that cannot
// be recorded denies the call at the identify step (ErrAudit), the tool
// does not run, and the next call records the change.
func TestIdentityChangeStrict(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	rec := audittest.NewRecorder()
	sink := audit.SinkFunc(func(ctx context.Context, e audit.Event) error {
		if e.Kind == audit.KindIdentityChange && fail.Load() {
			return errors.New("disk full")
		}
		return rec.Write(ctx, e)
	})
	env := agentguardtest.New(t, nil, "tok", agentguard.WithAudit(sink))
	var runs atomic.Int64
	tool := counted("t", &runs)
	ctx := context.Background()
	for range 2 { // not recorded, so still a change the second time
		_, err := env.Guard.Invoke(ctx, tool, agentguard.Call{ID: "c"})
		var de *agentguard.DenyError
		if !errors.Is(err, agentguard.ErrAudit) || !errors.As(err, &de) || de.Step != agentguard.StepIdentify {
			t.Fatalf("err = %v, want a denial at the identify step wrapping ErrAudit", err)
		}
	}
	if runs.Load() != 0 {
		t.Fatal("the tool ran although the identity change was not recorded")
	}
	audittest.ExpectCount(t, rec.Events(), audittest.Want{Kind: audit.KindToolCall, Agent: agentguardtest.AgentID,
		Decision: audit.Deny, Step: agentguard.StepIdentify, Reason: "identity change not audited"}, 2)
	audittest.ExpectNone(t, rec.Events(), identityChange)

	// Other ways in are refused alike.
	if _, _, err := env.Guard.StartTask(ctx, agentguard.TaskSpec{ID: "t1"}); !errors.Is(err, agentguard.ErrAudit) {
		t.Errorf("StartTask = %v, want ErrAudit", err)
	}
	audittest.Expect(t, rec.Events(), audittest.Want{Kind: audit.KindTaskStart, Task: "t1", Decision: audit.Deny, Step: agentguard.StepIdentify})

	fail.Store(false)
	if _, err := env.Guard.Invoke(ctx, tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	audittest.Expect(t, rec.Events(), audittest.Want{Kind: audit.KindIdentityChange, Agent: agentguardtest.AgentID, Reason: "identity acquired"})
	if runs.Load() != 1 {
		t.Errorf("tool ran %d times, want 1", runs.Load())
	}
}

// TestIdentityChangeBestEffort: in best-effort mode a change that cannot
// be recorded is logged, the call goes ahead, and the change is not
// recorded again.
func TestIdentityChangeBestEffort(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	rec := audittest.NewRecorder()
	sink := audit.SinkFunc(func(ctx context.Context, e audit.Event) error {
		if e.Kind == audit.KindIdentityChange && fail.Load() {
			return errors.New("disk full")
		}
		return rec.Write(ctx, e)
	})
	var logs syncBuffer
	env := agentguardtest.New(t, nil, "tok", agentguard.WithAudit(sink), agentguard.WithBestEffortAudit(), agentguard.WithLogger(logs.logger()))
	tool := counted("t", new(atomic.Int64))
	if _, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	fail.Store(false)
	if _, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	audittest.ExpectNone(t, rec.Events(), identityChange)
	if !strings.Contains(logs.String(), `"kind":"identity_change"`) {
		t.Errorf("the unrecorded change was not logged: %s", logs.String())
	}
}

// TestIdentityChangeSinkReenters: a sink that calls back into the guard
// while it records an identity change does not wait for itself.
func TestIdentityChangeSinkReenters(t *testing.T) {
	rec := audittest.NewRecorder()
	var g atomic.Pointer[agentguard.Guard]
	tool := counted("t", new(atomic.Int64))
	var inner error
	sink := audit.SinkFunc(func(ctx context.Context, e audit.Event) error {
		if e.Kind == audit.KindIdentityChange {
			_, inner = g.Load().Invoke(ctx, tool, agentguard.Call{ID: "from-the-sink"})
		}
		return rec.Write(ctx, e)
	})
	env := agentguardtest.New(t, nil, "tok", agentguard.WithAudit(sink))
	g.Store(env.Guard)
	err := within(t, "a call whose sink re-enters the guard", func() error {
		_, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{})
		return err
	})
	if err != nil || inner != nil {
		t.Fatalf("outer call = %v, call from the sink = %v", err, inner)
	}
	audittest.Expect(t, rec.Events(), identityChange)
}

// TestIdentityChangeOtherWaysIn: the guard records the identity it first
// sees whichever way it is asked: a task's start, a listing, a handoff.
func TestIdentityChangeOtherWaysIn(t *testing.T) {
	ctx := context.Background()
	t.Run("StartTask", func(t *testing.T) {
		env := agentguardtest.New(t, nil, "tok")
		if _, _, err := env.Guard.StartTask(ctx, agentguard.TaskSpec{ID: "t1"}); err != nil {
			t.Fatal(err)
		}
		evs := env.Audit.Events()
		audittest.Expect(t, evs, audittest.Want{Kind: audit.KindIdentityChange, Agent: agentguardtest.AgentID})
		start := audittest.Expect(t, evs, audittest.Want{Kind: audit.KindTaskStart, Task: "t1", Decision: audit.Allow, Outcome: audit.OutcomeOK})
		if start.Agent != agentguardtest.AgentID {
			t.Errorf("task_start names agent %q, want %q", start.Agent, agentguardtest.AgentID)
		}
	})
	t.Run("List", func(t *testing.T) {
		env := agentguardtest.New(t, nil, "tok", agentguard.WithLock(agentguard.NewLock()))
		if _, err := env.Guard.NewRegistry("x").List(ctx); err != nil {
			t.Fatal(err)
		}
		audittest.Expect(t, env.Audit.Events(), identityChange)
	})
	t.Run("Delegate and AcceptHandoff", func(t *testing.T) {
		iss := newIssuer(t, "example.org")
		planner := devAgent(t, iss, "/agent/planner", delegationPolicies)
		researcher := devAgent(t, iss, "/agent/researcher", delegationPolicies)
		h, err := planner.guard.Handoff(ctx, researcher.agent.ID())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := researcher.guard.AcceptHandoff(ctx, h); err != nil {
			t.Fatal(err)
		}
		audittest.Expect(t, planner.audit.Events(), audittest.Want{Kind: audit.KindIdentityChange, Agent: planner.agent.ID().String()})
		audittest.Expect(t, researcher.audit.Events(), audittest.Want{Kind: audit.KindIdentityChange, Agent: researcher.agent.ID().String()})
	})
}

// The identity record's JSON carries the SVID facts under "identity".
func TestIdentityChangeJSON(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, "example.org", identity.WithDevClock(clock.Now))
	agent, _ := iss.Agent("/agent/a")
	env := agentguardtest.New(t, nil, "tok", agentguard.WithIdentity(agent))
	if _, err := env.Guard.Invoke(context.Background(), counted("t", new(atomic.Int64)), agentguard.Call{}); err != nil {
		t.Fatal(err)
	}
	e := audittest.Expect(t, env.Audit.Events(), identityChange)
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Kind     string `json:"kind"`
		Agent    string `json:"agent"`
		Identity struct {
			Serial   string    `json:"serial"`
			NotAfter time.Time `json:"not_after"`
			Reason   string    `json:"reason"`
		} `json:"identity"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Kind != "identity_change" || m.Agent != agent.ID().String() || m.Identity.Serial == "" ||
		!m.Identity.NotAfter.Equal(clock.Now().Add(identity.DefaultX509SVIDTTL)) || m.Identity.Reason != "identity acquired" {
		t.Errorf("identity record JSON = %s", b)
	}
}
