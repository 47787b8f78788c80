package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
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
	"time"
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
	// checkpoint must carry a valid signature by one of them. Verify
	// refuses nil Keys unless Unsigned is set, and an empty, non-nil Keys.
	Keys []ed25519.PublicKey
	// Unsigned verifies without signatures (Keys must be nil): edits are
	// still detected, but not a rewrite of the whole log with recomputed
	// hashes, and Report.SignaturesChecked is false. Use it only for a log
	// written WithoutSigning, or to read a log whose keys you do not have.
	Unsigned bool
	// AllowOpen accepts a log that does not end with a close checkpoint:
	// one still being written, or left by a crash. Torn tails not yet
	// recovered are then reported in Report.Torn rather than failing, and
	// Report.Unsigned counts the records no signature covers yet.
	AllowOpen bool
	// After says the files start right after this checkpoint (older
	// files were deleted): the first record must follow it. Only Seq and
	// Hash are needed; Reason and Chain are checked when set. Without
	// After, the first record must be the chain's first, an open
	// checkpoint with sequence number 1.
	After *Checkpoint
	// Chain, if set, is the ID the log's chain must have (Report.Chain of
	// an earlier verification, kept elsewhere): a directory wiped and
	// refilled with a new chain, or another agent's log, then fails.
	Chain string
	// Anchors are checkpoints kept outside the log (see
	// WithCheckpointFunc and ParseAnchors). Each must be in the log with
	// the same hash and chain, so a log cut back past an anchor fails,
	// even with AllowOpen.
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
	// FirstCheckpoint and LastCheckpoint are the first and last
	// checkpoints verified.
	FirstCheckpoint *Checkpoint
	LastCheckpoint  *Checkpoint
	// Torn lists the torn tails found, in order: those a later checkpoint
	// names, and those at the end of the log not yet recovered.
	Torn []Torn
	// Recoveries lists the recover checkpoints, in order: where the sink
	// restarted after the log ended without a close checkpoint.
	Recoveries []Recovery
	// Anchors is how many of VerifyOptions.Anchors were found in the log.
	Anchors int
}

// Recovery is a recover checkpoint: the sink restarted on a log that did
// not end with a close checkpoint, and went on with it.
//
// Records SignedThrough+1 to SignedThrough+Adopted were not sealed by any
// signature when the sink restarted. A crash leaves such records (those
// written since the last checkpoint), but so does someone who rewrote or
// appended records while the sink was stopped, and the two cannot be told
// apart: the recover checkpoint seals whatever it found. Treat those
// records as unproven, unless a copy kept elsewhere confirms them.
type Recovery struct {
	// Seq is the recover checkpoint's sequence number and File the file
	// holding it, as given to Verify.
	Seq  uint64
	File string
	Time time.Time
	// SignedThrough is the last checkpoint before the restart (the last
	// signed one, for a signed chain) and Adopted how many records after
	// it the recovery took in without a signature.
	SignedThrough uint64
	Adopted       uint64
	// Torn are the torn tails the recover checkpoint names, with File as
	// given to Verify.
	Torn []Torn
}

// Verify checks a log given as its files in chain order: every record's
// hash, the sequence numbers, the link of every record to the one before,
// the chain ID of every checkpoint, the signatures (opts.Keys), how each
// file ends and the next begins, what each recover checkpoint states, and
// that the log ends with a close checkpoint unless opts.AllowOpen. It
// returns the first broken record as a *ChainError, and always a Report
// of what verified. Check Report.Recoveries: records a recovery adopted
// are not proven (see Recovery).
//
// A log cut back to an earlier checkpoint (a close, every time the agent
// restarted, or any checkpoint for an open log), the newest files
// deleted, or the whole directory wiped and a new chain started, verifies
// on its own: the log cannot show what is no longer there. Only what is
// kept elsewhere detects it: anchors (opts.Anchors) and the chain ID
// (opts.Chain).
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
	// skipOtherKeys leaves checkpoints signed by a key not given
	// unchecked rather than failing: reopening needs only the last
	// checkpoint's signature, which seals every record before it, and
	// may not have the keys the chain was signed with before a key change.
	skipOtherKeys bool
	keys          map[string]ed25519.PublicKey
	anchors       map[uint64]Checkpoint
	rep           Report

	seq   uint64
	head  [sha256.Size]byte
	chain string
	last  string // lastNone, lastEvent, lastUnknown or a checkpoint reason
	// lastCp is the sequence number of the last checkpoint, known when
	// the set starts at the chain's first record, after a checkpoint given
	// as After, or once a checkpoint was read.
	lastCp      uint64
	lastCpKnown bool
	pending     []Torn // torn tails not yet named by a checkpoint, File as given
	boundary    bool   // the next record is the first of a file after another file's records

	file     string
	line     int
	off      int64
	lastFile string
	lastLine int
	lastOff  int64
}

func newVerifier(opts VerifyOptions) (*verifier, error) {
	v := &verifier{opts: opts, last: lastNone}
	switch {
	case opts.Keys == nil && !opts.Unsigned:
		return nil, errors.New("audit: verify: no keys: pass the public keys checkpoints are signed with, or set Unsigned to check hashes only")
	case opts.Keys != nil && opts.Unsigned:
		return nil, errors.New("audit: verify: both Keys and Unsigned given")
	case opts.Keys != nil && len(opts.Keys) == 0:
		return nil, errors.New("audit: verify: Keys is empty")
	}
	if opts.Keys != nil {
		v.keys = make(map[string]ed25519.PublicKey, len(opts.Keys))
		for _, k := range opts.Keys {
			if len(k) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("audit: verify: a key has %d bytes, want %d", len(k), ed25519.PublicKeySize)
			}
			v.keys[KeyID(k)] = k
		}
		v.rep.SignaturesChecked = true
	}
	if opts.Chain != "" && (len(opts.Chain) != 32 || !isLowerHex(opts.Chain)) {
		return nil, errors.New("audit: verify: Chain is not 32 lowercase hex digits")
	}
	if a := opts.After; a != nil {
		var h [sha256.Size]byte
		if a.Seq == 0 || !decodeHash(&h, []byte(a.Hash)) {
			return nil, errors.New("audit: verify: After needs the checkpoint's Seq and Hash")
		}
		if opts.Chain != "" && a.Chain != "" && a.Chain != opts.Chain {
			return nil, fmt.Errorf("audit: verify: After belongs to chain %s, not %s", a.Chain, opts.Chain)
		}
		v.chain = a.Chain
	}
	v.anchors = make(map[uint64]Checkpoint, len(opts.Anchors))
	for _, a := range opts.Anchors {
		var h [sha256.Size]byte
		if a.Seq == 0 || !decodeHash(&h, []byte(a.Hash)) {
			return nil, errors.New("audit: verify: an anchor needs the checkpoint's Seq and Hash")
		}
		if opts.Chain != "" && a.Chain != "" && a.Chain != opts.Chain {
			return nil, fmt.Errorf("audit: verify: an anchor belongs to chain %s, not %s", a.Chain, opts.Chain)
		}
		v.anchors[a.Seq] = a
	}
	return v, nil
}

func (v *verifier) fail(seq uint64, format string, args ...any) error {
	return &ChainError{File: v.file, Line: v.line, Offset: v.off, Seq: seq, Reason: fmt.Sprintf(format, args...)}
}

// verifyFile reads one file's records, then its torn tail if any: from the
// first line without a newline or with a NUL byte (no record holds one) to
// the end of the file.
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
	var acc []byte
	var torn *Torn
	for {
		chunk, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
			return fmt.Errorf("audit: verify: %w", err)
		}
		if bytes.IndexByte(chunk, 0) >= 0 || (err == io.EOF && len(acc)+len(chunk) > 0) {
			if torn, err = v.tornTail(path, acc, chunk, br); err != nil {
				return err
			}
			break
		}
		if err == io.EOF {
			break
		}
		if err == bufio.ErrBufferFull {
			acc = append(acc, chunk...)
			if len(acc) > maxLine {
				v.line++
				return v.fail(v.seq+1, "line longer than %d bytes", maxLine)
			}
			continue
		}
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
	}
	if torn != nil {
		v.rep.Torn = append(v.rep.Torn, *torn)
		v.pending = append(v.pending, *torn)
	} else if records == 0 && !last {
		v.line = 1
		return v.fail(v.seq+1, "empty file in the middle of the chain")
	}
	if v.last != lastNone {
		v.boundary = true
	}
	return nil
}

// tornTail hashes the rest of the file from the line that starts with
// acc and chunk. A torn tail is what a writer stopped mid-record (or a
// power loss) leaves: it never holds a complete checkpoint whose signature
// verifies, which the writer fsyncs before anything is written after it.
// One that does is bytes made torn on purpose (a NUL written into a
// closed log) to hide the records after it, and fails.
func (v *verifier) tornTail(path string, acc, chunk []byte, br *bufio.Reader) (*Torn, error) {
	rest, err := io.ReadAll(br)
	if err != nil {
		return nil, fmt.Errorf("audit: verify: %w", err)
	}
	h := sha256.New()
	h.Write(acc)
	h.Write(chunk)
	h.Write(rest)
	region := make([]byte, 0, len(acc)+len(chunk)+len(rest))
	region = append(append(append(region, acc...), chunk...), rest...)
	if seq, at, ok := v.sealedIn(region); ok {
		v.off += int64(at)
		v.line++
		return nil, v.fail(seq, "the torn bytes at the end of the file hold a complete checkpoint whose signature verifies (seq %d): they were not torn by a crash; records sealed by a signature were hidden", seq)
	}
	return &Torn{File: path, Offset: v.off, Length: int64(len(region)), Digest: hex.EncodeToString(h.Sum(nil))}, nil
}

// sealedIn looks, in the complete lines of a torn region, for a checkpoint
// whose signature verifies under the keys given, and returns its sequence
// number and its offset in the region.
func (v *verifier) sealedIn(region []byte) (uint64, int, bool) {
	if v.keys == nil {
		return 0, 0, false
	}
	off := 0
	for {
		i := bytes.IndexByte(region[off:], '\n')
		if i < 0 {
			return 0, 0, false
		}
		line := region[off : off+i]
		start := off
		off += i + 1
		// A line may follow NUL bytes a power loss left before it.
		line = bytes.TrimLeft(line, "\x00")
		start += i - len(line)
		if bytes.IndexByte(line, 0) >= 0 {
			continue
		}
		r, err := parseRecord(line)
		if err != nil || !r.checkpoint {
			continue
		}
		cp, _, err := parseCheckpoint(r.payload)
		if err != nil || cp.Sig == "" {
			continue
		}
		pub, ok := v.keys[cp.Key]
		if !ok {
			continue
		}
		sig, err := strictBase64.DecodeString(cp.Sig)
		if err == nil && ed25519.Verify(pub, checkpointMessage(cp.Chain, r.seq, hex.EncodeToString(r.prev[:]), &cp), sig) {
			return r.seq, start, true
		}
	}
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
	named := v.pending
	if err := v.structure(&r, cp); err != nil {
		return err
	}
	if cp != nil {
		if err := v.checkpoint(&r, cp); err != nil {
			return err
		}
		if cp.Reason == CheckpointRecover {
			if err := v.recovery(&r, cp); err != nil {
				return err
			}
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
		v.lastCp, v.lastCpKnown = r.seq, true
		v.rep.Checkpoints++
		v.rep.Key = cp.Key
		v.rep.LastCheckpoint = &cpv
		if v.rep.FirstCheckpoint == nil {
			v.rep.FirstCheckpoint = &cpv
		}
		if cp.Reason == CheckpointRecover {
			rc := Recovery{Seq: r.seq, File: v.file, Time: cpv.Time, SignedThrough: cp.SignedThrough, Adopted: cp.Adopted, Torn: slices.Clone(cpv.Torn)}
			for i, j := len(named)-1, len(rc.Torn)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
				rc.Torn[j].File = named[i].File // as given to Verify
			}
			v.rep.Recoveries = append(v.rep.Recoveries, rc)
		}
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
			v.lastCp, v.lastCpKnown = a.Seq, true
		}
		return nil
	}
	if v.anyStart && r.seq != 1 {
		v.last = lastUnknown
		return nil
	}
	if r.seq != 1 {
		return v.fail(r.seq, "the log starts at sequence number %d, not 1: its first records are missing (give the last checkpoint before it as VerifyOptions.After, or -after to agentguard-audit, for a log whose old files were deleted)", r.seq)
	}
	if r.prev != ([sha256.Size]byte{}) {
		return v.fail(r.seq, "the first record's prev is not zero")
	}
	v.lastCpKnown = true
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
	if len(v.pending) > 0 {
		p := v.pending[len(v.pending)-1]
		if reason != CheckpointRecover && (reason != CheckpointOpen || r.seq != 1) {
			return v.fail(r.seq, "%s ends with %d torn bytes at offset %d that the next record does not recover", filepath.Base(p.File), p.Length, p.Offset)
		}
		// A set that starts mid-chain may miss files with earlier torn
		// tails the checkpoint names too.
		partial := v.rep.Records == 0 && (v.anyStart || v.opts.After != nil)
		if !tornNamed(cp.Torn, v.pending, partial) {
			return v.fail(r.seq, "%s checkpoint names other torn tails than the %d found before it (the last: %d bytes at offset %d of %s)", reason, len(v.pending), p.Length, p.Offset, filepath.Base(p.File))
		}
		v.pending = nil
		return nil
	}
	if cp != nil && len(cp.Torn) > 0 {
		if v.rep.Records == 0 && (v.anyStart || v.opts.After != nil) {
			return nil // the torn files come before the set
		}
		return v.fail(r.seq, "%s checkpoint names a torn tail of %s that is not there", reason, cp.Torn[0].File)
	}
	if v.last == lastUnknown {
		// The record before is not in the set: nothing to compare with.
		return nil
	}
	prevFile := filepath.Base(v.lastFile)
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

// tornNamed reports whether a checkpoint's torn tails are those found,
// or end with them when suffix.
func tornNamed(named []wireTorn, found []Torn, suffix bool) bool {
	if len(named) != len(found) && (!suffix || len(named) < len(found)) {
		return false
	}
	named = named[len(named)-len(found):]
	for i, t := range found {
		if named[i] != (wireTorn{File: filepath.Base(t.File), Offset: t.Offset, Length: t.Length, SHA256: t.Digest}) {
			return false
		}
	}
	return true
}

// recovery checks what a recover checkpoint states it adopted against the
// log: the checkpoint it was sealed through is the last one before it,
// and the records it adopted are all those after that one.
func (v *verifier) recovery(r *record, cp *wireCheckpoint) error {
	if cp.SignedThrough >= r.seq || cp.Adopted != r.seq-1-cp.SignedThrough {
		return v.fail(r.seq, "recover checkpoint says it follows seq %d and adopted %d records, which does not add up to seq %d", cp.SignedThrough, cp.Adopted, r.seq-1)
	}
	switch {
	case v.lastCpKnown && cp.SignedThrough != v.lastCp:
		return v.fail(r.seq, "recover checkpoint says the log was sealed through seq %d, but the last checkpoint before it is seq %d", cp.SignedThrough, v.lastCp)
	case !v.lastCpKnown && v.rep.Records > 0 && cp.SignedThrough >= v.rep.First:
		return v.fail(r.seq, "recover checkpoint says the log was sealed through seq %d, which is not a checkpoint", cp.SignedThrough)
	}
	return nil
}

// checkpoint checks a checkpoint's chain ID and signature.
func (v *verifier) checkpoint(r *record, cp *wireCheckpoint) error {
	if v.chain == "" {
		v.chain = cp.Chain
		v.rep.Chain = cp.Chain
		if c := v.opts.Chain; c != "" && c != v.chain {
			return v.fail(r.seq, "the log is chain %s, not chain %s: the log was replaced by another (a directory wiped and started again, or another agent's log)", v.chain, c)
		}
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
	if !ok && v.skipOtherKeys {
		return nil
	}
	if !ok {
		return v.fail(r.seq, "checkpoint is signed by key %s, which is not one of the keys given", cp.Key)
	}
	sig, _ := strictBase64.DecodeString(cp.Sig)
	msg := checkpointMessage(cp.Chain, r.seq, hex.EncodeToString(r.prev[:]), cp)
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
	var newest uint64
	for _, a := range v.opts.Anchors {
		newest = max(newest, a.Seq)
	}
	if newest > v.seq {
		return v.endFail(v.seq, "the log ends at seq %d but an anchor was kept for seq %d: the log was cut back", v.seq, newest)
	}
	if c := v.opts.Chain; c != "" && v.chain == "" {
		return v.endFail(v.seq, "no checkpoint names the chain: it cannot be shown to be chain %s", c)
	}
	if v.opts.AllowOpen {
		return nil
	}
	if len(v.pending) > 0 {
		t := v.pending[0]
		v.file, v.off = t.File, t.Offset
		v.line = 1
		if t.File == v.lastFile {
			v.line = v.lastLine + 1
		}
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
	v.rep.Closed = v.last == CheckpointClose && len(v.pending) == 0
	if v.rep.SignedThrough == 0 {
		v.rep.Unsigned = v.rep.Records
	} else {
		v.rep.Unsigned = int(v.rep.Last - v.rep.SignedThrough)
	}
}
