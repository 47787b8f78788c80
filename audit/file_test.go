package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testKey derives a key pair from name, so runs are reproducible.
func testKey(name string) (ed25519.PrivateKey, ed25519.PublicKey) {
	seed := sha256.Sum256([]byte("audit test key " + name))
	k := ed25519.NewKeyFromSeed(seed[:])
	return k, k.Public().(ed25519.PublicKey)
}

// toolCall is a realistic tool_call event.
func toolCall(callID string) Event {
	return Event{
		Time:       time.Date(2025, 11, 26, 10, 0, 0, 123456789, time.UTC),
		Kind:       KindToolCall,
		Agent:      "spiffe://example.org/ns/payments/sa/refund-agent",
		Task:       "task-01JD3X4Q2V7N8K9M0P1R2S3T4U",
		Tool:       "issue_refund",
		Toolset:    "payments",
		CallID:     callID,
		ArgsDigest: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Decision:   Allow,
		Policies:   []string{"refund-under-limit", "business-hours"},
		Revision:   "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
		Outcome:    OutcomeOK,
		Duration:   1534 * time.Microsecond,
		TraceID:    "4bf92f3577b34da6a3ce929d0e0e4736",
		SpanID:     "00f067aa0ba902b7",
	}
}

func callID(i int) string { return fmt.Sprintf("call-%06d", i) }

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 11, 26, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func withHooks(h fileHooks) FileOption { return func(c *fileConfig) { c.hooks = h } }

// hookedFile lets a test intercept writes and syncs.
type hookedFile struct {
	inner file
	write func(inner file, p []byte) (int, error)
	sync  func(inner file) error
}

func (h *hookedFile) Write(p []byte) (int, error) {
	if h.write != nil {
		return h.write(h.inner, p)
	}
	return h.inner.Write(p)
}

func (h *hookedFile) Sync() error {
	if h.sync != nil {
		return h.sync(h.inner)
	}
	return h.inner.Sync()
}

func (h *hookedFile) Close() error { return h.inner.Close() }

func newTestSink(t *testing.T, dir string, opts ...FileOption) *FileSink {
	t.Helper()
	s, err := NewFileSink(dir, opts...)
	if err != nil {
		t.Fatalf("NewFileSink: %v", err)
	}
	return s
}

func shutdown(t *testing.T, s *FileSink) {
	t.Helper()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func mustWrite(t *testing.T, s *FileSink, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.Write(context.Background(), toolCall(id)); err != nil {
			t.Fatalf("Write(%s): %v", id, err)
		}
	}
}

func ids(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, callID(i))
	}
	return out
}

// readChain verifies the files in dir and returns the report, the call
// IDs of the events in order, and the error.
func readChain(dir string, opts VerifyOptions) (*Report, []string, error) {
	var got []string
	opts.OnEvent = func(_ uint64, e Event) { got = append(got, e.CallID) }
	rep, err := VerifyDir(dir, opts)
	return rep, got, err
}

// lines returns the lines of a file, each with its newline.
func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

type lineView struct {
	Seq        uint64          `json:"seq"`
	Prev       string          `json:"prev"`
	Hash       string          `json:"hash"`
	Event      *Event          `json:"event"`
	Checkpoint *wireCheckpoint `json:"checkpoint"`
}

func view(t *testing.T, line []byte) lineView {
	t.Helper()
	var v lineView
	if err := json.Unmarshal(line, &v); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return v
}

func TestFileSinkWritesVerifiableChain(t *testing.T) {
	dir := t.TempDir()
	key, pub := testKey(t.Name())
	s := newTestSink(t, dir, WithSigningKey(key), WithCheckpointEvery(3, 0), WithFileClock(newFakeClock().Now))
	mustWrite(t, s, ids(0, 10)...)
	shutdown(t, s)

	rep, got, err := readChain(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	// open, 10 events, periodic after events 3, 6 and 9, close.
	want := Report{Files: 1, Records: 15, Events: 10, Checkpoints: 5, Signed: 5, First: 1, Last: 15,
		SignaturesChecked: true, SignedThrough: 15, Unsigned: 0, Closed: true, Chain: rep.Chain, Key: KeyID(pub),
		Head: rep.Head, LastCheckpoint: rep.LastCheckpoint}
	if !equalReport(*rep, want) {
		t.Fatalf("report\n got %+v\nwant %+v", *rep, want)
	}
	if !slices.Equal(got, ids(0, 10)) {
		t.Fatalf("events %v", got)
	}
	if rep.LastCheckpoint.Reason != CheckpointClose || rep.LastCheckpoint.Seq != 15 || rep.LastCheckpoint.Hash != rep.Head {
		t.Fatalf("last checkpoint %+v", rep.LastCheckpoint)
	}
	// The events read back are the events written.
	var events []Event
	if _, err := VerifyDir(dir, VerifyOptions{Unsigned: true, OnEvent: func(_ uint64, e Event) { events = append(events, e) }}); err != nil {
		t.Fatal(err)
	}
	w, _ := json.Marshal(toolCall(callID(4)))
	g, _ := json.Marshal(events[4])
	if !bytes.Equal(w, g) {
		t.Fatalf("event read back\n got %s\nwant %s", g, w)
	}
	// The file is private.
	fi, err := os.Stat(s.Files()[0])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, want 0600", fi.Mode().Perm())
	}
	// The lines look as documented.
	ls := lines(t, s.Files()[0])
	first := view(t, ls[0])
	if first.Seq != 1 || first.Prev != strings.Repeat("0", 64) || first.Checkpoint == nil || first.Checkpoint.Reason != CheckpointOpen ||
		first.Checkpoint.Key != KeyID(pub) || first.Checkpoint.Sig == "" || first.Checkpoint.Time != "2025-11-26T12:00:00Z" {
		t.Fatalf("first line %s", ls[0])
	}
	for i, l := range ls {
		sum := sha256.Sum256(l[:len(l)-1-hashSuffixLen])
		if v := view(t, l); v.Hash != hex.EncodeToString(sum[:]) || v.Seq != uint64(i+1) {
			t.Fatalf("line %d: hash is not the SHA-256 of the bytes before it: %s", i+1, l)
		}
	}
}

func equalReport(a, b Report) bool {
	return a.Files == b.Files && a.Records == b.Records && a.Events == b.Events && a.Checkpoints == b.Checkpoints &&
		a.Signed == b.Signed && a.First == b.First && a.Last == b.Last && a.SignaturesChecked == b.SignaturesChecked &&
		a.SignedThrough == b.SignedThrough && a.Unsigned == b.Unsigned && a.Closed == b.Closed && a.Chain == b.Chain &&
		a.Key == b.Key && len(a.Torn) == len(b.Torn)
}

func TestFileSinkRotation(t *testing.T) {
	dir := t.TempDir()
	key, pub := testKey(t.Name())
	const max = 8 << 10
	s := newTestSink(t, dir, WithSigningKey(key), WithMaxFileSize(max), WithCheckpointEvery(25, 0))
	mustWrite(t, s, ids(0, 200)...)
	shutdown(t, s)

	files := s.Files()
	if len(files) < 5 {
		t.Fatalf("%d files, want several", len(files))
	}
	onDisk, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	if !slices.Equal(files, onDisk) {
		t.Fatalf("Files() = %v, on disk %v", files, onDisk)
	}
	rep, got, err := readChain(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != len(files) || !slices.Equal(got, ids(0, 200)) || !rep.Closed {
		t.Fatalf("report %+v, %d events", rep, len(got))
	}
	var prev lineView
	for i, f := range files {
		ls := lines(t, f)
		fi, _ := os.Stat(f)
		first, last := view(t, ls[0]), view(t, ls[len(ls)-1])
		if i > 0 && (first.Seq != prev.Seq+1 || first.Prev != prev.Hash) {
			t.Fatalf("%s does not go on from the file before: first %+v, previous last %+v", f, first, prev)
		}
		if i < len(files)-1 {
			if last.Checkpoint == nil || last.Checkpoint.Reason != CheckpointRotate || last.Checkpoint.Sig == "" {
				t.Fatalf("%s does not end with a signed rotate checkpoint: %s", f, ls[len(ls)-1])
			}
			if fi.Size() > max+int64(len(ls[len(ls)-1])) {
				t.Fatalf("%s has %d bytes, more than %d and its rotate checkpoint", f, fi.Size(), max)
			}
		}
		prev = last
	}
}

// TestFileSinkRotationSyncsBeforeTheNextFile checks that the next file is
// created only once the full one, rotate checkpoint included, is fsynced:
// otherwise a power loss could keep the next file's records and lose the
// end of the one before.
func TestFileSinkRotationSyncsBeforeTheNextFile(t *testing.T) {
	dir := t.TempDir()
	key, pub := testKey(t.Name())
	var mu sync.Mutex
	written, synced := map[string]int64{}, map[string]int64{}
	var violations []string
	wrap := func(path string, size int64, f file) file {
		mu.Lock()
		for p := range written {
			if p != path && written[p] != synced[p] {
				violations = append(violations, fmt.Sprintf("%s created with %d bytes of %s not fsynced", filepath.Base(path), written[p]-synced[p], filepath.Base(p)))
			}
		}
		written[path], synced[path] = size, size
		mu.Unlock()
		return &hookedFile{inner: f,
			write: func(inner file, p []byte) (int, error) {
				n, err := inner.Write(p)
				mu.Lock()
				written[path] += int64(n)
				mu.Unlock()
				return n, err
			},
			sync: func(inner file) error {
				mu.Lock()
				w := written[path]
				mu.Unlock()
				time.Sleep(time.Millisecond) // a slow disk, so the writer would run ahead
				err := inner.Sync()
				mu.Lock()
				synced[path] = w
				mu.Unlock()
				return err
			}}
	}
	s := newTestSink(t, dir, WithSigningKey(key), WithBuffered(64), WithMaxFileSize(4<<10), withHooks(fileHooks{wrap: wrap}))
	mustWrite(t, s, ids(0, 300)...)
	shutdown(t, s)
	if len(s.Files()) < 10 {
		t.Fatalf("%d files, want many rotations", len(s.Files()))
	}
	if len(violations) > 0 {
		t.Fatalf("%d times a file was created before the one before was fsynced, the first: %s", len(violations), violations[0])
	}
	if _, got, err := readChain(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}}); err != nil || len(got) != 300 {
		t.Fatalf("%v, %d events", err, len(got))
	}
}

// syncCounter wraps files to count fsyncs and the bytes they made durable.
type syncCounter struct {
	mu      sync.Mutex
	written int64
	synced  int64
	syncs   int
	delay   time.Duration
	onSync  func() // called after each fsync, if set
}

func (c *syncCounter) wrap(_ string, size int64, f file) file {
	c.mu.Lock()
	c.written, c.synced = size, size
	c.mu.Unlock()
	return &hookedFile{inner: f,
		write: func(inner file, p []byte) (int, error) {
			n, err := inner.Write(p)
			c.mu.Lock()
			c.written += int64(n)
			c.mu.Unlock()
			return n, err
		},
		sync: func(inner file) error {
			time.Sleep(c.delay)
			err := inner.Sync()
			c.mu.Lock()
			c.syncs++
			c.synced = c.written
			c.mu.Unlock()
			if c.onSync != nil {
				c.onSync()
			}
			return err
		},
	}
}

func (c *syncCounter) get() (synced int64, syncs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synced, c.syncs
}

func TestFileSinkDurableWriteIsOnDiskWhenItReturns(t *testing.T) {
	dir := t.TempDir()
	key, _ := testKey(t.Name())
	var c syncCounter
	s := newTestSink(t, dir, WithSigningKey(key), withHooks(fileHooks{wrap: c.wrap}))
	defer shutdown(t, s)
	for i := range 20 {
		mustWrite(t, s, callID(i))
		b, err := os.ReadFile(s.Files()[0])
		if err != nil {
			t.Fatal(err)
		}
		at := bytes.Index(b, []byte(`"call_id":"`+callID(i)+`"`))
		if at < 0 {
			t.Fatalf("event %d not in the file when Write returned", i)
		}
		end := int64(at + bytes.IndexByte(b[at:], '\n') + 1)
		if synced, _ := c.get(); synced < end {
			t.Fatalf("event %d ends at %d but only %d bytes were fsynced when Write returned", i, end, synced)
		}
	}
}

func TestFileSinkGroupCommitSharesFsyncs(t *testing.T) {
	dir := t.TempDir()
	key, pub := testKey(t.Name())
	c := syncCounter{delay: 2 * time.Millisecond} // a slow disk, so writers pile up
	s := newTestSink(t, dir, WithSigningKey(key), withHooks(fileHooks{wrap: c.wrap}))
	const writers, each = 64, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Write(context.Background(), toolCall(callID(w*each+i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	_, syncs := c.get()
	shutdown(t, s)
	if syncs*4 > writers*each {
		t.Fatalf("%d fsyncs for %d events: writers do not share fsyncs", syncs, writers*each)
	}
	_, got, err := readChain(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, ids(0, writers*each)) {
		t.Fatalf("%d events in the chain, want %d", len(got), writers*each)
	}
	t.Logf("%d events, %d fsyncs", writers*each, syncs)
}

func TestFileSinkBufferedFullQueueLosesNothing(t *testing.T) {
	dir := t.TempDir()
	key, pub := testKey(t.Name())
	gate := make(chan struct{})
	var armed atomic.Bool
	slow := func(_ string, _ int64, f file) file {
		return &hookedFile{inner: f, write: func(inner file, p []byte) (int, error) {
			if armed.Load() {
				<-gate                            // held until the queue is full
				time.Sleep(20 * time.Microsecond) // then slow, so it fills again
			}
			return inner.Write(p)
		}}
	}
	s := newTestSink(t, dir, WithSigningKey(key), WithBuffered(4), WithCheckpointEvery(100, 0), withHooks(fileHooks{wrap: slow}))
	armed.Store(true)
	const writers, each = 32, 200
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Write(context.Background(), toolCall(callID(w*each+i))); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
				accepted.Add(1)
			}
		})
	}
	for len(s.queue) < cap(s.queue) {
		time.Sleep(time.Millisecond)
	}
	if n := accepted.Load(); n > int64(cap(s.queue)+maxBatch) {
		t.Fatalf("%d writes accepted while the writer was held: Write does not wait for room", n)
	}
	close(gate)
	wg.Wait()
	shutdown(t, s)
	rep, got, err := readChain(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, ids(0, writers*each)) || rep.Events != writers*each {
		t.Fatalf("%d events in the chain, want every one of %d", len(got), writers*each)
	}
}

var errInjected = errors.New("injected disk failure")

func TestFileSinkFailureIsSticky(t *testing.T) {
	for _, tc := range []struct {
		name      string
		buffered  bool
		failWrite bool
	}{
		{"durable write", false, true},
		{"durable fsync", false, false},
		{"buffered write", true, true},
		{"buffered fsync", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			key, pub := testKey(t.Name())
			var armed atomic.Bool
			fail := func(_ string, _ int64, f file) file {
				h := &hookedFile{inner: f}
				if tc.failWrite {
					h.write = func(inner file, p []byte) (int, error) {
						if armed.Load() {
							return 0, errInjected
						}
						return inner.Write(p)
					}
				} else {
					h.sync = func(inner file) error {
						if armed.Load() {
							return errInjected
						}
						return inner.Sync()
					}
				}
				return h
			}
			opts := []FileOption{WithSigningKey(key), withHooks(fileHooks{wrap: fail})}
			if tc.buffered {
				opts = append(opts, WithBuffered(16))
			}
			s := newTestSink(t, dir, opts...)
			ctx := context.Background()
			mustWrite(t, s, callID(0))
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			armed.Store(true)
			err := s.Write(ctx, toolCall(callID(1)))
			if tc.buffered {
				if err != nil {
					t.Fatalf("buffered Write: %v", err)
				}
				err = s.Flush(ctx)
			}
			if !errors.Is(err, ErrSinkFailed) || !errors.Is(err, errInjected) {
				t.Fatalf("error %v, want ErrSinkFailed wrapping the disk error", err)
			}
			armed.Store(false) // the disk is back: the sink stays failed
			if err := s.Write(ctx, toolCall(callID(2))); !errors.Is(err, ErrSinkFailed) {
				t.Fatalf("Write after a failure: %v, want ErrSinkFailed", err)
			}
			if err := s.Err(); !errors.Is(err, ErrSinkFailed) || !strings.HasPrefix(err.Error(), "audit: ") {
				t.Fatalf("Err() = %v", err)
			}
			err = s.Shutdown(ctx)
			if !errors.Is(err, ErrSinkFailed) {
				t.Fatalf("Shutdown: %v, want ErrSinkFailed", err)
			}
			if tc.buffered && !strings.Contains(err.Error(), "1 accepted events not written") {
				t.Fatalf("Shutdown does not count the lost event: %v", err)
			}
			if err := s.Write(ctx, toolCall(callID(3))); !errors.Is(err, ErrSinkClosed) {
				t.Fatalf("Write after Shutdown: %v, want ErrSinkClosed", err)
			}
			if err := s.Flush(ctx); !errors.Is(err, ErrSinkClosed) {
				t.Fatalf("Flush after Shutdown: %v, want ErrSinkClosed", err)
			}
			// What was written before the failure still verifies.
			_, got, err := readChain(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}, AllowOpen: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) < 1 || got[0] != callID(0) || slices.Contains(got, callID(2)) {
				t.Fatalf("events after the failure: %v", got)
			}
		})
	}
}

func TestFileSinkShutdown(t *testing.T) {
	dir := t.TempDir()
	key, _ := testKey(t.Name())
	gate := make(chan struct{})
	var armed atomic.Bool
	stuck := func(_ string, _ int64, f file) file {
		return &hookedFile{inner: f, sync: func(inner file) error {
			if armed.Load() {
				<-gate
			}
			return inner.Sync()
		}}
	}
	var cps []Checkpoint
	s := newTestSink(t, dir, WithSigningKey(key), WithBuffered(8), withHooks(fileHooks{wrap: stuck}),
		WithCheckpointFunc(func(c Checkpoint) { cps = append(cps, c) }))
	mustWrite(t, s, ids(0, 5)...)
	armed.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with a cancelled context while the disk hangs: %v", err)
	}
	if err := s.Write(context.Background(), toolCall("late")); !errors.Is(err, ErrSinkClosed) {
		t.Fatalf("Write during Shutdown: %v", err)
	}
	close(gate)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	// Shutdown returned only after the goroutines stopped.
	for name, ch := range map[string]chan struct{}{"writer": s.writerDone, "syncer": s.syncerDone, "notifier": s.notifierDone} {
		select {
		case <-ch:
		default:
			t.Fatalf("%s goroutine still running after Shutdown", name)
		}
	}
	if len(cps) != 2 || cps[0].Reason != CheckpointOpen || cps[1].Reason != CheckpointClose {
		t.Fatalf("checkpoints %+v", cps)
	}
	if got := readEventIDs(t, dir); !slices.Equal(got, ids(0, 5)) {
		t.Fatalf("events %v", got)
	}
}

// readEventIDs returns the call IDs of the chain in dir, checked without keys.
func readEventIDs(t *testing.T, dir string) []string {
	t.Helper()
	_, got, err := readChain(dir, VerifyOptions{Unsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestFileSinkTimeCheckpointsAndSyncs(t *testing.T) {
	dir := t.TempDir()
	key, pub := testKey(t.Name())
	clock := newFakeClock()
	tick := make(chan time.Time)
	synced := make(chan struct{}, 16)
	c := syncCounter{onSync: func() { synced <- struct{}{} }}
	s := newTestSink(t, dir, WithSigningKey(key), WithBuffered(16), WithFileClock(clock.Now),
		WithCheckpointEvery(1000, 10*time.Second), withHooks(fileHooks{wrap: c.wrap, tick: tick}))
	<-synced // the open checkpoint
	waitSync := func(what string) {
		t.Helper()
		select {
		case <-synced:
		case <-time.After(10 * time.Second): // a liveness guard, not a timing assertion
			t.Fatalf("no fsync after %s", what)
		}
	}

	mustWrite(t, s, callID(0))
	for { // wait until the writer wrote it (buffered: not fsynced)
		c.mu.Lock()
		pending := c.written > c.synced
		c.mu.Unlock()
		if pending {
			break
		}
		time.Sleep(time.Millisecond)
	}
	clock.Add(1500 * time.Millisecond)
	tick <- time.Time{}
	waitSync("a buffered write left a second")

	clock.Add(9 * time.Second) // 10.5 s since the open checkpoint
	tick <- time.Time{}
	waitSync("a time-based checkpoint")
	clock.Add(20 * time.Second) // nothing written since: no checkpoint
	tick <- time.Time{}
	tick <- time.Time{} // the writer handled the tick before
	shutdown(t, s)
	if n := len(synced); n != 1 {
		t.Fatalf("%d fsyncs after the last checkpoint, want 1 (the close)", n)
	}
	var reasons []string
	for _, l := range lines(t, s.Files()[0]) {
		if v := view(t, l); v.Checkpoint != nil {
			reasons = append(reasons, v.Checkpoint.Reason+"@"+v.Checkpoint.Time)
		}
	}
	want := []string{"open@2025-11-26T12:00:00Z", "periodic@2025-11-26T12:00:10.5Z", "close@2025-11-26T12:00:30.5Z"}
	if !slices.Equal(reasons, want) {
		t.Fatalf("checkpoints %v, want %v", reasons, want)
	}
	if _, err := VerifyDir(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}}); err != nil {
		t.Fatal(err)
	}
}

func TestFileSinkReopen(t *testing.T) {
	key, pub := testKey("reopen")
	keys := VerifyOptions{Keys: []ed25519.PublicKey{pub}}
	// closedLog writes a closed chain of n events and returns its file.
	closedLog := func(t *testing.T, dir string, n int) string {
		s := newTestSink(t, dir, WithSigningKey(key))
		mustWrite(t, s, ids(0, n)...)
		shutdown(t, s)
		return s.Files()[0]
	}
	reasons := func(t *testing.T, files ...string) []string {
		var out []string
		for _, f := range files {
			for _, l := range lines(t, f) {
				if v := view(t, l); v.Checkpoint != nil {
					out = append(out, v.Checkpoint.Reason)
				} else {
					out = append(out, "e")
				}
			}
		}
		return out
	}

	t.Run("after a clean close", func(t *testing.T) {
		dir := t.TempDir()
		f := closedLog(t, dir, 2)
		chain := view(t, lines(t, f)[0]).Checkpoint.Chain
		s := newTestSink(t, dir, WithSigningKey(key))
		mustWrite(t, s, ids(2, 4)...)
		shutdown(t, s)
		if got := reasons(t, s.Files()...); !slices.Equal(got, []string{"open", "e", "e", "close", "open", "e", "e", "close"}) {
			t.Fatalf("records %v", got)
		}
		rep, got, err := readChain(dir, keys)
		if err != nil || !slices.Equal(got, ids(0, 4)) || rep.Chain != chain {
			t.Fatalf("verify: %v, events %v, chain %s want %s", err, got, rep.Chain, chain)
		}
	})

	t.Run("after a clean close of a full file", func(t *testing.T) {
		dir := t.TempDir()
		f := closedLog(t, dir, 2)
		s := newTestSink(t, dir, WithSigningKey(key), WithMaxFileSize(2000)) // the first file is larger
		mustWrite(t, s, callID(2))
		shutdown(t, s)
		files := s.Files()
		if len(files) != 2 || files[0] != f {
			t.Fatalf("files %v", files)
		}
		if got := reasons(t, files[1]); !slices.Equal(got, []string{"open", "e", "close"}) {
			t.Fatalf("records of the new file %v", got)
		}
		if _, got, err := readChain(dir, keys); err != nil || !slices.Equal(got, ids(0, 3)) {
			t.Fatalf("verify: %v, events %v", err, got)
		}
	})

	t.Run("after a crash at a record boundary", func(t *testing.T) {
		// The two events after the open checkpoint were sealed by no
		// signature: the recover checkpoint says it adopted them.
		dir := t.TempDir()
		f := closedLog(t, dir, 2)
		ls := lines(t, f)
		if err := os.WriteFile(f, bytes.Join(ls[:len(ls)-1], nil), 0o600); err != nil { // no close checkpoint
			t.Fatal(err)
		}
		s := newTestSink(t, dir, WithSigningKey(key))
		mustWrite(t, s, callID(2))
		shutdown(t, s)
		if got := reasons(t, s.Files()...); !slices.Equal(got, []string{"open", "e", "e", "recover", "e", "close"}) {
			t.Fatalf("records %v", got)
		}
		rep, err := VerifyDir(dir, keys)
		if err != nil {
			t.Fatal(err)
		}
		want := Recovery{Seq: 4, File: f, Time: rep.Recoveries[0].Time, SignedThrough: 1, Adopted: 2}
		if len(rep.Recoveries) != 1 || !reflect.DeepEqual(rep.Recoveries[0], want) {
			t.Fatalf("recoveries %+v, want %+v", rep.Recoveries, want)
		}
	})

	t.Run("after a crash right after a checkpoint", func(t *testing.T) {
		dir := t.TempDir()
		s := newTestSink(t, dir, WithSigningKey(key), WithCheckpointEvery(2, 0))
		mustWrite(t, s, ids(0, 2)...) // open, e, e, periodic
		shutdown(t, s)
		f := s.Files()[0]
		writeLines(t, f, lines(t, f)[:4])
		s = newTestSink(t, dir, WithSigningKey(key))
		shutdown(t, s)
		rep, err := VerifyDir(dir, keys)
		if err != nil || len(rep.Recoveries) != 1 || rep.Recoveries[0].SignedThrough != 4 || rep.Recoveries[0].Adopted != 0 {
			t.Fatalf("%v, recoveries %+v", err, rep.Recoveries)
		}
	})

	t.Run("after a crash mid-record", func(t *testing.T) {
		dir := t.TempDir()
		f := closedLog(t, dir, 2)
		ls := lines(t, f)
		kept := bytes.Join(ls[:len(ls)-1], nil)
		torn := ls[len(ls)-1][:40]
		if err := os.WriteFile(f, append(slices.Clone(kept), torn...), 0o600); err != nil {
			t.Fatal(err)
		}
		var cps []Checkpoint
		s := newTestSink(t, dir, WithSigningKey(key), WithCheckpointFunc(func(c Checkpoint) { cps = append(cps, c) }))
		mustWrite(t, s, callID(2))
		shutdown(t, s)
		files := s.Files()
		if len(files) != 2 {
			t.Fatalf("files %v: the torn file must not be appended to", files)
		}
		if b, _ := os.ReadFile(f); !bytes.Equal(b, append(kept, torn...)) {
			t.Fatal("the torn file was changed")
		}
		sum := sha256.Sum256(torn)
		want := Torn{File: filepath.Base(f), Offset: int64(len(kept)), Length: int64(len(torn)), Digest: hex.EncodeToString(sum[:])}
		if cps[0].Reason != CheckpointRecover || len(cps[0].Torn) != 1 || cps[0].Torn[0] != want || cps[0].File != filepath.Base(files[1]) {
			t.Fatalf("first checkpoint %+v, want recover naming %+v", cps[0], want)
		}
		rep, err := VerifyDir(dir, keys)
		if err != nil {
			t.Fatal(err)
		}
		want.File = f
		if len(rep.Torn) != 1 || rep.Torn[0] != want {
			t.Fatalf("torn %+v, want %+v", rep.Torn, want)
		}
	})

	t.Run("into an empty file", func(t *testing.T) {
		dir := t.TempDir()
		closedLog(t, dir, 1)
		empty := filepath.Join(dir, "audit-000002.jsonl")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		s := newTestSink(t, dir, WithSigningKey(key))
		shutdown(t, s)
		if got := reasons(t, empty); !slices.Equal(got, []string{"open", "close"}) {
			t.Fatalf("records in the empty file %v", got)
		}
		if _, err := VerifyDir(dir, keys); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("refuses a log that does not verify", func(t *testing.T) {
		dir := t.TempDir()
		f := closedLog(t, dir, 3)
		b, _ := os.ReadFile(f)
		if err := os.WriteFile(f, bytes.Replace(b, []byte(callID(1)), []byte("call-99999x"), 1), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := NewFileSink(dir, WithSigningKey(key))
		var ce *ChainError
		if !errors.As(err, &ce) || ce.Line != 3 || ce.Seq != 3 {
			t.Fatalf("NewFileSink on an edited log: %v, want a ChainError at line 3", err)
		}
		if !strings.Contains(err.Error(), "another directory") {
			t.Fatalf("the error does not say how to go on: %v", err)
		}
		if after, _ := os.ReadFile(f); len(after) != len(b) {
			t.Fatal("the refused log was changed")
		}
	})

	t.Run("refuses a last file that does not follow the one before", func(t *testing.T) {
		// The last file replaced by a copy of the chain's first record:
		// on its own it is a valid start, but it does not follow file 1.
		dir := t.TempDir()
		s := newTestSink(t, dir, WithSigningKey(key), WithMaxFileSize(2048))
		mustWrite(t, s, ids(0, 30)...)
		shutdown(t, s)
		files := s.Files()
		if len(files) < 3 {
			t.Fatalf("%d files", len(files))
		}
		writeLines(t, files[len(files)-1], lines(t, files[0])[:1])
		var ce *ChainError
		if _, err := NewFileSink(dir, WithSigningKey(key)); !errors.As(err, &ce) || ce.File != files[len(files)-1] || ce.Line != 1 {
			t.Fatalf("NewFileSink on a forked last file: %v", err)
		}
	})

	t.Run("goes on with a chain signed by the previous key", func(t *testing.T) {
		dir := t.TempDir()
		closedLog(t, dir, 2)
		newKey, newPub := testKey("reopen-new")
		if _, err := NewFileSink(dir, WithSigningKey(newKey)); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("NewFileSink with a new key alone: %v, want ErrKeyMismatch", err)
		}
		s := newTestSink(t, dir, WithSigningKey(newKey), WithPreviousKeys(pub))
		mustWrite(t, s, callID(2))
		shutdown(t, s)
		if _, err := VerifyDir(dir, VerifyOptions{Keys: []ed25519.PublicKey{newPub}}); err == nil {
			t.Fatal("the log verifies without the previous key")
		}
		rep, err := VerifyDir(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub, newPub}})
		if err != nil || rep.Key != KeyID(newPub) || rep.Events != 3 || rep.Signed != 4 {
			t.Fatalf("%v %+v", err, rep)
		}
		// Once the new key signed, the old one alone no longer opens it,
		// and the new one alone does.
		if _, err := NewFileSink(dir, WithSigningKey(key)); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("NewFileSink with the old key: %v", err)
		}
		s = newTestSink(t, dir, WithSigningKey(newKey))
		shutdown(t, s)
		if _, err := VerifyDir(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub, newPub}}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("refuses another key", func(t *testing.T) {
		dir := t.TempDir()
		closedLog(t, dir, 1)
		other, _ := testKey("other")
		for _, opt := range []FileOption{WithSigningKey(other), WithoutSigning()} {
			if _, err := NewFileSink(dir, opt); !errors.Is(err, ErrKeyMismatch) {
				t.Fatalf("NewFileSink with another key: %v, want ErrKeyMismatch", err)
			}
		}
	})

	t.Run("refuses a forged tail", func(t *testing.T) {
		// The last file re-chained by someone without the key: hashes
		// and links are right, signatures are not.
		dir := t.TempDir()
		f := closedLog(t, dir, 3)
		ls := lines(t, f)
		ls[2] = bytes.Replace(ls[2], []byte(callID(1)), []byte("call-99999x"), 1)
		if err := os.WriteFile(f, bytes.Join(rechain(t, ls, 0, nil), nil), 0o600); err != nil {
			t.Fatal(err)
		}
		var ce *ChainError
		if _, err := NewFileSink(dir, WithSigningKey(key)); !errors.As(err, &ce) || !strings.Contains(ce.Reason, "signature") {
			t.Fatalf("NewFileSink on a forged log: %v", err)
		}
	})
}

// rechain recomputes every hash and prev of ls, as someone without the
// key would after editing a record, starting from seq first+1 after head.
func rechain(t *testing.T, ls [][]byte, first uint64, head *[sha256.Size]byte) [][]byte {
	t.Helper()
	var h [sha256.Size]byte
	if head != nil {
		h = *head
	}
	out := make([][]byte, len(ls))
	for i, l := range ls {
		l = l[:len(l)-1]
		cp := false
		j := bytes.Index(l, []byte(`","event":`)) + len(`","event":`)
		if j < len(`","event":`) {
			j = bytes.Index(l, []byte(`","checkpoint":`)) + len(`","checkpoint":`)
			cp = true
		}
		payload := l[j : len(l)-hashSuffixLen]
		out[i], h = appendRecord(nil, first+uint64(i)+1, &h, cp, payload)
	}
	return out
}

func TestFileSinkNeverPrintsItsKey(t *testing.T) {
	key, pub := testKey(t.Name())
	seed := key.Seed()
	canaries := []string{
		string(key), string(seed),
		hex.EncodeToString(key), hex.EncodeToString(seed),
		base64.StdEncoding.EncodeToString(key), base64.StdEncoding.EncodeToString(seed),
		base64.RawStdEncoding.EncodeToString(seed), base64.URLEncoding.EncodeToString(seed),
		fmt.Sprint([]byte(seed)), fmt.Sprintf("%#v", []byte(seed)),
		fmt.Sprintf("%x", seed[:8]), fmt.Sprintf("%d", seed[0:4]),
	}
	check := func(where, s string) {
		t.Helper()
		for _, c := range canaries {
			if strings.Contains(s, c) {
				t.Fatalf("the private key appears in %s: %q", where, s)
			}
		}
	}
	dir := t.TempDir()
	opt := WithSigningKey(key)
	s := newTestSink(t, dir, opt, WithBuffered(8))
	mustWrite(t, s, callID(0))
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		check("fmt "+verb+" of the sink", fmt.Sprintf(verb, s))
		check("fmt "+verb+" of the option", fmt.Sprintf(verb, opt))
		check("fmt "+verb+" of the signer", fmt.Sprintf(verb, s.cfg.signer))
		check("fmt "+verb+" of the config", fmt.Sprintf(verb, s.cfg))
	}
	if !strings.Contains(fmt.Sprint(s), KeyID(pub)) {
		t.Fatalf("the sink does not name its key ID: %v", s)
	}
	shutdown(t, s)
	for _, f := range s.Files() {
		b, _ := os.ReadFile(f)
		check("the file", string(b))
	}
	// Errors that concern the key.
	other, _ := testKey("other")
	_, err := NewFileSink(dir, WithSigningKey(other))
	check("a key mismatch error", err.Error())
	_, err = NewFileSink(t.TempDir(), WithSigningKey(key[:40]))
	if err == nil {
		t.Fatal("a short key was accepted")
	}
	check("a bad key error", err.Error())
}

func TestNewFileSinkOptions(t *testing.T) {
	key, _ := testKey(t.Name())
	for _, tc := range []struct {
		name string
		opts []FileOption
		want string
	}{
		{"no key", nil, "no signing key"},
		{"key and unsigned", []FileOption{WithSigningKey(key), WithoutSigning()}, "both"},
		{"short key", []FileOption{WithSigningKey(key[:10])}, "signing key has 10 bytes"},
		{"max size", []FileOption{WithoutSigning(), WithMaxFileSize(0)}, "max file size"},
		{"checkpoint records", []FileOption{WithoutSigning(), WithCheckpointEvery(0, time.Second)}, "checkpoint every"},
		{"checkpoint interval", []FileOption{WithoutSigning(), WithCheckpointEvery(10, -time.Second)}, "checkpoint every"},
		{"prefix", []FileOption{WithoutSigning(), WithFilePrefix("../x")}, "bad file prefix"},
		{"empty prefix", []FileOption{WithoutSigning(), WithFilePrefix("")}, "bad file prefix"},
		{"control character in prefix", []FileOption{WithoutSigning(), WithFilePrefix("a\nb")}, "bad file prefix"},
		{"previous keys unsigned", []FileOption{WithoutSigning(), WithPreviousKeys(make(ed25519.PublicKey, 32))}, "WithPreviousKeys"},
		{"short previous key", []FileOption{WithSigningKey(key), WithPreviousKeys(make(ed25519.PublicKey, 3))}, "previous key has 3 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewFileSink(t.TempDir(), tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "audit: ") {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}

	t.Run("prefix and unsigned", func(t *testing.T) {
		dir := t.TempDir()
		s := newTestSink(t, dir, WithoutSigning(), WithFilePrefix("agent-a"))
		mustWrite(t, s, callID(0))
		shutdown(t, s)
		if want := filepath.Join(dir, "agent-a-000001.jsonl"); !slices.Equal(s.Files(), []string{want}) {
			t.Fatalf("files %v", s.Files())
		}
		rep, err := VerifyDir(dir, VerifyOptions{Prefix: "agent-a", Unsigned: true})
		if err != nil || rep.Events != 1 || rep.SignaturesChecked || rep.Key != "" {
			t.Fatalf("verify: %v %+v", err, rep)
		}
		if _, err := VerifyDir(dir, VerifyOptions{Unsigned: true}); err == nil {
			t.Fatal("VerifyDir with the default prefix found files")
		}
	})
}

// readEvents returns the events of the chain in dir, verified with pub.
func readEvents(t *testing.T, dir string, pub ed25519.PublicKey) ([]Event, *Report) {
	t.Helper()
	var events []Event
	rep, err := VerifyDir(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}, OnEvent: func(_ uint64, e Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	return events, rep
}

func TestFileSinkCutsOversizedEvent(t *testing.T) {
	key, pub := testKey(t.Name())
	const huge = 17 << 20 // more than a record may hold
	e0 := "policy-00000-" + strings.Repeat("p", 1000)
	for _, tc := range []struct {
		name   string
		modify func(e *Event)
		check  func(t *testing.T, got Event)
		cut    []string
	}{
		{"a 17 MiB error", func(e *Event) { e.Error = strings.Repeat("upstream said: ", huge/15+1)[:huge] },
			func(t *testing.T, got Event) {
				if !strings.HasSuffix(got.Error, cutMarker) || len(got.Error) != cutText+len(cutMarker) || !strings.HasPrefix(got.Error, "upstream said: ") {
					t.Fatalf("error of %d bytes, not cut to %d with the marker", len(got.Error), cutText)
				}
			}, []string{"error:17825792 bytes"}},
		{"large arguments and approval reason", func(e *Event) {
			e.Error = strings.Repeat("e", huge)
			e.Args = json.RawMessage(`{"blob":"` + strings.Repeat("a", 100000) + `"}`)
			e.Approval = &Approval{Required: true, Granted: true, Reason: strings.Repeat("é", cutText)} // cut between runes
		}, func(t *testing.T, got Event) {
			if got.Args != nil || got.ArgsDigest == "" || got.Approval == nil || !got.Approval.Granted ||
				got.Approval.Reason != strings.Repeat("é", cutText/2)+cutMarker {
				t.Fatalf("args %d bytes, digest %q, approval %+v", len(got.Args), got.ArgsDigest, got.Approval != nil)
			}
		}, []string{"args:100011 bytes", "approval.reason:131072 bytes", "error:17825792 bytes"}},
		{"a list too long", func(e *Event) {
			e.Policies = make([]string, 20000)
			for i := range e.Policies {
				e.Policies[i] = fmt.Sprintf("policy-%05d-%s", i, strings.Repeat("p", 1000))
			}
		}, func(t *testing.T, got Event) {
			if len(got.Policies) != cutItems || got.Policies[0] != e0 {
				t.Fatalf("%d policies kept", len(got.Policies))
			}
		}, []string{"policies:20000 items"}},
		{"arguments that are not JSON", func(e *Event) { e.Args = json.RawMessage(`{"a":`) },
			func(t *testing.T, got Event) {
				if got.Args != nil || got.CallID != "odd" {
					t.Fatalf("event %+v", got)
				}
			}, []string{"args:5 bytes, not valid JSON"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := newTestSink(t, dir, WithSigningKey(key))
			e := toolCall("odd")
			tc.modify(&e)
			before, _ := json.Marshal(e)
			if err := s.Write(context.Background(), e); err != nil {
				t.Fatalf("Write: %v", err)
			}
			mustWrite(t, s, "next")
			shutdown(t, s)
			if after, _ := json.Marshal(e); !bytes.Equal(before, after) {
				t.Fatal("Write changed the caller's event")
			}
			events, _ := readEvents(t, dir, pub)
			if len(events) != 2 || events[1].CallID != "next" {
				t.Fatalf("%d events", len(events))
			}
			got := events[0]
			if !slices.Equal(got.Truncated, tc.cut) {
				t.Fatalf("truncated %q, want %q", got.Truncated, tc.cut)
			}
			if got.Kind != KindToolCall || got.CallID != "odd" || got.Tool != "issue_refund" || got.Decision != Allow {
				t.Fatalf("the cut record lost what identifies the call: %+v", got)
			}
			tc.check(t, got)
		})
	}
}

func TestShrinkEventFitsAnything(t *testing.T) {
	// Every field large: the event still fits a record.
	big := strings.Repeat("x", 1<<20)
	e := toolCall("all-big")
	e.Reason, e.Error, e.Step, e.Target = big, big, big, big
	e.Leases = slices.Repeat([]string{big}, 40)
	e.Shadow = []Shadow{{Mode: "shadow", Reason: big, Policies: slices.Repeat([]string{"p"}, 5000)}}
	b, err := shrinkEvent(&e, false)
	if err != nil || len(b) > maxPayload {
		t.Fatalf("shrinkEvent: %d bytes, %v", len(b), err)
	}
	var got Event
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"reason:1048576 bytes", "leases[39]:1048576 bytes", "shadow[0].reason:1048576 bytes", "shadow[0].policies:5000 items"} {
		if !slices.Contains(got.Truncated, want) {
			t.Errorf("truncated %q lacks %q", got.Truncated, want)
		}
	}
	if len(e.Leases[0]) != len(big) || len(e.Shadow[0].Reason) != len(big) || len(e.Shadow[0].Policies) != 5000 {
		t.Fatal("shrinkEvent changed the event it was given")
	}
}

func TestKeyHelpers(t *testing.T) {
	key, pub := testKey(t.Name())
	der, err := x509MarshalPKCS8(key)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParsePrivateKey(der.priv)
	if err != nil || !k2.Equal(key) {
		t.Fatalf("ParsePrivateKey: %v", err)
	}
	p2, err := ParsePublicKey(der.pub)
	if err != nil || !p2.Equal(pub) {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	if id := KeyID(pub); !strings.HasPrefix(id, "ed25519:") || len(id) != len("ed25519:")+16 {
		t.Fatalf("KeyID = %q", id)
	}
	if _, err := ParsePrivateKey(der.pub); err == nil {
		t.Fatal("ParsePrivateKey accepted a public key")
	}
	if _, err := ParsePublicKey(der.priv); err == nil {
		t.Fatal("ParsePublicKey accepted a private key")
	}
	bad := bytes.Replace(der.priv, []byte("\n"), []byte("\nAAAA"), 2)
	_, err = ParsePrivateKey(bad)
	if err == nil || strings.Contains(err.Error(), hex.EncodeToString(key.Seed())) {
		t.Fatalf("ParsePrivateKey of a damaged key: %v", err)
	}
}

type pemPair struct{ priv, pub []byte }

func x509MarshalPKCS8(k ed25519.PrivateKey) (pemPair, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return pemPair{}, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return pemPair{}, err
	}
	return pemPair{
		priv: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pub:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
	}, nil
}
