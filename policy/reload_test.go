package policy_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/policy"
)

const (
	allowRefund = `@id("allow-refund")
permit (principal, action == Action::"refund", resource);
`
	forbidRefund = `@id("forbid-refund")
@reason("refunds are frozen")
forbid (principal, action == Action::"refund", resource);
`
)

// writeFile writes name under dir atomically (temporary file, then rename),
// as the Watcher's documentation asks.
func writeFile(t *testing.T, dir, name, text string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newWatched(t *testing.T, opts ...policy.WatchOption) (dir string, e *policy.CedarEngine, w *policy.Watcher, rec *audittest.Recorder, logs *logBuffer) {
	t.Helper()
	dir = t.TempDir()
	writeFile(t, dir, "refund.cedar", allowRefund)
	set, err := policy.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err = policy.NewCedarEngine(set)
	if err != nil {
		t.Fatal(err)
	}
	rec = audittest.NewRecorder()
	logs = &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	w = policy.WatchDir(e, dir, append([]policy.WatchOption{policy.WatchAudit(rec), policy.WatchLogger(logger)}, opts...)...)
	t.Cleanup(func() { w.Close() })
	return dir, e, w, rec, logs
}

func TestReloadFirstLookIsQuiet(t *testing.T) {
	_, e, w, rec, logs := newWatched(t)
	before := e.Set()
	r, err := w.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Loaded || e.Set() != before {
		t.Fatalf("the set the engine was built from was swapped again: %+v", r)
	}
	if len(rec.Events()) != 0 || logs.String() != "" {
		t.Fatalf("an unchanged version was recorded: %v %q", rec.Events(), logs.String())
	}
}

func TestReloadGoodVersion(t *testing.T) {
	dir, e, w, rec, logs := newWatched(t)
	old := e.Set().Digest()
	if d := decide(t, e, baseRequest()); !d.Allowed || d.Revision != old {
		t.Fatalf("before: %+v", d)
	}
	writeFile(t, dir, "refund.cedar", allowRefund+forbidRefund)
	r, err := w.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Changed || !r.Loaded || r.OldRevision != old || r.NewRevision == old || r.Policies != 2 {
		t.Fatalf("Reload = %+v", r)
	}
	d := decide(t, e, baseRequest())
	if d.Allowed || d.Revision != r.NewRevision || d.Reason != "refunds are frozen" {
		t.Fatalf("after: %+v, want denied by the new set %s", d, r.NewRevision)
	}
	evs := rec.Kind(audit.KindPolicyLoad)
	if len(evs) != 1 {
		t.Fatalf("policy_load events = %v", rec.Events())
	}
	pc := evs[0].PolicyChange
	if pc == nil || pc.OldRevision != old || pc.NewRevision != r.NewRevision || pc.Files != r.Files || pc.Source != dir || pc.Policies != 2 || evs[0].Outcome != audit.OutcomeOK {
		t.Fatalf("audit record = %+v %+v", evs[0], pc)
	}
	if l := logs.String(); !strings.Contains(l, "policy version loaded") || !strings.Contains(l, r.NewRevision) || !strings.Contains(l, old) {
		t.Fatalf("log = %q", l)
	}
	// Looking again at the same files does nothing.
	if r2, err := w.Reload(context.Background()); err != nil || r2.Changed || r2.Loaded {
		t.Fatalf("second look = %+v, %v", r2, err)
	}
	if n := len(rec.Events()); n != 1 {
		t.Fatalf("%d audit records after an unchanged look, want 1", n)
	}
}

func TestReloadBadVersionKeepsLastGood(t *testing.T) {
	tests := []struct {
		name, file, text, want string
	}{
		{"syntax error", "refund.cedar", "@id(\"x\")\npermit (principal, action == , resource);\n", "refund.cedar:2"},
		{"missing id", "extra.cedar", "permit (principal, action, resource);\n", "extra.cedar:1:1: policy has no @id"},
		{"duplicate id", "extra.cedar", allowRefund, "duplicate @id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, e, w, rec, logs := newWatched(t)
			good := e.Set()
			writeFile(t, dir, tt.file, tt.text)
			r, err := w.Reload(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(r.Err, err) {
				t.Fatalf("Reload error = %v, want one naming %q", err, tt.want)
			}
			if r.Loaded || !r.Changed || e.Set() != good {
				t.Fatalf("a bad version changed the engine: %+v", r)
			}
			if d := decide(t, e, baseRequest()); !d.Allowed || d.Revision != good.Digest() {
				t.Fatalf("the last good set is not enforcing: %+v", d)
			}
			evs := rec.Kind(audit.KindPolicyReject)
			if len(evs) != 1 || evs[0].PolicyChange.OldRevision != good.Digest() || evs[0].PolicyChange.Files == "" ||
				evs[0].Outcome != audit.OutcomeError || !strings.Contains(evs[0].Error, tt.want) {
				t.Fatalf("policy_reject records = %+v", rec.Events())
			}
			if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "refused") || !strings.Contains(l, good.Digest()) {
				t.Fatalf("log = %q", l)
			}
			// The same bad version is reported to Reload again, but
			// recorded once.
			if _, err := w.Reload(context.Background()); err == nil {
				t.Fatal("second look at the bad version: no error")
			}
			if n := len(rec.Events()); n != 1 {
				t.Fatalf("%d records for one bad version", n)
			}
			// Fixing it loads the fix.
			writeFile(t, dir, tt.file, strings.Replace(forbidRefund, "forbid-refund", "fixed-"+strings.ReplaceAll(tt.name, " ", "-"), 1))
			if tt.file == "refund.cedar" {
				writeFile(t, dir, tt.file, allowRefund+forbidRefund)
			}
			if r, err := w.Reload(context.Background()); err != nil || !r.Loaded {
				t.Fatalf("fixed version: %+v, %v", r, err)
			}
			if d := decide(t, e, baseRequest()); d.Allowed {
				t.Fatalf("the fixed version is not enforcing: %+v", d)
			}
		})
	}
}

func TestReloadEmptyTreeRefused(t *testing.T) {
	dir, e, w, rec, _ := newWatched(t)
	good := e.Set()
	if err := os.Remove(filepath.Join(dir, "refund.cedar")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "no .cedar files") {
		t.Fatalf("Reload of an empty directory = %v", err)
	}
	if e.Set() != good || len(rec.Kind(audit.KindPolicyReject)) != 1 {
		t.Fatalf("an empty directory replaced the policies (deny-all) or went unrecorded: %v", rec.Events())
	}
}

func TestReloadCommentOnlyChange(t *testing.T) {
	dir, e, w, rec, _ := newWatched(t)
	good := e.Set()
	writeFile(t, dir, "refund.cedar", "// a comment\n"+allowRefund)
	r, err := w.Reload(context.Background())
	if err != nil || !r.Changed || r.Loaded || e.Set() != good {
		t.Fatalf("comment-only change: %+v, %v", r, err)
	}
	if len(rec.Events()) != 0 {
		t.Fatalf("records for unchanged policies: %v", rec.Events())
	}
}

func TestReloadValidatesAgainstSchema(t *testing.T) {
	schema, err := policy.NewSchema(policy.Tool{Name: "refund", InputSchema: []byte(`{"type":"object","properties":{"amount":{"type":"integer"}},"required":["amount"]}`)})
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"p.cedar": {Data: []byte(allowRefund)}}
	set, err := policy.LoadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.NewCedarEngine(set, policy.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	rec := audittest.NewRecorder()
	w := policy.NewWatcher(e, fsys, "memory", policy.WatchAudit(rec), policy.WatchLogger(slog.New(slog.DiscardHandler)))
	fsys["p.cedar"] = &fstest.MapFile{Data: []byte(allowRefund + `@id("typo")
forbid (principal, action == Action::"refund", resource) when { context.args.ammount > 10 };
`)}
	if _, err := w.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), `"typo"`) || !strings.Contains(err.Error(), "p.cedar:3") {
		t.Fatalf("a version that fails validation: %v", err)
	}
	if e.Set() != set {
		t.Fatal("a version that fails validation was swapped in")
	}
	fsys["p.cedar"] = &fstest.MapFile{Data: []byte(allowRefund + `@id("limit")
forbid (principal, action == Action::"refund", resource) when { context.args.amount > 10 };
`)}
	if r, err := w.Reload(context.Background()); err != nil || !r.Loaded {
		t.Fatalf("a valid version: %+v, %v", r, err)
	}
	req := baseRequest()
	req.Args = []byte(`{"amount":50}`)
	if d := decide(t, e, req); d.Allowed || d.Policies[0] != "limit" {
		t.Fatalf("after reload: %+v", d)
	}
}

func TestWatcherPolls(t *testing.T) {
	loaded := make(chan policy.Reload, 4)
	dir, e, w, _, _ := newWatched(t, policy.WatchInterval(20*time.Millisecond), policy.WatchNotify(func(r policy.Reload) { loaded <- r }))
	w.Start()
	w.Start() // a second Start does not start a second poller
	writeFile(t, dir, "refund.cedar", forbidRefund)
	select {
	case r := <-loaded:
		if !r.Loaded || e.Set().Digest() != r.NewRevision {
			t.Fatalf("poll: %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not pick up the new version")
	}
	if d := decide(t, e, baseRequest()); d.Allowed {
		t.Fatalf("the polled version is not enforcing: %+v", d)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Close() // idempotent
	// After Close nothing is picked up.
	writeFile(t, dir, "refund.cedar", allowRefund)
	time.Sleep(100 * time.Millisecond)
	if d := decide(t, e, baseRequest()); d.Allowed {
		t.Fatal("a closed watcher still reloads")
	}
}

func TestWatcherCloseWithoutStart(t *testing.T) {
	_, _, w, _, _ := newWatched(t)
	done := make(chan struct{})
	go func() { w.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close without Start blocks")
	}
}

// TestReloadDuringDecisions swaps versions while many goroutines decide:
// each decision is made wholly by one version (its revision names the set
// whose answer it gives), never by a mix. Run under -race.
func TestReloadDuringDecisions(t *testing.T) {
	dir, e, w, _, _ := newWatched(t)
	allowDigest := e.Set().Digest()
	writeFile(t, dir, "refund.cedar", forbidRefund)
	set, err := policy.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	denyDigest := set.Digest()
	writeFile(t, dir, "refund.cedar", allowRefund)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var decisions, bad atomic.Int64
	var firstBad atomic.Value
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				d, err := e.Decide(context.Background(), baseRequest())
				decisions.Add(1)
				ok := err == nil && ((d.Revision == allowDigest && d.Allowed) || (d.Revision == denyDigest && !d.Allowed && d.Reason == "refunds are frozen"))
				if !ok {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, d)
				}
			}
		}()
	}
	texts := []string{forbidRefund, allowRefund}
	for i := range 40 {
		writeFile(t, dir, "refund.cedar", texts[i%2])
		if r, err := w.Reload(context.Background()); err != nil || !r.Loaded {
			t.Errorf("reload %d: %+v, %v", i, r, err)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d of %d decisions mixed versions, e.g. %+v", bad.Load(), decisions.Load(), firstBad.Load())
	}
	if decisions.Load() < 40 {
		t.Fatalf("only %d decisions ran during the reloads", decisions.Load())
	}
}

// TestReloadNotLoadedUnaudited: a version whose policy_load record cannot
// be written is not swapped in; it is once the sink works again.
func TestReloadNotLoadedUnaudited(t *testing.T) {
	dir, e, w, rec, logs := newWatched(t)
	good := e.Set()
	rec.Fail(errors.New("disk full"))
	writeFile(t, dir, "refund.cedar", allowRefund+forbidRefund)
	r, err := w.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "audit record not written") || r.Loaded || e.Set() != good {
		t.Fatalf("unaudited version: %+v, %v; engine set swapped: %v", r, err, e.Set() != good)
	}
	if !strings.Contains(logs.String(), "not loaded") {
		t.Fatalf("log = %q", logs.String())
	}
	rec.Recover()
	r, err = w.Reload(context.Background())
	if err != nil || !r.Loaded || e.Set().Digest() != r.NewRevision {
		t.Fatalf("after the sink recovered: %+v, %v", r, err)
	}
	if evs := rec.Kind(audit.KindPolicyLoad); len(evs) != 1 || evs[0].PolicyChange.NewRevision != r.NewRevision {
		t.Fatalf("policy_load records = %+v", rec.Events())
	}
}

// TestLoadDirConfigMapLayout: a Kubernetes ConfigMap volume links each file
// at the top to a hidden timestamped directory through "..data"; the
// policies load once, and hidden files are ignored.
func TestLoadDirConfigMapLayout(t *testing.T) {
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_11_26_00_00_00.000000001")
	if err := os.Mkdir(ts, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, ts, "refund.cedar", allowRefund)
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "refund.cedar"), filepath.Join(dir, "refund.cedar")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, ".refund.cedar.swp.cedar", "not cedar at all")
	set, err := policy.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 1 {
		t.Fatalf("%d policies, want 1: %v", set.Len(), set.IDs())
	}
}
