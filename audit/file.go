package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

var (
	// ErrSinkClosed is returned by a FileSink's Write and Flush after
	// Shutdown.
	ErrSinkClosed = errors.New("audit: file sink closed")
	// ErrSinkFailed is wrapped by every error of a FileSink that could not
	// write or fsync its file. The failure is sticky: the sink writes
	// nothing more, as the state of the file after such an error is not
	// known.
	ErrSinkFailed = errors.New("audit: file sink failed")
	// ErrKeyMismatch is returned by NewFileSink when the directory holds a
	// chain signed with another key (or signed when the sink is not, or
	// the other way round).
	ErrKeyMismatch = errors.New("audit: the chain in the directory was signed with another key")
)

const (
	defaultQueue    = 4096
	defaultMaxSize  = 64 << 20
	defaultEvery    = 1000
	defaultInterval = 10 * time.Second
	// bufferedSync is how long a buffered sink leaves written records
	// without fsync at most.
	bufferedSync = time.Second
	// maxBatch bounds the records of one group commit; flushBytes the
	// bytes built before they are written.
	maxBatch   = 1024
	flushBytes = 1 << 20
	// notifyQueue is how many checkpoints may wait for the checkpoint func.
	notifyQueue = 64
)

// FileOption configures a FileSink.
type FileOption func(*fileConfig)

type fileConfig struct {
	buffered     bool
	queue        int
	signer       *signer // a pointer, so the key never prints
	keyErr       error
	unsigned     bool
	previous     []ed25519.PublicKey
	maxSize      int64
	every        int
	interval     time.Duration
	prefix       string
	now          func() time.Time
	onCheckpoint func(Checkpoint)
	hooks        fileHooks
}

// file is what the sink needs of an open file; tests wrap it to inject
// failures and delays.
type file interface {
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

// fileHooks are set only by this package's tests.
type fileHooks struct {
	// wrap wraps every file the sink opens for writing, given its path and
	// size when opened.
	wrap func(path string, size int64, f file) file
	// tick replaces the ticker that drives periodic checkpoints and syncs.
	tick <-chan time.Time
}

// WithBuffered makes Write return once the event is queued rather than on
// disk. The queue holds at most queue events (4096 if queue < 1): when it is
// full, Write waits for room, so nothing is dropped. Records are fsynced at
// each checkpoint, on Flush and Shutdown, and about every second when
// something was written.
//
// What a crash loses is always the end of the chain, never a record in
// its middle, but it can be much: a killed process (kill -9, a panic, the
// OOM killer) loses every event still queued, up to queue events, and
// those written but not yet fsynced survive; a power loss also loses what
// was written and not yet fsynced, up to about two seconds of events.
// And as Write returns before the record is written, a later write or
// fsync failure cannot deny the calls whose Write already returned: in
// strict mode only the calls after the failure are denied (Err counts the
// events lost).
//
// The default is durable: Write returns once its record is fsynced, so
// every call that was not denied is on disk.
func WithBuffered(queue int) FileOption {
	return func(c *fileConfig) {
		c.buffered = true
		if queue < 1 {
			queue = defaultQueue
		}
		c.queue = queue
	}
}

// WithSigningKey signs every checkpoint with k, so that rewriting the
// whole log with recomputed hashes is detected by Verify given k's public
// key. The key never appears in the files, errors or printed values.
func WithSigningKey(k ed25519.PrivateKey) FileOption {
	return func(c *fileConfig) {
		c.signer, c.keyErr = newSigner(slices.Clone(k))
	}
}

// WithPreviousKeys lets the sink go on with a chain whose last checkpoints
// were signed by one of these keys (the key it replaces) rather than by
// the key of WithSigningKey. The first checkpoint the sink writes, signed
// by the new key, marks the change; verify the log with both public keys.
func WithPreviousKeys(pubs ...ed25519.PublicKey) FileOption {
	return func(c *fileConfig) {
		for _, p := range pubs {
			c.previous = append(c.previous, slices.Clone(p))
		}
	}
}

// WithoutSigning writes unsigned checkpoints. Verify then still detects a
// record edited, removed, added or moved, but not the whole log rewritten
// with recomputed hashes. NewFileSink requires either this or
// WithSigningKey, so that no sink goes unsigned by omission.
func WithoutSigning() FileOption {
	return func(c *fileConfig) { c.unsigned = true }
}

// WithMaxFileSize starts a new file once the current one would grow past
// n bytes (64 MiB by default); a file exceeds n by at most the checkpoints
// that end it (a periodic checkpoint and the rotate checkpoint), or by one
// record larger than n. The chain goes on across files.
func WithMaxFileSize(n int64) FileOption {
	return func(c *fileConfig) { c.maxSize = n }
}

// WithCheckpointEvery writes a checkpoint after every records events, and
// after interval when events were written since the last checkpoint,
// whichever comes first (defaults: 1000 events, 10 seconds; an interval of
// 0 disables the time-based checkpoints).
func WithCheckpointEvery(records int, interval time.Duration) FileOption {
	return func(c *fileConfig) { c.every, c.interval = records, interval }
}

// WithFilePrefix names the files <prefix>-000001.jsonl, <prefix>-000002.jsonl
// and so on ("audit" by default).
func WithFilePrefix(p string) FileOption {
	return func(c *fileConfig) { c.prefix = p }
}

// WithFileClock sets the clock for checkpoint times and for the intervals
// between time-based checkpoints and syncs (time.Now by default).
func WithFileClock(now func() time.Time) FileOption {
	return func(c *fileConfig) { c.now = now }
}

// WithCheckpointFunc calls f with each checkpoint once it is on disk, in
// order, from a goroutine of the sink's own, so that an operator can keep
// the chain's heads elsewhere as anchors (VerifyOptions.Anchors): without
// them, a log cut back to an earlier checkpoint cannot be told from one
// that ended there. Append json.Marshal of each checkpoint, one per line,
// to a file kept elsewhere (ParseAnchors and agentguard-audit's -anchors
// read it), or ship them through another sink with CheckpointEvent:
//
//	audit.WithCheckpointFunc(func(c audit.Checkpoint) {
//		_ = otelSink.Write(context.Background(), audit.CheckpointEvent(c))
//	})
//
// A slow f delays the sink only once 64 checkpoints wait for it; f must
// not write to the sink.
func WithCheckpointFunc(f func(Checkpoint)) FileOption {
	return func(c *fileConfig) { c.onCheckpoint = f }
}

// KindCheckpoint is the kind of the events CheckpointEvent makes.
const KindCheckpoint Kind = "audit_checkpoint"

// CheckpointEvent returns an event that carries checkpoint c, to ship it
// as an anchor through another sink (an otelaudit.Sink to a collector): Kind
// KindCheckpoint, Time and Reason c's, and in Args the JSON of c, exactly
// the line ParseAnchors reads back.
func CheckpointEvent(c Checkpoint) Event {
	b, _ := json.Marshal(c) // strings, numbers and a time from the sink: cannot fail
	return Event{Time: c.Time, Kind: KindCheckpoint, Reason: c.Reason, Args: b}
}

// FileSink writes events to hash-chained JSON-lines files, one record per
// line, with signed checkpoints (see the package documentation for the
// format). One goroutine owns the files and writes queued records in
// groups; another fsyncs them, so that concurrent writers share each write
// and each fsync, and a group is written while the one before is fsynced.
//
// It is safe for concurrent use. Call Shutdown to flush it, write its
// close checkpoint and stop its goroutines. Only one FileSink may write to
// a directory at a time.
type FileSink struct {
	// anchorsLost counts the checkpoints WithCheckpointFunc panicked on.
	anchorsLost atomic.Int64

	cfg fileConfig
	dir string

	mu      sync.RWMutex // held for reading while sending to queue, for writing to close it
	closing atomic.Bool  // set by Shutdown: no more entries
	queue   chan entry

	failed  atomic.Bool
	failMu  sync.Mutex
	failErr error
	lost    atomic.Int64

	filesMu sync.Mutex
	files   []string

	shutdownOnce sync.Once
	shutdownDone chan struct{}
	shutdownErr  error
	writerDone   chan struct{}
	notify       chan Checkpoint
	notifierDone chan struct{}

	// Shared by the writer and the syncer goroutine.
	syncMu       sync.Mutex
	syncJobs     []*syncJob // waiting for the syncer, oldest first
	syncWake     chan struct{}
	syncerDone   chan struct{}
	syncedEvents atomic.Int64 // buffered events known to be fsynced

	// Owned by the writer goroutine (and by NewFileSink before it starts).
	f              file
	path           string
	num            uint64
	size           int64
	inFile         int // records in the current file
	seq            uint64
	head           [sha256.Size]byte
	chain          string
	since          int // events since the last checkpoint
	lastCheckpoint time.Time
	lastSync       time.Time    // when an fsync was last asked for
	unsyncedWrites bool         // written since an fsync was last asked for
	needSync       bool         // a checkpoint waits for an fsync
	built          int64        // buffered events built into records
	lostCounted    bool         // noteFailure ran
	buf            []byte       // records built, not yet written
	pending        []Checkpoint // built, to hand to the syncer
}

var _ Sink = (*FileSink)(nil)

// entry is a queued event or flush.
type entry struct {
	payload *[]byte    // the event's JSON, from payloadPool; nil for a flush
	done    chan error // the result, for durable writes and flushes
}

var (
	donePool    = sync.Pool{New: func() any { return make(chan error, 1) }}
	payloadPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
)

// putPayload returns a payload buffer to the pool, unless it grew large.
func putPayload(p *[]byte) {
	if cap(*p) <= 64<<10 {
		payloadPool.Put(p)
	}
}

// NewFileSink opens the chain in dir, creating dir (mode 0700) and the
// chain if there is none, and starts the sink's writer.
//
// When dir holds a chain, NewFileSink verifies its last two files (more if
// they hold no checkpoint) and goes on with it. After a clean close it
// writes an open checkpoint. Otherwise (a crash, or a log cut short) it
// writes a recover checkpoint, signed, that states the last checkpoint
// before it and how many records after that one it adopted unsigned, and
// names the torn tails left at the end of the log (see Torn and
// Recovery). A file that ends torn is left as it is and never appended
// to: the chain goes on in a new file; otherwise the recover checkpoint
// follows the last record in the same file. NewFileSink refuses a chain
// that does not verify (returning the *ChainError) or that was signed
// with another key (ErrKeyMismatch; see WithPreviousKeys): start a new
// chain in another directory.
//
// A directory that holds no file of the chain, or only files with no
// complete record, gets a new chain: NewFileSink cannot tell a wiped
// directory from a new one (keep the chain ID elsewhere and verify with
// VerifyOptions.Chain).
//
// Either WithSigningKey or WithoutSigning is required.
func NewFileSink(dir string, opts ...FileOption) (*FileSink, error) {
	cfg := fileConfig{
		queue: defaultQueue, maxSize: defaultMaxSize, every: defaultEvery,
		interval: defaultInterval, prefix: "audit", now: time.Now,
	}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	switch {
	case cfg.keyErr != nil:
		return nil, cfg.keyErr
	case cfg.signer == nil && !cfg.unsigned:
		return nil, errors.New("audit: file sink: no signing key: pass WithSigningKey, or WithoutSigning to opt out")
	case cfg.signer != nil && cfg.unsigned:
		return nil, errors.New("audit: file sink: both WithSigningKey and WithoutSigning given")
	case cfg.maxSize < 1:
		return nil, fmt.Errorf("audit: file sink: max file size %d is not positive", cfg.maxSize)
	case cfg.every < 1 || cfg.interval < 0:
		return nil, fmt.Errorf("audit: file sink: checkpoint every %d records and %v is not valid", cfg.every, cfg.interval)
	case cfg.prefix == "" || strings.ContainsAny(cfg.prefix, `/\`) || cfg.prefix != filepath.Base(cfg.prefix) ||
		strings.ContainsFunc(cfg.prefix, unicode.IsControl):
		return nil, fmt.Errorf("audit: file sink: bad file prefix %q", cfg.prefix)
	case cfg.unsigned && len(cfg.previous) > 0:
		return nil, errors.New("audit: file sink: WithPreviousKeys needs WithSigningKey")
	}
	for _, p := range cfg.previous {
		if len(p) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("audit: file sink: a previous key has %d bytes, want %d", len(p), ed25519.PublicKeySize)
		}
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if err := makeDir(dir); err != nil {
		return nil, fmt.Errorf("audit: file sink: %w", err)
	}
	s := &FileSink{
		cfg: cfg, dir: dir,
		queue:        make(chan entry, cfg.queue),
		shutdownDone: make(chan struct{}),
		writerDone:   make(chan struct{}),
	}
	if cfg.onCheckpoint != nil {
		s.notify = make(chan Checkpoint, notifyQueue)
		s.notifierDone = make(chan struct{})
		go s.notifier()
	}
	s.syncWake = make(chan struct{}, 1)
	s.syncerDone = make(chan struct{})
	go s.syncer()
	if err := s.open(); err != nil {
		s.stopSyncer()
		if s.notify != nil {
			close(s.notify)
			<-s.notifierDone
		}
		return nil, err
	}
	go s.run()
	return s, nil
}

// keyID is the ID checkpoints of this sink carry, empty when unsigned.
func (s *FileSink) keyID() string {
	if s.cfg.signer == nil {
		return ""
	}
	return s.cfg.signer.id
}

// makeDir creates dir (mode 0700) if it does not exist, and then fsyncs
// its parent, so that the directory survives a power loss with the files
// fsynced in it.
func makeDir(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := syncDir(parent); err != nil {
		return fmt.Errorf("fsync %s: %w", parent, err)
	}
	return nil
}

// open finds where the chain in dir stands, opens the file to write to and
// writes the first checkpoint.
func (s *FileSink) open() error {
	files, err := chainFiles(s.dir, s.cfg.prefix)
	if err != nil {
		return err
	}
	// A file created just before a crash may be empty: write into it.
	var empty *chainFile
	if n := len(files); n > 0 {
		if fi, err := os.Stat(files[n-1].path); err == nil && fi.Size() == 0 {
			empty = &files[n-1]
			files = files[:n-1]
		}
	}
	for _, f := range files {
		s.files = append(s.files, f.path)
	}
	s.lastSync = s.cfg.now()
	var v *verifier
	if len(files) > 0 {
		if v, err = s.scanTail(files); err != nil {
			return err
		}
	}
	var c wireCheckpoint
	if v == nil || v.chain == "" {
		// A new chain; its open checkpoint names the torn bytes of files
		// that hold no complete record (a crash while the first one was
		// written).
		var id [16]byte
		_, _ = rand.Read(id[:])
		s.chain = hex.EncodeToString(id[:])
		c.Reason = CheckpointOpen
	} else {
		s.seq, s.head, s.chain = v.seq, v.head, v.chain
		c.Reason = CheckpointRecover
		if v.last == CheckpointClose && len(v.pending) == 0 {
			c.Reason = CheckpointOpen
		} else {
			c.SignedThrough, c.Adopted = v.lastCp, v.seq-v.lastCp
		}
	}
	if v != nil {
		for _, t := range v.pending {
			c.Torn = append(c.Torn, wireTorn{File: filepath.Base(t.File), Offset: t.Offset, Length: t.Length, SHA256: t.Digest})
		}
	}
	switch {
	case empty != nil:
		err = s.openFile(empty.path, empty.num, false)
	case len(files) == 0:
		err = s.openFile(s.fileName(1), 1, true)
	default:
		last := files[len(files)-1]
		fi, serr := os.Stat(last.path)
		if serr != nil {
			return fmt.Errorf("audit: file sink: %w", serr)
		}
		if len(c.Torn) > 0 || v.last == CheckpointRotate || fi.Size() >= s.cfg.maxSize {
			// Torn bytes are evidence: never append after them.
			err = s.openFile(s.fileName(last.num+1), last.num+1, true)
		} else {
			err = s.openFile(last.path, last.num, false)
		}
	}
	if err != nil {
		return err
	}
	return s.first(c)
}

// first writes the first checkpoint of this sink's run and fsyncs it.
func (s *FileSink) first(c wireCheckpoint) error {
	s.checkpoint(c)
	if err := s.write(); err != nil {
		return fmt.Errorf("audit: file sink: %w", err)
	}
	if err := s.syncNow(); err != nil {
		return fmt.Errorf("audit: file sink: %w", err)
	}
	return nil
}

// scanTail verifies the end of the chain: the last two files (so that the
// link between them is checked), and more until a checkpoint (and so the
// chain ID) is found, and checks the key. It returns a verifier with no
// chain when the files hold no complete record at all.
func (s *FileSink) scanTail(files []chainFile) (*verifier, error) {
	refuse := func(err error) error {
		return fmt.Errorf("audit: file sink: the log in %s does not verify, refusing to append to it (start a new chain in another directory): %w", s.dir, err)
	}
	scan := func(start int, keys []ed25519.PublicKey) (*verifier, error) {
		opts := VerifyOptions{AllowOpen: true, Keys: keys, Unsigned: keys == nil}
		v, err := newVerifier(opts)
		if err != nil {
			return nil, err
		}
		v.anyStart, v.skipOtherKeys = true, true
		for i := start; i < len(files); i++ {
			if err := v.verifyFile(files[i].path, i == len(files)-1); err != nil {
				return nil, refuse(err)
			}
		}
		return v, nil
	}
	var v *verifier
	start := max(len(files)-2, 0)
	for ; start >= 0; start-- {
		var err error
		if v, err = scan(start, nil); err != nil {
			return nil, err
		}
		if v.chain != "" {
			break
		}
	}
	if v.chain == "" {
		if v.rep.Records == 0 {
			return v, nil // nothing but torn bytes: a new chain
		}
		return nil, fmt.Errorf("audit: file sink: the log in %s has records but no checkpoint; move its files away to start a new chain", s.dir)
	}
	accepted := map[string]bool{s.keyID(): true}
	keys := []ed25519.PublicKey(nil)
	if s.cfg.signer != nil {
		keys = append(keys, s.cfg.signer.public())
		for _, p := range s.cfg.previous {
			accepted[KeyID(p)] = true
			keys = append(keys, p)
		}
	}
	if !accepted[v.rep.Key] {
		have, want := v.rep.Key, s.keyID()
		if have == "" {
			have = "no key"
		}
		if want == "" {
			want = "no key"
		}
		return nil, fmt.Errorf("%w: the chain in %s is signed with %s, this sink with %s; start a new chain in another directory", ErrKeyMismatch, s.dir, have, want)
	}
	if keys != nil {
		signed, err := scan(start, keys)
		if err != nil {
			return nil, err
		}
		if signed.rep.SignedThrough != v.lastCp { // the last checkpoint's key is one given: cannot happen
			return nil, fmt.Errorf("audit: file sink: the last checkpoint of the log in %s is not signed by a key given", s.dir)
		}
	}
	return v, nil
}

func (s *FileSink) fileName(num uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s-%06d.jsonl", s.cfg.prefix, num))
}

// openFile opens path to append to, creating it (exclusively, mode 0600,
// then fsyncing the directory) if create.
func (s *FileSink) openFile(path string, num uint64, create bool) error {
	flag := os.O_WRONLY | os.O_APPEND
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return fmt.Errorf("audit: file sink: %w", err)
	}
	var size int64
	if !create {
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
	}
	if create {
		if err := syncDir(s.dir); err != nil {
			_ = f.Close()
			return fmt.Errorf("audit: file sink: fsync %s: %w", s.dir, err)
		}
		s.filesMu.Lock()
		s.files = append(s.files, path)
		s.filesMu.Unlock()
	} else if !slices.Contains(s.files, path) {
		s.filesMu.Lock()
		s.files = append(s.files, path)
		s.filesMu.Unlock()
	}
	var ff file = f
	if s.cfg.hooks.wrap != nil {
		ff = s.cfg.hooks.wrap(path, size, f)
	}
	s.f, s.path, s.num, s.size, s.inFile = ff, path, num, size, 0
	if size > 0 {
		s.inFile = 1 // not a fresh file: it may rotate before the next record
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Write adds e to the chain. In durable mode (the default) it returns once
// the record is written and fsynced; in buffered mode once it is queued,
// waiting for room while the queue is full. ctx bounds only the waiting:
// a Write that gives up may still be recorded.
//
// An event whose JSON is larger than a record may hold (16 MiB) is
// recorded all the same, cut down: its longest texts are cut short, long
// lists shortened and Args dropped (ArgsDigest stays), and Truncated names
// what was cut and how large it was (as does Args that is not valid JSON,
// dropped).
//
// After a write or fsync error every Write returns an error wrapping
// ErrSinkFailed; after Shutdown, ErrSinkClosed.
func (s *FileSink) Write(ctx context.Context, e Event) error {
	payload := payloadPool.Get().(*[]byte)
	b, err := appendEvent((*payload)[:0], &e)
	*payload = b
	if err != nil || len(b) > maxPayload {
		// Never refuse a record for its size (nor for arguments that are
		// not JSON): the tool may have run already. Cut it down instead.
		small, serr := shrinkEvent(&e, err != nil)
		if serr != nil {
			putPayload(payload)
			return fmt.Errorf("audit: encode event: %w", serr)
		}
		*payload = append((*payload)[:0], small...)
	}
	if s.cfg.buffered {
		if err := s.enqueue(ctx, entry{payload: payload}); err != nil {
			putPayload(payload)
			return err
		}
		return nil
	}
	done := donePool.Get().(chan error)
	if err := s.enqueue(ctx, entry{payload: payload, done: done}); err != nil {
		putPayload(payload)
		donePool.Put(done)
		return err
	}
	select {
	case err := <-done:
		donePool.Put(done)
		return err
	case <-ctx.Done():
		// The syncer still answers on done; leave it to the collector.
		return fmt.Errorf("audit: write not confirmed: %w", ctx.Err())
	}
}

func (s *FileSink) enqueue(ctx context.Context, e entry) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closing.Load() {
		return ErrSinkClosed
	}
	if s.failed.Load() {
		return s.Err()
	}
	select {
	case s.queue <- e:
		return nil
	default:
	}
	select {
	case s.queue <- e:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit: file sink queue full: %w", ctx.Err())
	}
}

// Flush returns once every event accepted before it is written and
// fsynced, or with the sink's error.
func (s *FileSink) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	if err := s.enqueue(ctx, entry{done: done}); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("audit: flush: %w", ctx.Err())
	}
}

// Shutdown stops accepting events, writes every queued one, writes the
// close checkpoint, fsyncs and closes the file, and stops the sink's
// goroutines. It returns the sink's failure, if any, joined with errors
// closing the file. If ctx ends first, Shutdown returns its error while
// the sink still finishes in the background. Shutdown may be called more
// than once; every call returns the same result.
func (s *FileSink) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.closing.Store(true)
		go func() {
			// Wait for the Writes already sending, then close the queue.
			s.mu.Lock()
			close(s.queue)
			s.mu.Unlock()
			<-s.writerDone
			close(s.shutdownDone)
		}()
	})
	select {
	case <-s.shutdownDone:
		return s.shutdownErr
	case <-ctx.Done():
		return fmt.Errorf("audit: file sink shutdown: %w", ctx.Err())
	}
}

// Err returns the sticky error of a sink that could not write, wrapping
// ErrSinkFailed and counting the events Write accepted (buffered mode)
// that are not known to be written; nil while the sink is healthy.
func (s *FileSink) Err() error {
	if !s.failed.Load() {
		return nil
	}
	s.failMu.Lock()
	cause := s.failErr
	s.failMu.Unlock()
	if n := s.lost.Load(); n > 0 {
		return fmt.Errorf("%w: %w (%d accepted events not written)", ErrSinkFailed, cause, n)
	}
	return fmt.Errorf("%w: %w", ErrSinkFailed, cause)
}

// Files returns the paths of the chain's files, oldest first: those found
// in the directory and those the sink created.
func (s *FileSink) Files() []string {
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	return slices.Clone(s.files)
}

// String describes the sink without its key.
func (s *FileSink) String() string {
	mode := "durable"
	if s.cfg.buffered {
		mode = fmt.Sprintf("buffered(%d)", s.cfg.queue)
	}
	key := "unsigned"
	if s.cfg.signer != nil {
		key = s.cfg.signer.id
	}
	return fmt.Sprintf("audit.FileSink{dir: %q, mode: %s, key: %s}", s.dir, mode, key)
}

// Format prints String whatever the verb, so that %#v cannot reach the key.
func (s *FileSink) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// setFailed makes the sink failed with err, keeping the first error.
func (s *FileSink) setFailed(err error) {
	s.failMu.Lock()
	if s.failErr == nil {
		s.failErr = err
	}
	s.failMu.Unlock()
	s.failed.Store(true)
}

// noteFailure counts, once the sink failed, the buffered events built but
// not known to be fsynced as lost. Only the writer goroutine calls it.
func (s *FileSink) noteFailure() {
	if s.lostCounted || !s.failed.Load() {
		return
	}
	s.lostCounted = true
	s.lost.Add(s.built - s.syncedEvents.Load())
}

func (s *FileSink) notifier() {
	defer close(s.notifierDone)
	for cp := range s.notify {
		s.handOut(cp)
	}
}

// handOut gives cp to the WithCheckpointFunc function. A panic there is
// that function's failure to keep the anchor, and must not take the
// process (and its audit log) down with it: it is recovered and counted
// (AnchorsLost).
func (s *FileSink) handOut(cp Checkpoint) {
	defer func() {
		if recover() != nil {
			s.anchorsLost.Add(1)
		}
	}()
	s.cfg.onCheckpoint(cp)
}

// AnchorsLost is how many checkpoints the WithCheckpointFunc function
// panicked on, and so may not have kept.
func (s *FileSink) AnchorsLost() int64 { return s.anchorsLost.Load() }

// run is the writer goroutine: it owns the file and commits queued
// entries in groups until the queue is closed. It writes; the syncer
// goroutine fsyncs, so that the next group is written while the last one
// is being fsynced.
func (s *FileSink) run() {
	defer close(s.writerDone)
	tick := s.cfg.hooks.tick
	if tick == nil {
		period := s.cfg.interval
		if s.cfg.buffered && (period == 0 || period > bufferedSync) {
			period = bufferedSync
		}
		if period > 0 {
			t := time.NewTicker(period)
			defer t.Stop()
			tick = t.C
		}
	}
	batch := make([]entry, 0, maxBatch)
	for {
		select {
		case e, ok := <-s.queue:
			if !ok {
				s.finish()
				return
			}
			batch = append(batch[:0], e)
			open := s.drain(&batch)
			s.commit(batch)
			clear(batch)
			if !open {
				s.finish()
				return
			}
		case <-tick:
			s.onTick()
		}
	}
}

// drain adds what is queued to batch, up to maxBatch entries, without
// waiting. It returns false once the queue is closed and empty.
func (s *FileSink) drain(batch *[]entry) bool {
	for len(*batch) < maxBatch {
		select {
		case e, ok := <-s.queue:
			if !ok {
				return false
			}
			*batch = append(*batch, e)
		default:
			return true
		}
	}
	return true
}

// commit builds the records of a group of entries, writes them with one
// write (more if it rotates or grows large), and hands the waiters (durable
// writes, flushes) to the syncer, which answers them after the fsync.
func (s *FileSink) commit(batch []entry) {
	var waiters []chan error
	for i := range batch {
		if batch[i].done != nil {
			waiters = append(waiters, batch[i].done)
		}
	}
	var err error
	i := 0
	if !s.failed.Load() {
		sync := !s.cfg.buffered
		for ; i < len(batch); i++ {
			if batch[i].payload == nil {
				sync = true
				continue
			}
			err = s.event(*batch[i].payload)
			putPayload(batch[i].payload) // copied into s.buf
			if batch[i].done == nil {
				s.built++
			}
			if err != nil {
				i++
				break
			}
		}
		if err == nil {
			err = s.write()
		}
		if err == nil && (sync || s.needSync) {
			s.requestSync(waiters, false, false)
			return
		}
		if err == nil {
			return
		}
		s.setFailed(err)
	}
	s.noteFailure()
	// Buffered events from i on were accepted and never built.
	var n int64
	for ; i < len(batch); i++ {
		if batch[i].done == nil && batch[i].payload != nil {
			n++
		}
	}
	s.lost.Add(n)
	err = s.Err()
	for _, w := range waiters {
		w <- err
	}
}

// event appends an event record, rotating first if the file is full and
// checkpointing after if it is time.
func (s *FileSink) event(payload []byte) error {
	next := int64(len(s.buf)) + int64(len(payload)) + 256
	if s.inFile > 0 && s.size+next > s.cfg.maxSize {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	s.buf, s.head = appendRecord(s.buf, s.seq+1, &s.head, false, payload)
	s.seq++
	s.inFile++
	s.since++
	if s.since >= s.cfg.every {
		s.checkpoint(wireCheckpoint{Reason: CheckpointPeriodic})
	}
	if len(s.buf) >= flushBytes {
		return s.write()
	}
	return nil
}

// rotate ends the current file with a rotate checkpoint, has the syncer
// fsync and close it, and opens the next once it is on disk: a power loss
// cannot leave the next file's records on disk without the rotate
// checkpoint before them.
func (s *FileSink) rotate() error {
	s.checkpoint(wireCheckpoint{Reason: CheckpointRotate})
	if err := s.write(); err != nil {
		return err
	}
	done := make(chan error, 1)
	s.requestSync([]chan error{done}, true, false)
	s.f = nil
	if err := <-done; err != nil {
		return err
	}
	return s.openFile(s.fileName(s.num+1), s.num+1, true)
}

// checkpoint appends checkpoint c (its reason, and what a recover
// checkpoint states), timed, chained and signed if the sink has a key.
func (s *FileSink) checkpoint(c wireCheckpoint) {
	now := s.cfg.now()
	ts := now.UTC().Format(time.RFC3339Nano)
	seq := s.seq + 1
	prev := hex.EncodeToString(s.head[:])
	c.Time, c.Chain = ts, s.chain
	if sg := s.cfg.signer; sg != nil {
		c.Key = sg.id
		c.Sig = base64.StdEncoding.EncodeToString(sg.sign(checkpointMessage(s.chain, seq, prev, &c)))
	}
	payload, _ := json.Marshal(&c) // strings and ints only: cannot fail
	s.buf, s.head = appendRecord(s.buf, seq, &s.head, true, payload)
	s.seq = seq
	s.inFile++
	s.since = 0
	s.lastCheckpoint = now
	s.needSync = true
	if s.notify != nil {
		r := record{seq: seq, hash: s.head}
		_, _ = hex.Decode(r.prev[:], []byte(prev))
		t, _ := time.Parse(time.RFC3339Nano, ts)
		s.pending = append(s.pending, checkpointValue(&r, &c, t, filepath.Base(s.path)))
	}
}

// write writes the records built so far to the current file.
func (s *FileSink) write() error {
	if len(s.buf) == 0 {
		return nil
	}
	n, err := s.f.Write(s.buf)
	s.size += int64(n)
	s.buf = s.buf[:0]
	s.unsyncedWrites = true
	if err != nil {
		return fmt.Errorf("audit: write %s: %w", filepath.Base(s.path), err)
	}
	return nil
}

// syncJob asks the syncer to fsync a file, then to hand on the checkpoints
// written before, answer the waiters, and maybe close the file.
type syncJob struct {
	f          file
	name       string
	events     int64 // buffered events built when last added to
	cps        []Checkpoint
	waiters    []chan error
	closeAfter bool
	last       bool // the syncer stops after it
}

// requestSync queues an fsync of everything written so far, joining the
// job still waiting for the syncer if it is for the same file.
func (s *FileSink) requestSync(waiters []chan error, closeAfter, last bool) {
	s.syncMu.Lock()
	var job *syncJob
	if n := len(s.syncJobs); n > 0 && s.syncJobs[n-1].f == s.f && !s.syncJobs[n-1].closeAfter {
		job = s.syncJobs[n-1]
	} else {
		job = &syncJob{f: s.f, name: filepath.Base(s.path)}
		s.syncJobs = append(s.syncJobs, job)
	}
	job.events = s.built
	job.cps = append(job.cps, s.pending...)
	job.waiters = append(job.waiters, waiters...)
	job.closeAfter = job.closeAfter || closeAfter
	job.last = job.last || last
	s.syncMu.Unlock()
	s.pending = s.pending[:0]
	s.needSync = false
	s.unsyncedWrites = false
	s.lastSync = s.cfg.now()
	select {
	case s.syncWake <- struct{}{}:
	default:
	}
}

// syncNow fsyncs everything written so far and waits for it.
func (s *FileSink) syncNow() error {
	done := make(chan error, 1)
	s.requestSync([]chan error{done}, false, false)
	return <-done
}

// syncer is the goroutine that fsyncs, in the order asked.
func (s *FileSink) syncer() {
	defer close(s.syncerDone)
	for {
		s.syncMu.Lock()
		if len(s.syncJobs) == 0 {
			s.syncMu.Unlock()
			<-s.syncWake
			continue
		}
		job := s.syncJobs[0]
		s.syncJobs = s.syncJobs[1:]
		s.syncMu.Unlock()

		if job.f != nil && !s.failed.Load() {
			if err := job.f.Sync(); err != nil {
				s.setFailed(fmt.Errorf("audit: fsync %s: %w", job.name, err))
			} else {
				s.syncedEvents.Store(job.events)
				for _, cp := range job.cps {
					s.notify <- cp
				}
			}
		}
		if job.closeAfter && job.f != nil {
			if err := job.f.Close(); err != nil && !s.failed.Load() {
				s.setFailed(fmt.Errorf("audit: close %s: %w", job.name, err))
			}
		}
		err := s.Err()
		for _, w := range job.waiters {
			w <- err
		}
		if job.last {
			return
		}
	}
}

// onTick writes a time-based checkpoint, or (buffered mode) asks for an
// fsync of what has waited long enough.
func (s *FileSink) onTick() {
	if s.failed.Load() {
		return
	}
	now := s.cfg.now()
	sync := s.cfg.buffered && s.unsyncedWrites && now.Sub(s.lastSync) >= bufferedSync
	if s.cfg.interval > 0 && s.since > 0 && now.Sub(s.lastCheckpoint) >= s.cfg.interval {
		s.checkpoint(wireCheckpoint{Reason: CheckpointPeriodic})
		sync = true
	}
	if !sync {
		return
	}
	if err := s.write(); err != nil {
		s.setFailed(err)
		return
	}
	s.requestSync(nil, false, false)
}

// finish runs when the queue is closed and empty: the close checkpoint,
// the last fsync, closing the file, and stopping the other goroutines.
func (s *FileSink) finish() {
	if !s.failed.Load() {
		s.checkpoint(wireCheckpoint{Reason: CheckpointClose})
		if err := s.write(); err != nil {
			s.setFailed(err)
		}
	}
	s.stopSyncer()
	s.noteFailure()
	if s.notify != nil {
		close(s.notify)
		<-s.notifierDone
	}
	s.shutdownErr = s.Err()
}

// stopSyncer has the syncer fsync and close the current file, and waits
// for it to stop.
func (s *FileSink) stopSyncer() {
	s.requestSync(nil, true, true)
	s.f = nil
	<-s.syncerDone
}
