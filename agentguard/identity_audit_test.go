package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
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
	"github.com/agentguard/go-sdk/credentials"
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
// identity records the loss once, however often it fails (the reason a
// fixed text, the source's error in Error), then the identity regained,
// then another SPIFFE ID acquired; failures before any identity record
// nothing.
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
	lost := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindIdentityChange, Reason: "identity lost"})
	if lost.Agent != "" || lost.Reason != "identity lost" || lost.Identity.Reason != "identity lost" || lost.Identity.Previous != a ||
		lost.Outcome != audit.OutcomeError || lost.Error != "workload API unreachable" {
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
	// Another SPIFFE ID is acquired: a source may give one per context,
	// so it replaces none.
	other := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindIdentityChange, Agent: b, Reason: "identity acquired"})
	if other.Identity.Previous != "" {
		t.Errorf("another agent's record = %+v", other.Identity)
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

// setSVID makes the source give id with an SVID of that serial and
// expiry.
func (s *switchSource) setSVID(id, serial string, notAfter time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id, s.err = identity.MustParse(id), nil
	s.id.Serial, s.id.NotAfter = serial, notAfter
}

// pause holds a call's identity source after it has read what it gives
// and before it returns it: read is closed once it has read, and it
// returns when release is closed.
type pause struct{ read, release chan struct{} }

type pauseKey struct{}

// pausingSource is a switchSource that pauses the calls whose context
// carries a *pause.
type pausingSource struct{ *switchSource }

func (s pausingSource) Identity(ctx context.Context) (identity.Identity, error) {
	id, err := s.switchSource.Identity(ctx)
	if p, ok := ctx.Value(pauseKey{}).(*pause); ok {
		close(p.read)
		<-p.release
	}
	return id, err
}

// pausedCall starts a call whose source reads what it gives now and
// returns it only when the returned function is called, which returns the
// call's error.
func pausedCall(t *testing.T, g *agentguard.Guard, tool *agentguard.Tool) (finish func() error) {
	t.Helper()
	p := &pause{read: make(chan struct{}), release: make(chan struct{})}
	errs := make(chan error, 1)
	go func() {
		_, err := g.Invoke(context.WithValue(context.Background(), pauseKey{}, p), tool, agentguard.Call{ID: "paused"})
		errs <- err
	}()
	<-p.read
	return func() error {
		close(p.release)
		return <-errs
	}
}

// TestIdentityPerContextSource: a source that answers per context (one
// guard serving several agents) records each agent's identity once, and
// a rotation of one agent's SVID once, however often calls switch between
// the agents.
func TestIdentityPerContextSource(t *testing.T) {
	type agentKey struct{}
	src := identity.SourceFunc(func(ctx context.Context) (identity.Identity, error) {
		id, _ := ctx.Value(agentKey{}).(identity.Identity)
		return id, nil
	})
	env := agentguardtest.New(t, nil, "tok", agentguard.WithIdentity(src))
	tool := counted("t", new(atomic.Int64))
	notAfter := time.Now().Add(time.Hour)
	agent := func(name, serial string, notAfter time.Time) context.Context {
		id := identity.MustParse("spiffe://example.org/agent/" + name)
		id.Serial, id.NotAfter = serial, notAfter
		return context.WithValue(context.Background(), agentKey{}, id)
	}
	a, b := agent("a", "a1", notAfter), agent("b", "b1", notAfter)
	for i := range 50 {
		ctx := a
		if i%2 == 1 {
			ctx = b
		}
		if _, err := env.Guard.Invoke(ctx, tool, agentguard.Call{}); err != nil {
			t.Fatal(err)
		}
	}
	changes := audittest.ExpectCount(t, env.Audit.Events(), identityChange, 2)
	for i, name := range []string{"a", "b"} {
		if e := changes[i]; e.Agent != "spiffe://example.org/agent/"+name || e.Reason != "identity acquired" || e.Identity.Previous != "" {
			t.Errorf("record %d = %+v %+v, want agent %s acquired", i, e, e.Identity, name)
		}
	}

	b2 := agent("b", "b2", notAfter.Add(time.Hour))
	for _, ctx := range []context.Context{b2, a, b2, a} {
		if _, err := env.Guard.Invoke(ctx, tool, agentguard.Call{}); err != nil {
			t.Fatal(err)
		}
	}
	changes = audittest.ExpectCount(t, env.Audit.Events(), identityChange, 3)
	if rot := changes[2]; rot.Agent != "spiffe://example.org/agent/b" || rot.Reason != "SVID rotated" ||
		rot.Identity.Previous != rot.Agent || rot.Identity.PreviousSerial != "b1" || rot.Identity.Serial != "b2" {
		t.Errorf("rotation record = %+v %+v", rot, rot.Identity)
	}
}

// TestIdentityStaleRead: a call that read the source before a change that
// another call recorded records no change back: not the SVID it read
// before a rotation, nor one that expires before the SVID recorded, nor
// the identity it read before a loss.
func TestIdentityStaleRead(t *testing.T) {
	const a = "spiffe://example.org/agent/a"
	t0 := time.Now()
	setup := func(t *testing.T) (*switchSource, *agentguardtest.Env, *agentguard.Tool) {
		src := &switchSource{}
		src.setSVID(a, "s0", t0.Add(time.Hour))
		env := agentguardtest.New(t, nil, "tok", agentguard.WithIdentity(pausingSource{src}))
		tool := counted("t", new(atomic.Int64))
		if _, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{}); err != nil {
			t.Fatal(err)
		}
		return src, env, tool
	}
	invoke := func(t *testing.T, env *agentguardtest.Env, tool *agentguard.Tool) error {
		t.Helper()
		_, err := env.Guard.Invoke(context.Background(), tool, agentguard.Call{})
		return err
	}
	reasons := func(evs []audit.Event) []string {
		var out []string
		for _, e := range evs {
			if e.Kind == audit.KindIdentityChange {
				out = append(out, e.Reason+" "+e.Identity.PreviousSerial+">"+e.Identity.Serial)
			}
		}
		return out
	}

	t.Run("read before a rotation", func(t *testing.T) {
		src, env, tool := setup(t)
		finish := pausedCall(t, env.Guard, tool) // reads s0
		src.setSVID(a, "s1", t0.Add(2*time.Hour))
		if err := invoke(t, env, tool); err != nil {
			t.Fatal(err)
		}
		if err := finish(); err != nil {
			t.Fatal(err)
		}
		if err := invoke(t, env, tool); err != nil {
			t.Fatal(err)
		}
		if got, want := reasons(env.Audit.Events()), []string{"identity acquired >s0", "SVID rotated s0>s1"}; !slices.Equal(got, want) {
			t.Errorf("identity records = %q, want %q", got, want)
		}
	})
	t.Run("an SVID older than the one recorded", func(t *testing.T) {
		src, env, tool := setup(t)
		src.setSVID(a, "s1", t0.Add(2*time.Hour))
		finish := pausedCall(t, env.Guard, tool) // reads s1
		src.setSVID(a, "s2", t0.Add(3*time.Hour))
		if err := invoke(t, env, tool); err != nil {
			t.Fatal(err)
		}
		if err := finish(); err != nil {
			t.Fatal(err)
		}
		if got, want := reasons(env.Audit.Events()), []string{"identity acquired >s0", "SVID rotated s0>s2"}; !slices.Equal(got, want) {
			t.Errorf("identity records = %q, want %q", got, want)
		}
	})
	t.Run("read before a loss", func(t *testing.T) {
		src, env, tool := setup(t)
		finish := pausedCall(t, env.Guard, tool) // reads a
		src.set("", errors.New("workload API unreachable"))
		if err := invoke(t, env, tool); !errors.Is(err, agentguard.ErrNoIdentity) {
			t.Fatalf("source failing: %v", err)
		}
		if err := finish(); err != nil {
			t.Fatalf("the call that read the identity: %v", err)
		}
		if err := invoke(t, env, tool); !errors.Is(err, agentguard.ErrNoIdentity) {
			t.Fatalf("source failing: %v", err)
		}
		if got, want := reasons(env.Audit.Events()), []string{"identity acquired >s0", "identity lost s0>"}; !slices.Equal(got, want) {
			t.Errorf("identity records = %q, want %q", got, want)
		}
	})
}

// TestIdentityLostScrubbed: the source's error goes into a loss record
// scrubbed of the user token of the task the call belongs to (a source
// that exchanges it may quote it), and into the call's error likewise.
func TestIdentityLostScrubbed(t *testing.T) {
	src := &switchSource{}
	src.set("spiffe://example.org/agent/a", nil)
	env := agentguardtest.New(t, nil, "tok", agentguard.WithIdentity(src))
	ctx, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{UserToken: credentials.NewSecret(userCanary)})
	if err != nil {
		t.Fatal(err)
	}
	defer task.End(context.Background())
	src.set("", errors.New("exchanging "+userCanary+" failed"))
	_, err = env.Guard.Invoke(ctx, counted("t", new(atomic.Int64)), agentguard.Call{})
	if !errors.Is(err, agentguard.ErrNoIdentity) || strings.Contains(err.Error(), userCanary) {
		t.Fatalf("err = %v, want ErrNoIdentity without the user token", err)
	}
	lost := audittest.Expect(t, env.Audit.Events(), audittest.Want{Kind: audit.KindIdentityChange, Reason: "identity lost"})
	if lost.Reason != "identity lost" || lost.Error != "exchanging [REDACTED] failed" {
		t.Errorf("loss record: reason %q, error %q", lost.Reason, lost.Error)
	}
	audittest.ExpectNoSecret(t, env.Audit.Events(), userCanary)
}
