package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/agentguard/go-sdk/audit"
)

// Reload is the outcome of one look at a watched tree of policies.
type Reload struct {
	// Changed is true when the files differ from the version last looked
	// at. A version whose policies equal the enforced set's (say, only a
	// comment changed) is Changed but not Loaded.
	Changed bool
	// Loaded is true when a new set was swapped in.
	Loaded bool
	// OldRevision is the digest of the set in force before; NewRevision
	// that of the new version, when it parsed.
	OldRevision string
	NewRevision string
	// Files is "sha256:<hex>" over the version's file names and contents.
	Files string
	// Policies is how many policies the new version has, when it parsed.
	Policies int
	// Err is why the version was refused; the last good set stays in force.
	Err error
}

// Watcher keeps an engine's enforced policies in step with a tree of .cedar
// files. Each new version of the files is parsed and validated in full
// (against the engine's schema, if it has one) and then swapped in
// atomically; a version that fails is refused and the last good set stays in
// force. Both outcomes are logged and audited (policy_load, policy_reject)
// with the old and new digests. A version is swapped in only once its
// policy_load record is written: if the audit sink fails, the version is
// not loaded (Reload.Err says why) and is tried again on the next look.
//
// A Watcher polls: it works on any fs.FS and on any file system, and needs
// no dependency. Write new versions atomically where you can: a file by
// writing a temporary file and renaming it, and a version that spans
// several files by swapping the whole directory (a symbolic link to the
// version's directory, changed with one rename, as Kubernetes does for a
// ConfigMap volume; hidden entries such as its "..data" are skipped). A
// version is only acted on once it has stayed the same for a short while
// (a quarter of the interval, at most 250 ms), so a file being written is
// at worst refused once; a change to several files written one by one can
// be loaded half done.
type Watcher struct {
	e        *CedarEngine
	fsys     fs.FS
	prefix   string
	source   string
	interval time.Duration
	settle   time.Duration
	logger   *slog.Logger
	sink     audit.Sink
	now      func() time.Time
	notify   func(Reload)

	mu      sync.Mutex // serialises looks
	seen    string     // Files digest (or read error) of the version last acted on
	seenErr error      // why that version was refused, if it was

	life    sync.Mutex // guards started and closed
	started bool
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

// WatchOption configures a Watcher.
type WatchOption func(*Watcher)

// WatchInterval sets how often the files are polled; the default is 2
// seconds.
func WatchInterval(d time.Duration) WatchOption {
	return func(w *Watcher) {
		if d > 0 {
			w.interval = d
		}
	}
}

// WatchLogger sets where reloads are logged; nil means slog.Default().
func WatchLogger(l *slog.Logger) WatchOption { return func(w *Watcher) { w.logger = l } }

// WatchAudit sets the sink reloads are recorded to. Without it they are
// only logged.
func WatchAudit(s audit.Sink) WatchOption { return func(w *Watcher) { w.sink = s } }

// WatchNotify sets a function called with the outcome of every look that
// found changed files, after it was logged and audited.
func WatchNotify(f func(Reload)) WatchOption { return func(w *Watcher) { w.notify = f } }

// WatchClock sets the clock of audit records, for tests.
func WatchClock(now func() time.Time) WatchOption { return func(w *Watcher) { w.now = now } }

// NewWatcher returns a watcher of the .cedar files of fsys (the whole tree,
// as LoadFS reads it) for engine e. source names the tree in logs, audit
// records and error positions. Nothing happens until Reload or Start.
func NewWatcher(e *CedarEngine, fsys fs.FS, source string, opts ...WatchOption) *Watcher {
	w := &Watcher{
		e: e, fsys: fsys, source: source,
		interval: 2 * time.Second,
		logger:   slog.Default(),
		now:      time.Now,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for _, o := range opts {
		o(w)
	}
	if w.logger == nil {
		w.logger = slog.Default()
	}
	w.settle = min(w.interval/4, 250*time.Millisecond)
	return w
}

// WatchDir returns a watcher of the directory dir; error positions name
// files by their path under dir.
func WatchDir(e *CedarEngine, dir string, opts ...WatchOption) *Watcher {
	w := NewWatcher(e, os.DirFS(dir), dir, opts...)
	w.prefix = dir
	return w
}

// Start polls the files every interval until Close. It returns at once; a
// second Start, or a Start after Close, does nothing.
func (w *Watcher) Start() {
	w.life.Lock()
	defer w.life.Unlock()
	if w.started || w.closed {
		return
	}
	w.started = true
	go w.run()
}

// Close stops polling and waits for a look under way to finish. It is safe
// to call more than once, and without Start.
func (w *Watcher) Close() error {
	w.life.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	started := w.started
	w.life.Unlock()
	if started {
		<-w.done
	}
	return nil
}

func (w *Watcher) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.poll()
	}
}

// poll acts on a changed version once it has stayed the same for the
// settle time, so that a version being written is not refused for being
// half there.
func (w *Watcher) poll() {
	_, files, err := w.read()
	if err == nil && files == w.seenFiles() {
		return
	}
	select {
	case <-w.stop:
		return
	case <-time.After(w.settle):
	}
	docs2, files2, err2 := w.read()
	if (err == nil) != (err2 == nil) || files != files2 {
		return // still changing: look again on the next tick
	}
	w.apply(context.Background(), docs2, files2, err2)
}

// Reload looks at the files now (on SIGHUP, say) and acts on them: a new
// version is validated and swapped in, or refused. It returns what it did;
// the error is Reload.Err, for a refused version.
func (w *Watcher) Reload(ctx context.Context) (Reload, error) {
	docs, files, err := w.read()
	r := w.apply(ctx, docs, files, err)
	return r, r.Err
}

func (w *Watcher) seenFiles() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen
}

// read reads the tree and digests it. An unreadable or empty tree is an
// error whose files digest is empty.
func (w *Watcher) read() ([]Document, string, error) {
	docs, err := readTree(w.fsys, w.prefix)
	if err != nil {
		return nil, "", err
	}
	h := sha256.New()
	for _, d := range docs {
		fmt.Fprintf(h, "%d:%s\n%d:", len(d.Name), d.Name, len(d.Text))
		h.Write(d.Text)
		h.Write([]byte{'\n'})
	}
	return docs, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func (w *Watcher) apply(ctx context.Context, docs []Document, files string, readErr error) Reload {
	r, changed := w.look(ctx, docs, files, readErr)
	if changed && w.notify != nil {
		w.notify(r) // outside the lock: it may call Reload
	}
	return r
}

func (w *Watcher) look(ctx context.Context, docs []Document, files string, readErr error) (Reload, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.e.Set()
	r := Reload{OldRevision: old.Digest(), Files: files}
	key := files
	if readErr != nil {
		// An unreadable tree is acted on once per distinct error, not on
		// every poll.
		key = "error:" + readErr.Error()
	}
	if key == w.seen {
		r.Err = w.seenErr
		return r, false
	}
	r.Changed = true
	if readErr != nil {
		r.Err = readErr
		w.seen, w.seenErr = key, r.Err
		w.record(ctx, r)
		return r, true
	}
	set, err := NewSet(docs...)
	if err == nil {
		r.NewRevision, r.Policies = set.Digest(), set.Len()
		if set.Digest() == old.Digest() {
			w.seen, w.seenErr = key, nil
			return r, true // the same policies: nothing to swap
		}
		err = w.e.check(set)
	}
	if err != nil {
		r.Err = err
		w.seen, w.seenErr = key, r.Err
		w.record(ctx, r)
		return r, true
	}
	// No unaudited change of policy: the record is written before the
	// swap, and a version that cannot be recorded is not loaded (it is
	// tried again on the next look).
	r.Loaded = true
	if aerr := w.record(ctx, r); aerr != nil {
		r.Loaded = false
		r.Err = fmt.Errorf("policy: version not loaded: audit record not written: %w", aerr)
		return r, true
	}
	w.e.cur.Store(set)
	w.seen, w.seenErr = key, nil
	return r, true
}

// record logs and audits r; for a version to be loaded, it returns the
// audit sink's error, and logs nothing when there is one.
func (w *Watcher) record(ctx context.Context, r Reload) error {
	ev := audit.Event{
		Time: w.now(),
		Kind: audit.KindPolicyLoad,
		PolicyChange: &audit.PolicyChange{
			Source: w.source, OldRevision: r.OldRevision, NewRevision: r.NewRevision,
			Files: r.Files, Policies: r.Policies,
		},
		Outcome: audit.OutcomeOK,
	}
	attrs := []slog.Attr{
		slog.String("source", w.source), slog.String("old_revision", r.OldRevision),
	}
	if r.NewRevision != "" {
		attrs = append(attrs, slog.String("new_revision", r.NewRevision), slog.Int("policies", r.Policies))
	}
	if r.Files != "" {
		attrs = append(attrs, slog.String("files", r.Files))
	}
	if r.Err != nil {
		ev.Kind, ev.Outcome, ev.Error = audit.KindPolicyReject, audit.OutcomeError, r.Err.Error()
	}
	var aerr error
	if w.sink != nil {
		aerr = w.sink.Write(context.WithoutCancel(ctx), ev)
	}
	switch {
	case r.Err != nil:
		w.logger.LogAttrs(ctx, slog.LevelError, "agentguard: policy version refused; the last good set stays in force",
			append(attrs, slog.String("error", r.Err.Error()))...)
		if aerr != nil {
			w.logger.LogAttrs(ctx, slog.LevelError, "agentguard: policy reload not audited",
				slog.String("source", w.source), slog.String("error", aerr.Error()))
		}
	case aerr != nil:
		w.logger.LogAttrs(ctx, slog.LevelError, "agentguard: policy version not loaded: audit record not written; the last good set stays in force",
			append(attrs, slog.String("error", aerr.Error()))...)
	default:
		w.logger.LogAttrs(ctx, slog.LevelInfo, "agentguard: policy version loaded", attrs...)
	}
	return aerr
}
