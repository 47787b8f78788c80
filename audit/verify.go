package audit

import (
	"bufio"
	"crypto/ed25519"
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
	"strconv"
	"strings"
)

// ErrChainBroken is matched (errors.Is) by every *ChainError: a record of
// the log was changed, removed, added or moved, or the log was cut short.
var ErrChainBroken = errors.New("audit: chain broken")

// ChainError locates the first record of a log that does not verify.
type ChainError struct {
	// File is the file as given to Verify, Line the 1-based line number in
	// it and Offset the byte offset where that line starts.
	File   string
	Line   int
	Offset int64
	// Seq is the sequence number the record carries, or, when it cannot
	// be read, the one expected there.
	Seq uint64
	// Reason says what is wrong, in words.
	Reason string
}

// Error returns "audit: chain broken at <file>:<line> (seq N): <reason>".
func (e *ChainError) Error() string {
	return fmt.Sprintf("audit: chain broken at %s:%d (seq %d): %s", e.File, e.Line, e.Seq, e.Reason)
}

// Is reports whether target is ErrChainBroken.
func (e *ChainError) Is(target error) bool { return target == ErrChainBroken }

// VerifyOptions say what Verify requires of a log.
type VerifyOptions struct {
	// Keys are the public keys checkpoints may be signed with. Every
	// checkpoint must carry a valid signature by one of them. With nil
	// Keys signatures are not checked (Report.SignaturesChecked is false):
	// edits are still detected, but not a rewrite of the whole log with
	// recomputed hashes. An empty, non-nil Keys is an error.
	Keys []ed25519.PublicKey
	// AllowOpen accepts a log that does not end with a close checkpoint:
	// one still being written, or left by a crash. A torn tail at the end
	// of the last file is then reported in Report.Torn rather than failing,
	// and Report.Unsigned counts the records no signature covers yet.
	AllowOpen bool
	// After says the files start right after this checkpoint (older
	// files were deleted): the first record must follow it. Without
	// After, the first record must be the chain's first, an open
	// checkpoint with sequence number 1.
	After *Checkpoint
	// Anchors are checkpoints kept outside the log (see
	// WithCheckpointFunc). Each must be in the log with the same hash, so
	// a log cut back past an anchor fails even with AllowOpen.
	Anchors []Checkpoint
	// Prefix is the file name prefix VerifyDir looks for ("audit" if empty).
	Prefix string
	// OnEvent, if set, is called with each event record in order, once its
	// hash and its place in the chain are checked. A later record can
	// still fail (a checkpoint can show the records before it were
	// rewritten): only trust what OnEvent saw when Verify returns no error.
	OnEvent func(seq uint64, e Event)
}

// Report describes what Verify checked. Verify returns it even with an
// error, describing the records that verified before the broken one.
type Report struct {
	// Files is how many files were read; Records how many records
	// verified, of which Events events and Checkpoints checkpoints.
	Files       int
	Records     int
	Events      int
	Checkpoints int
	// Signed is how many checkpoints carried a valid signature.
	Signed int
	// First and Last are the first and last sequence numbers, Head the
	// hash of the last record.
	First, Last uint64
	Head        string
	// SignaturesChecked is false when Verify was given no keys.
	SignaturesChecked bool
	// SignedThrough is the sequence number of the last checkpoint whose
	// signature verified: every record up to it is sealed. Unsigned is how
	// many records come after it (all of them when none verified).
	SignedThrough uint64
	Unsigned      int
	// Closed is true when the log ends with a close checkpoint.
	Closed bool
	// Chain is the chain ID and Key the ID of the key that signed the
	// last checkpoint.
	Chain string
	Key   string
	// LastCheckpoint is the last checkpoint verified.
	LastCheckpoint *Checkpoint
	// Torn lists the torn tails found, in order: at the end of a file
	// followed by a recover checkpoint that names them, or at the end of
	// the last file.
	Torn []Torn
	// Anchors is how many of VerifyOptions.Anchors were found in the log.
	Anchors int
}

// Verify checks a log given as its files in chain order: every record's
// hash, the sequence numbers, the link of every record to the one before,
// the chain ID of every checkpoint, the signatures when opts.Keys are
// given, how each file ends and the next begins, and that the log ends
// with a close checkpoint unless opts.AllowOpen. It returns the first
// broken record as a *ChainError, and always a Report of what verified.
func Verify(opts VerifyOptions, files ...string) (*Report, error) {
	v, err := newVerifier(opts)
	if err != nil {
		return &Report{}, err
	}
	if len(files) == 0 {
		return &v.rep, errors.New("audit: verify: no files given")
	}
	for i, f := range files {
		if err := v.verifyFile(f, i == len(files)-1); err != nil {
			v.finishReport()
			return &v.rep, err
		}
	}
	err = v.finish()
	return &v.rep, err
}

// VerifyDir verifies the files <prefix>-NNNNNN.jsonl in dir, in the order
// of their numbers (see Verify).
func VerifyDir(dir string, opts VerifyOptions) (*Report, error) {
	files, err := chainFiles(dir, opts.Prefix)
	if err != nil {
		return &Report{}, err
	}
	if len(files) == 0 {
		return &Report{}, fmt.Errorf("audit: verify: no %s-NNNNNN.jsonl files in %s", prefixOrDefault(opts.Prefix), dir)
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.path
	}
	return Verify(opts, paths...)
}

func prefixOrDefault(p string) string {
	if p == "" {
		return "audit"
	}
	return p
}

type chainFile struct {
	path string
	num  uint64
}

// chainFiles lists <prefix>-<number>.jsonl in dir by number.
func chainFiles(dir, prefix string) ([]chainFile, error) {
	prefix = prefixOrDefault(prefix) + "-"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var out []chainFile
	for _, e := range ents {
		name := e.Name()
		digits, ok := strings.CutPrefix(name, prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if digits, ok = strings.CutSuffix(digits, ".jsonl"); !ok || len(digits) < 6 {
			continue
		}
		n, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || n == 0 {
			continue
		}
		out = append(out, chainFile{path: filepath.Join(dir, name), num: n})
	}
	slices.SortFunc(out, func(a, b chainFile) int {
		switch {
		case a.num < b.num:
			return -1
		case a.num > b.num:
			return 1
		}
		return 0
	})
	return out, nil
}

const (
	lastNone    = ""        // no record yet
	lastEvent   = "event"   // the previous record is an event
	lastUnknown = "unknown" // the set starts mid-chain, after a record we do not know
)

// verifier checks records one at a time; Verify and the file sink's
// reopening share it.
type verifier struct {
	opts     VerifyOptions
	anyStart bool // accept any first record (reopening reads only the last files)
	keys     map[string]ed25519.PublicKey
	anchors  map[uint64]Checkpoint
	rep      Report

	seq         uint64
	head        [sha256.Size]byte
	chain       string
	last        string // lastNone, lastEvent, lastUnknown or a checkpoint reason
	pendingTorn *Torn  // the previous file's torn tail, base name
	boundary    bool   // the next record is the first of a file after another file's records
	endTorn     *Torn  // torn tail at the end of the last file read

	file     string
	line     int
	off      int64
	lastFile string
	lastLine int
	lastOff  int64
}

func newVerifier(opts VerifyOptions) (*verifier, error) {
	v := &verifier{opts: opts, last: lastNone}
	if opts.Keys != nil {
		if len(opts.Keys) == 0 {
			return nil, errors.New("audit: verify: Keys is empty; pass nil to skip signature checks")
		}
		v.keys = make(map[string]ed25519.PublicKey, len(opts.Keys))
		for _, k := range opts.Keys {
			if len(k) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("audit: verify: a key has %d bytes, want %d", len(k), ed25519.PublicKeySize)
			}
			v.keys[KeyID(k)] = k
		}
		v.rep.SignaturesChecked = true
	}
	if a := opts.After; a != nil {
		var h [sha256.Size]byte
		if a.Seq == 0 || !decodeHash(&h, []byte(a.Hash)) {
			return nil, errors.New("audit: verify: After needs the checkpoint's Seq and Hash")
		}
		v.chain = a.Chain
	}
	v.anchors = make(map[uint64]Checkpoint, len(opts.Anchors))
	for _, a := range opts.Anchors {
		var h [sha256.Size]byte
		if a.Seq == 0 || !decodeHash(&h, []byte(a.Hash)) {
			return nil, errors.New("audit: verify: an anchor needs the checkpoint's Seq and Hash")
		}
		v.anchors[a.Seq] = a
	}
	return v, nil
}

func (v *verifier) fail(seq uint64, format string, args ...any) error {
	return &ChainError{File: v.file, Line: v.line, Offset: v.off, Seq: seq, Reason: fmt.Sprintf(format, args...)}
}

// verifyFile reads one file's records, then its torn tail if any.
func (v *verifier) verifyFile(path string, last bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	defer f.Close()
	v.rep.Files++
	v.file, v.line, v.off = path, 0, 0
	records := 0
	br := bufio.NewReaderSize(f, 1<<20)
	var acc, tail []byte
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			acc = append(acc, chunk...)
			if len(acc) > maxLine {
				v.line++
				return v.fail(v.seq+1, "line longer than %d bytes", maxLine)
			}
			continue
		case err == io.EOF:
			tail = append(acc, chunk...)
		case err != nil:
			return fmt.Errorf("audit: verify: %w", err)
		default:
			line := chunk
			if len(acc) > 0 {
				acc = append(acc, chunk...)
				line = acc
			}
			v.line++
			if err := v.record(line[:len(line)-1]); err != nil {
				return err
			}
			records++
			v.off += int64(len(line))
			acc = acc[:0]
			continue
		}
		break
	}
	if len(tail) > 0 {
		sum := sha256.Sum256(tail)
		t := Torn{File: path, Offset: v.off, Length: int64(len(tail)), Digest: hex.EncodeToString(sum[:])}
		v.rep.Torn = append(v.rep.Torn, t)
		t.File = filepath.Base(path)
		if p := v.pendingTorn; p != nil {
			// This file has no complete record to recover the one before.
			v.line++
			return v.fail(v.seq+1, "%s ends torn too, and the torn tail of %s was never recovered", t.File, p.File)
		}
		if last {
			v.endTorn = &t
		} else {
			v.pendingTorn = &t
		}
	} else if records == 0 && !last {
		v.line = 1
		return v.fail(v.seq+1, "empty file in the middle of the chain")
	}
	if v.last != lastNone {
		v.boundary = true
	}
	return nil
}

// record checks one complete line (without its newline).
func (v *verifier) record(line []byte) error {
	r, err := parseRecord(line)
	if err != nil {
		seq := r.seq
		if seq == 0 {
			seq = v.seq + 1
		}
		return v.fail(seq, "%v", err)
	}
	if err := v.position(&r); err != nil {
		return err
	}
	var cp *wireCheckpoint
	var cpv Checkpoint
	if r.checkpoint {
		c, t, err := parseCheckpoint(r.payload)
		if err != nil {
			return v.fail(r.seq, "%v", err)
		}
		cp = &c
		cpv = checkpointValue(&r, cp, t, filepath.Base(v.file))
	}
	if err := v.structure(&r, cp); err != nil {
		return err
	}
	if cp != nil {
		if err := v.checkpoint(&r, cp); err != nil {
			return err
		}
	}
	if a, ok := v.anchors[r.seq]; ok {
		if a.Hash != hex.EncodeToString(r.hash[:]) {
			return v.fail(r.seq, "record differs from the anchor kept for seq %d", r.seq)
		}
		v.rep.Anchors++
	}
	var ev Event
	if cp == nil {
		if v.opts.OnEvent != nil {
			if err := json.Unmarshal(r.payload, &ev); err != nil {
				return v.fail(r.seq, "malformed event: %v", err)
			}
		} else if !json.Valid(r.payload) {
			return v.fail(r.seq, "malformed event: not valid JSON")
		}
	}

	// The record verified: advance.
	if v.rep.Records == 0 {
		v.rep.First = r.seq
	}
	v.rep.Records++
	v.rep.Last = r.seq
	v.seq, v.head = r.seq, r.hash
	v.boundary = false
	v.lastFile, v.lastLine, v.lastOff = v.file, v.line, v.off
	if cp != nil {
		v.last = cp.Reason
		v.rep.Checkpoints++
		v.rep.Key = cp.Key
		v.rep.LastCheckpoint = &cpv
	} else {
		v.last = lastEvent
		v.rep.Events++
		if v.opts.OnEvent != nil {
			v.opts.OnEvent(r.seq, ev)
		}
	}
	return nil
}

// position checks the sequence number and the link to the previous record.
func (v *verifier) position(r *record) error {
	if v.last != lastNone {
		if r.seq != v.seq+1 {
			return v.fail(r.seq, "sequence number %d where %d was expected: records were deleted, inserted or reordered", r.seq, v.seq+1)
		}
		if r.prev != v.head {
			return v.fail(r.seq, "prev is not the hash of record %d: a record was replaced, or another chain joined", v.seq)
		}
		return nil
	}
	// The first record of the set.
	if a := v.opts.After; a != nil {
		if r.seq != a.Seq+1 {
			return v.fail(r.seq, "the first record has sequence number %d, the checkpoint it should follow %d", r.seq, a.Seq)
		}
		if hex.EncodeToString(r.prev[:]) != a.Hash {
			return v.fail(r.seq, "the first record does not follow the checkpoint given as After")
		}
		v.last = lastUnknown
		switch a.Reason {
		case CheckpointOpen, CheckpointPeriodic, CheckpointRotate, CheckpointClose, CheckpointRecover:
			v.last = a.Reason
			v.boundary = a.Reason == CheckpointRotate
		}
		return nil
	}
	if v.anyStart && r.seq != 1 {
		v.last = lastUnknown
		return nil
	}
	if r.seq != 1 {
		return v.fail(r.seq, "the log starts at sequence number %d, not 1: its first records are missing (use VerifyOptions.After for a log whose old files were deleted)", r.seq)
	}
	if r.prev != ([sha256.Size]byte{}) {
		return v.fail(r.seq, "the first record's prev is not zero")
	}
	return nil
}

// structure checks the record against the one before it: how checkpoints
// open, close, rotate and recover the log.
func (v *verifier) structure(r *record, cp *wireCheckpoint) error {
	reason := ""
	if cp != nil {
		reason = cp.Reason
	}
	if r.seq == 1 && reason != CheckpointOpen {
		return v.fail(r.seq, "the first record of a chain is not an open checkpoint")
	}
	if v.last == lastUnknown {
		// The record before is not in the set: nothing to compare with.
		return nil
	}
	prevFile := filepath.Base(v.lastFile)
	if t := v.pendingTorn; t != nil {
		if reason != CheckpointRecover || cp.Torn == nil {
			return v.fail(r.seq, "%s ends with %d torn bytes at offset %d that the next record does not recover", t.File, t.Length, t.Offset)
		}
		if *cp.Torn != (wireTorn{File: t.File, Offset: t.Offset, Length: t.Length, SHA256: t.Digest}) {
			return v.fail(r.seq, "recover checkpoint names other bytes than the torn tail of %s (%d bytes at offset %d)", t.File, t.Length, t.Offset)
		}
		v.pendingTorn = nil
		return nil
	}
	if cp != nil && cp.Torn != nil {
		return v.fail(r.seq, "recover checkpoint names a torn tail of %s that is not there", cp.Torn.File)
	}
	switch v.last {
	case CheckpointRotate:
		if !v.boundary {
			return v.fail(r.seq, "record after a rotate checkpoint in the same file")
		}
	case CheckpointClose:
		if reason != CheckpointOpen {
			return v.fail(r.seq, "record after a close checkpoint is not an open checkpoint")
		}
		return nil
	default:
		if v.boundary && reason != CheckpointRecover {
			return v.fail(r.seq, "%s ends without a rotate checkpoint and this file does not start with a recover checkpoint", prevFile)
		}
	}
	if reason == CheckpointOpen && r.seq != 1 {
		return v.fail(r.seq, "open checkpoint that does not follow a close checkpoint")
	}
	return nil
}

// checkpoint checks a checkpoint's chain ID and signature.
func (v *verifier) checkpoint(r *record, cp *wireCheckpoint) error {
	if v.chain == "" {
		v.chain = cp.Chain
		v.rep.Chain = cp.Chain
		for _, a := range v.opts.Anchors {
			if a.Chain != "" && a.Chain != v.chain {
				return v.fail(r.seq, "an anchor belongs to chain %s, the log is chain %s", a.Chain, v.chain)
			}
		}
	} else if cp.Chain != v.chain {
		return v.fail(r.seq, "checkpoint names chain %s, the log is chain %s: records of two chains were joined", cp.Chain, v.chain)
	}
	if v.keys == nil {
		return nil
	}
	if cp.Sig == "" {
		return v.fail(r.seq, "checkpoint is not signed")
	}
	pub, ok := v.keys[cp.Key]
	if !ok {
		return v.fail(r.seq, "checkpoint is signed by key %s, which is not one of the keys given", cp.Key)
	}
	sig, _ := base64.StdEncoding.DecodeString(cp.Sig)
	msg := checkpointMessage(cp.Chain, r.seq, hex.EncodeToString(r.prev[:]), cp.Reason, cp.Time, cp.Key, cp.Torn)
	if !ed25519.Verify(pub, msg, sig) {
		return v.fail(r.seq, "checkpoint signature does not verify: the records it seals were changed, or it was forged")
	}
	v.rep.Signed++
	v.rep.SignedThrough = r.seq
	return nil
}

// finish applies the end-of-log rules and completes the report.
func (v *verifier) finish() error {
	defer v.finishReport()
	for _, a := range v.opts.Anchors {
		if a.Seq > v.seq {
			return v.endFail(v.seq, "the log ends at seq %d but an anchor was kept for seq %d: the log was cut back", v.seq, a.Seq)
		}
	}
	if v.opts.AllowOpen {
		return nil
	}
	if t := v.endTorn; t != nil {
		v.line++
		return v.fail(v.seq+1, "%d torn bytes after the last record: the writer stopped mid-record", t.Length)
	}
	if v.last != CheckpointClose {
		return v.endFail(v.seq, "log ends at seq %d without a close checkpoint: truncated, or still open or crashed", v.seq)
	}
	return nil
}

func (v *verifier) endFail(seq uint64, format string, args ...any) error {
	if v.lastFile != "" {
		v.file, v.line, v.off = v.lastFile, v.lastLine, v.lastOff
	}
	return v.fail(seq, format, args...)
}

func (v *verifier) finishReport() {
	v.rep.Head = ""
	if v.rep.Records > 0 {
		v.rep.Head = hex.EncodeToString(v.head[:])
	}
	v.rep.Chain = v.chain
	v.rep.Closed = v.last == CheckpointClose && v.endTorn == nil
	if v.rep.SignedThrough == 0 {
		v.rep.Unsigned = v.rep.Records
	} else {
		v.rep.Unsigned = int(v.rep.Last - v.rep.SignedThrough)
	}
}
