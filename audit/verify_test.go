package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// baseLog writes a closed, signed chain of 10 events with a checkpoint
// every 4 into dir and returns its file. Its lines:
//
//	1 open | 2-5 events 0-3 | 6 periodic | 7-10 events 4-7 | 11 periodic | 12-13 events 8-9 | 14 close
func baseLog(t *testing.T, dir string, key ed25519.PrivateKey, extra ...FileOption) string {
	t.Helper()
	opts := append([]FileOption{WithSigningKey(key), WithCheckpointEvery(4, 0), WithFileClock(newFakeClock().Now)}, extra...)
	if key == nil {
		opts[0] = WithoutSigning()
	}
	s := newTestSink(t, dir, opts...)
	mustWrite(t, s, ids(0, 10)...)
	shutdown(t, s)
	return s.Files()[0]
}

func writeLines(t *testing.T, path string, ls [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(ls, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

// wantBroken checks err is a ChainError at file:line for seq whose reason
// contains reason.
func wantBroken(t *testing.T, err error, file string, line int, seq uint64, reason string) *ChainError {
	t.Helper()
	var ce *ChainError
	if !errors.As(err, &ce) || !errors.Is(err, ErrChainBroken) {
		t.Fatalf("error %v, want a ChainError", err)
	}
	if ce.File != file || ce.Line != line || ce.Seq != seq || !strings.Contains(ce.Reason, reason) {
		t.Fatalf("broken at %s:%d seq %d: %s\nwant %s:%d seq %d: ...%s...", ce.File, ce.Line, ce.Seq, ce.Reason, file, line, seq, reason)
	}
	return ce
}

func TestVerifyDetectsTampering(t *testing.T) {
	key, pub := testKey("tamper")
	other, _ := testKey("tamper-other")
	keys := []ed25519.PublicKey{pub}
	edit := func(l []byte) []byte {
		return bytes.Replace(l, []byte(`"decision":"allow"`), []byte(`"decision":"deny!"`), 1)
	}
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, ls [][]byte) [][]byte
		open   bool // verify with AllowOpen
		line   int
		seq    uint64
		reason string
	}{
		{name: "edit a byte of an event", tamper: func(t *testing.T, ls [][]byte) [][]byte {
			ls[2] = edit(ls[2])
			return ls
		}, line: 3, seq: 3, reason: "hash mismatch"},
		{name: "edit a checkpoint", tamper: func(t *testing.T, ls [][]byte) [][]byte {
			ls[5] = bytes.Replace(ls[5], []byte(`"reason":"periodic"`), []byte(`"reason":"rotate"`), 1)
			return ls
		}, line: 6, seq: 6, reason: "hash mismatch"},
		{name: "delete a record", tamper: func(t *testing.T, ls [][]byte) [][]byte {
			return slices.Delete(ls, 2, 3)
		}, line: 3, seq: 4, reason: "sequence number 4 where 3 was expected"},
		{name: "insert a copied record", tamper: func(t *testing.T, ls [][]byte) [][]byte {
			return slices.Insert(ls, 5, slices.Clone(ls[2]))
		}, line: 6, seq: 3, reason: "sequence number 3 where 6 was expected"},
		{name: "swap two records", tamper: func(t *testing.T, ls [][]byte) [][]byte {
			ls[2], ls[3] = ls[3], ls[2]
			return ls
		}, line: 3, seq: 4, reason: "sequence number 4 where 3 was expected"},
		{name: "truncate at a record boundary", tamper: func(t *testing.T, ls [][]byte) [][]byte {
			return ls[:9]
		}, line: 9, seq: 9, reason: "log ends at seq 9 without a close checkpoint"},
		{name: "truncate mid-record", tamper: func(t *testing.T, ls [][]byte) [][]byte {
			ls[8] = ls[8][:50]
			return ls[:9]
		}, line: 9, seq: 9, reason: "50 torn bytes after the last record"},
		{name: "drop the close checkpoint", tamper: func(t *testing.T, ls [][]byte) [][]byte {
			return ls[:13]
		}, line: 13, seq: 13, reason: "without a close checkpoint"},
		{name: "edit and recompute the hashes without the key", tamper: func(t *testing.T, ls [][]byte) [][]byte {
			ls[2] = edit(ls[2])
			return rechain(t, ls, 0, nil)
		}, line: 6, seq: 6, reason: "signature does not verify"},
		{name: "edit the unsealed tail and recompute the hashes", tamper: func(t *testing.T, ls [][]byte) [][]byte {
			ls[11] = edit(ls[11])
			return rechain(t, ls, 0, nil)
		}, line: 14, seq: 14, reason: "signature does not verify"},
		{name: "rewrite the whole log unsigned", tamper: func(t *testing.T, _ [][]byte) [][]byte {
			return lines(t, baseLog(t, t.TempDir(), nil))
		}, line: 1, seq: 1, reason: "checkpoint is not signed"},
		{name: "rewrite the whole log with another key", tamper: func(t *testing.T, _ [][]byte) [][]byte {
			return lines(t, baseLog(t, t.TempDir(), other))
		}, line: 1, seq: 1, reason: "not one of the keys given"},
		{name: "move a close checkpoint forward", tamper: func(t *testing.T, ls [][]byte) [][]byte {
			// Someone without the key turns a record into a close and
			// drops what follows: the signature of the moved checkpoint fails.
			ls = append(ls[:9], ls[13])
			return rechain(t, ls, 0, nil)
		}, line: 10, seq: 10, reason: "signature does not verify"},
		{name: "insert an open checkpoint", tamper: func(t *testing.T, ls [][]byte) [][]byte {
			ls = slices.Insert(ls, 3, slices.Clone(ls[0]))
			return rechain(t, ls, 0, nil)
		}, line: 4, seq: 4, reason: "open checkpoint that does not follow a close checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := baseLog(t, dir, key)
			writeLines(t, f, tc.tamper(t, lines(t, f)))
			rep, err := Verify(VerifyOptions{Keys: keys, AllowOpen: tc.open}, f)
			wantBroken(t, err, f, tc.line, tc.seq, tc.reason)
			if rep == nil || rep.Records > tc.line {
				t.Fatalf("report %+v counts records past the broken one", rep)
			}
		})
	}
}

func TestVerifyOpenLog(t *testing.T) {
	key, pub := testKey("tamper")
	keys := []ed25519.PublicKey{pub}

	t.Run("cut at a record boundary", func(t *testing.T) {
		f := baseLog(t, t.TempDir(), key)
		writeLines(t, f, lines(t, f)[:9])
		rep, err := Verify(VerifyOptions{Keys: keys, AllowOpen: true}, f)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Closed || rep.Last != 9 || rep.SignedThrough != 6 || rep.Unsigned != 3 || rep.Events != 7 || len(rep.Torn) != 0 {
			t.Fatalf("report %+v", rep)
		}
	})

	t.Run("cut mid-record", func(t *testing.T) {
		f := baseLog(t, t.TempDir(), key)
		ls := lines(t, f)
		kept := bytes.Join(ls[:8], nil)
		torn := ls[8][:50]
		writeLines(t, f, [][]byte{kept, torn})
		rep, err := Verify(VerifyOptions{Keys: keys, AllowOpen: true}, f)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(torn)
		want := Torn{File: f, Offset: int64(len(kept)), Length: 50, Digest: hex.EncodeToString(sum[:])}
		if len(rep.Torn) != 1 || rep.Torn[0] != want || rep.Last != 8 || rep.Closed {
			t.Fatalf("report %+v, want torn %+v", rep, want)
		}
	})

	t.Run("without keys", func(t *testing.T) {
		// Without keys Verify refuses, unless told to skip signatures:
		// then a rewrite with recomputed hashes goes unseen, and the
		// report says signatures were not checked.
		f := baseLog(t, t.TempDir(), key)
		ls := lines(t, f)
		ls[2] = bytes.Replace(ls[2], []byte(callID(1)), []byte("call-forged"), 1)
		writeLines(t, f, rechain(t, ls, 0, nil))
		if _, err := Verify(VerifyOptions{}, f); err == nil || !strings.Contains(err.Error(), "Unsigned") {
			t.Fatalf("Verify without keys or Unsigned: %v", err)
		}
		if _, err := Verify(VerifyOptions{Keys: keys, Unsigned: true}, f); err == nil {
			t.Fatal("Verify with both Keys and Unsigned succeeded")
		}
		rep, err := Verify(VerifyOptions{Unsigned: true}, f)
		if err != nil {
			t.Fatal(err)
		}
		if rep.SignaturesChecked || rep.Signed != 0 || rep.SignedThrough != 0 || rep.Unsigned != rep.Records || !rep.Closed {
			t.Fatalf("report %+v", rep)
		}
	})

	t.Run("empty keys", func(t *testing.T) {
		f := baseLog(t, t.TempDir(), key)
		if _, err := Verify(VerifyOptions{Keys: []ed25519.PublicKey{}}, f); err == nil {
			t.Fatal("an empty, non-nil Keys verified without checking signatures")
		}
	})
}

// rotatedLog writes a closed chain of n events over several small files.
func rotatedLog(t *testing.T, dir string, key ed25519.PrivateKey, n int) []string {
	t.Helper()
	s := newTestSink(t, dir, WithSigningKey(key), WithMaxFileSize(2048), WithCheckpointEvery(5, 0), WithFileClock(newFakeClock().Now))
	mustWrite(t, s, ids(0, n)...)
	shutdown(t, s)
	if len(s.Files()) < 4 {
		t.Fatalf("%d files", len(s.Files()))
	}
	return s.Files()
}

func TestVerifyRotatedSet(t *testing.T) {
	key, pub := testKey("rotated")
	keys := []ed25519.PublicKey{pub}

	t.Run("whole set", func(t *testing.T) {
		files := rotatedLog(t, t.TempDir(), key, 40)
		rep, err := Verify(VerifyOptions{Keys: keys}, files...)
		if err != nil || rep.Files != len(files) || rep.Events != 40 || !rep.Closed {
			t.Fatalf("%v %+v", err, rep)
		}
	})

	t.Run("a middle file deleted", func(t *testing.T) {
		dir := t.TempDir()
		files := rotatedLog(t, dir, key, 40)
		if err := os.Remove(files[1]); err != nil {
			t.Fatal(err)
		}
		first := view(t, lines(t, files[2])[0])
		_, err := VerifyDir(dir, VerifyOptions{Keys: keys})
		wantBroken(t, err, files[2], 1, first.Seq, "records were deleted")
	})

	t.Run("files out of order", func(t *testing.T) {
		files := rotatedLog(t, t.TempDir(), key, 40)
		files[1], files[2] = files[2], files[1]
		first := view(t, lines(t, files[1])[0])
		_, err := Verify(VerifyOptions{Keys: keys}, files...)
		wantBroken(t, err, files[1], 1, first.Seq, "sequence number")
	})

	t.Run("the oldest files deleted", func(t *testing.T) {
		files := rotatedLog(t, t.TempDir(), key, 40)
		_, err := Verify(VerifyOptions{Keys: keys}, files[2:]...)
		first := view(t, lines(t, files[2])[0])
		wantBroken(t, err, files[2], 1, first.Seq, "its first records are missing")
		// With the last checkpoint of the deleted files, the rest verifies.
		head, err := Verify(VerifyOptions{Keys: keys, AllowOpen: true}, files[:2]...)
		if err != nil || head.LastCheckpoint.Reason != CheckpointRotate {
			t.Fatalf("%v %+v", err, head)
		}
		rep, err := Verify(VerifyOptions{Keys: keys, After: head.LastCheckpoint}, files[2:]...)
		if err != nil || rep.First != head.Last+1 || !rep.Closed {
			t.Fatalf("%v %+v", err, rep)
		}
		// After does not fit another place in the chain.
		wrong := *head.LastCheckpoint
		wrong.Seq--
		_, err = Verify(VerifyOptions{Keys: keys, After: &wrong}, files[2:]...)
		wantBroken(t, err, files[2], 1, first.Seq, "the checkpoint it should follow")
	})

	t.Run("a torn file not recovered", func(t *testing.T) {
		files := rotatedLog(t, t.TempDir(), key, 40)
		b, _ := os.ReadFile(files[0])
		if err := os.WriteFile(files[0], append(b, `{"seq":99,"prev`...), 0o600); err != nil {
			t.Fatal(err)
		}
		first := view(t, lines(t, files[1])[0])
		_, err := Verify(VerifyOptions{Keys: keys}, files...)
		wantBroken(t, err, files[1], 1, first.Seq, "torn bytes")
	})

	t.Run("a rotate checkpoint removed", func(t *testing.T) {
		files := rotatedLog(t, t.TempDir(), key, 40)
		ls := lines(t, files[0])
		writeLines(t, files[0], ls[:len(ls)-1])
		_, err := Verify(VerifyOptions{Keys: keys}, files...)
		wantBroken(t, err, files[1], 1, view(t, ls[len(ls)-1]).Seq+1, "where")
	})

	t.Run("an empty middle file", func(t *testing.T) {
		files := rotatedLog(t, t.TempDir(), key, 40)
		empty := filepath.Join(t.TempDir(), "empty.jsonl")
		writeLines(t, empty, nil)
		set := slices.Insert(slices.Clone(files), 1, empty)
		_, err := Verify(VerifyOptions{Keys: keys}, set...)
		wantBroken(t, err, empty, 1, view(t, lines(t, files[1])[0]).Seq, "empty file")
	})
}

func TestVerifySplicedChains(t *testing.T) {
	key, pub := testKey("splice")
	keys := []ed25519.PublicKey{pub}
	a := rotatedLog(t, t.TempDir(), key, 40)
	b := rotatedLog(t, t.TempDir(), key, 40) // same key, same sizes: only the chain differs
	aChain := view(t, lines(t, a[0])[0]).Checkpoint.Chain
	bChain := view(t, lines(t, b[0])[0]).Checkpoint.Chain

	t.Run("as they are", func(t *testing.T) {
		first := view(t, lines(t, b[1])[0])
		_, err := Verify(VerifyOptions{Keys: keys}, a[0], b[1], b[2], b[3])
		wantBroken(t, err, b[1], 1, first.Seq, "prev is not the hash of record")
	})

	t.Run("re-chained", func(t *testing.T) {
		// Re-link b's files to a's first file: the first checkpoint of b
		// names b's chain.
		aLines := lines(t, a[0])
		last := view(t, aLines[len(aLines)-1])
		var head [sha256.Size]byte
		_, _ = hex.Decode(head[:], []byte(last.Hash))
		var rest [][]byte
		for _, f := range b[1:] {
			rest = append(rest, lines(t, f)...)
		}
		out := filepath.Join(t.TempDir(), "spliced.jsonl")
		writeLines(t, out, rechain(t, rest, last.Seq, &head))
		var cpLine int
		for i, l := range rest {
			if view(t, l).Checkpoint != nil {
				cpLine = i + 1
				break
			}
		}
		_, err := Verify(VerifyOptions{Keys: keys}, a[0], out)
		wantBroken(t, err, out, cpLine, last.Seq+uint64(cpLine), "records of two chains were joined")
	})

	t.Run("a whole other chain where an anchor is kept", func(t *testing.T) {
		// b verifies on its own; an anchor kept from a shows it is not a.
		ra, err := Verify(VerifyOptions{Keys: keys}, a...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify(VerifyOptions{Keys: keys, Anchors: []Checkpoint{*ra.LastCheckpoint}}, b...)
		ce := wantBroken(t, err, b[0], 1, 1, "an anchor belongs to chain")
		if !strings.Contains(ce.Reason, aChain) || !strings.Contains(ce.Reason, bChain) {
			t.Fatalf("reason %q does not name both chains", ce.Reason)
		}
	})
}

func TestVerifyAnchors(t *testing.T) {
	dir := t.TempDir()
	key, pub := testKey(t.Name())
	keys := []ed25519.PublicKey{pub}
	var anchors []Checkpoint
	s := newTestSink(t, dir, WithSigningKey(key), WithCheckpointEvery(5, 0),
		WithCheckpointFunc(func(c Checkpoint) { anchors = append(anchors, c) }))
	mustWrite(t, s, ids(0, 23)...)
	shutdown(t, s)

	// The checkpoints shipped are the ones in the file, in order.
	f := s.Files()[0]
	var inFile []Checkpoint
	for _, l := range lines(t, f) {
		if v := view(t, l); v.Checkpoint != nil {
			inFile = append(inFile, Checkpoint{Seq: v.Seq, Hash: v.Hash, Prev: v.Prev, Reason: v.Checkpoint.Reason})
		}
	}
	if len(anchors) != len(inFile) || len(anchors) != 6 {
		t.Fatalf("%d checkpoints shipped, %d in the file", len(anchors), len(inFile))
	}
	for i, a := range anchors {
		w := inFile[i]
		if a.Seq != w.Seq || a.Hash != w.Hash || a.Prev != w.Prev || a.Reason != w.Reason || a.File != filepath.Base(f) || a.Key != KeyID(pub) {
			t.Fatalf("checkpoint %d shipped %+v, in the file %+v", i, a, w)
		}
	}
	rep, err := Verify(VerifyOptions{Keys: keys, Anchors: anchors}, f)
	if err != nil || rep.Anchors != len(anchors) {
		t.Fatalf("%v %+v", err, rep)
	}

	// Cut the log back to before the fourth checkpoint: an open log, fine
	// on its own, but not with the anchors kept.
	ls := lines(t, f)
	cut := int(anchors[3].Seq) - 2
	writeLines(t, f, ls[:cut])
	if _, err := Verify(VerifyOptions{Keys: keys, AllowOpen: true}, f); err != nil {
		t.Fatalf("the cut log alone: %v", err)
	}
	_, err = Verify(VerifyOptions{Keys: keys, AllowOpen: true, Anchors: anchors}, f)
	wantBroken(t, err, f, cut, uint64(cut), "cut back")

	// An anchor whose hash differs from the record at its seq.
	bad := anchors[1]
	bad.Hash = strings.Repeat("ab", 32)
	_, err = Verify(VerifyOptions{Keys: keys, AllowOpen: true, Anchors: []Checkpoint{bad}}, f)
	wantBroken(t, err, f, int(bad.Seq), bad.Seq, "differs from the anchor")
}

func TestParseRecordIsStrict(t *testing.T) {
	var zero [sha256.Size]byte
	good, _ := appendRecord(nil, 7, &zero, false, []byte(`{"kind":"tool_call"}`))
	good = good[:len(good)-1]
	if r, err := parseRecord(good); err != nil || r.seq != 7 || r.checkpoint || string(r.payload) != `{"kind":"tool_call"}` {
		t.Fatalf("parse of a good record: %+v %v", r, err)
	}
	rehash := func(l string) []byte { // a record with a correct hash over a bad form
		body := l[:len(l)-hashSuffixLen]
		sum := sha256.Sum256([]byte(body))
		return []byte(body + `,"hash":"` + hex.EncodeToString(sum[:]) + `"}`)
	}
	zeros := strings.Repeat("0", 64)
	for _, tc := range []struct {
		name string
		line []byte
	}{
		{"leading zero", rehash(`{"seq":07,"prev":"` + zeros + `","event":{"a":1},"hash":"` + zeros + `"}`)},
		{"seq zero", rehash(`{"seq":0,"prev":"` + zeros + `","event":{"a":1},"hash":"` + zeros + `"}`)},
		{"seq overflow", rehash(`{"seq":99999999999999999999,"prev":"` + zeros + `","event":{"a":1},"hash":"` + zeros + `"}`)},
		{"space", rehash(`{"seq": 7,"prev":"` + zeros + `","event":{"a":1},"hash":"` + zeros + `"}`)},
		{"upper-case hex", rehash(`{"seq":7,"prev":"` + strings.Repeat("A", 64) + `","event":{"a":1},"hash":"` + zeros + `"}`)},
		{"extra key", rehash(`{"seq":7,"prev":"` + zeros + `","x":1,"event":{"a":1},"hash":"` + zeros + `"}`)},
		{"other kind", rehash(`{"seq":7,"prev":"` + zeros + `","events":{"a":1},"hash":"` + zeros + `"}`)},
		{"payload not an object", rehash(`{"seq":7,"prev":"` + zeros + `","event":[1],"hash":"` + zeros + `"}`)},
		{"data after the hash", append(slices.Clone(good), ' ')},
		{"wrong hash", flipHashDigit(good)},
		{"empty", nil},
		{"not json", []byte("hello")},
	} {
		if _, err := parseRecord(tc.line); err == nil {
			t.Errorf("%s: %s parsed", tc.name, tc.line)
		}
	}
	for _, cp := range []string{
		`{"reason":"open","time":"2025-01-01T00:00:00Z","chain":"` + strings.Repeat("a", 32) + `","extra":1}`,
		`{"reason":"reopen","time":"2025-01-01T00:00:00Z","chain":"` + strings.Repeat("a", 32) + `"}`,
		`{"reason":"open","time":"yesterday","chain":"` + strings.Repeat("a", 32) + `"}`,
		`{"reason":"open","time":"2025-01-01T00:00:00Z","chain":"short"}`,
		`{"reason":"open","time":"2025-01-01T00:00:00Z","chain":"` + strings.Repeat("a", 32) + `","key":"ed25519:00"}`,
		`{"reason":"open","time":"2025-01-01T00:00:00Z","chain":"` + strings.Repeat("a", 32) + `","key":"k","sig":"bm90IGEgc2ln"}`,
		`{"reason":"open","time":"2025-01-01T00:00:00Z","chain":"` + strings.Repeat("a", 32) + `","torn":{"file":"f","offset":1,"length":1,"sha256":""}}`,
		`{"reason":"open","time":"2025-01-01T00:00:00Z","chain":"` + strings.Repeat("a", 32) + `"} {}`,
	} {
		if _, _, err := parseCheckpoint([]byte(cp)); err == nil {
			t.Errorf("checkpoint %s parsed", cp)
		}
	}
}

func TestChainErrorMessage(t *testing.T) {
	err := error(&ChainError{File: "/var/log/agent/audit-000002.jsonl", Line: 17, Offset: 4096, Seq: 1234, Reason: "hash mismatch"})
	if got, want := err.Error(), "audit: chain broken at /var/log/agent/audit-000002.jsonl:17 (seq 1234): hash mismatch"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrChainBroken) {
		t.Fatal("a ChainError is not ErrChainBroken")
	}
}

func TestVerifyDirWithoutFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := VerifyDir(dir, VerifyOptions{Unsigned: true}); err == nil || !strings.HasPrefix(err.Error(), "audit: ") {
		t.Fatalf("VerifyDir of an empty directory: %v", err)
	}
	if _, err := Verify(VerifyOptions{Unsigned: true}); err == nil || !strings.Contains(err.Error(), "no files") {
		t.Fatalf("Verify of no files: %v", err)
	}
	if _, err := Verify(VerifyOptions{Unsigned: true}, filepath.Join(dir, "missing.jsonl")); err == nil || errors.Is(err, ErrChainBroken) || !os.IsNotExist(errors.Unwrap(err)) {
		t.Fatalf("Verify of a missing file: %v", err)
	}
}

// flipHashDigit changes the last hex digit of a record's hash.
func flipHashDigit(line []byte) []byte {
	out := slices.Clone(line)
	i := len(out) - 3
	if out[i] == '0' {
		out[i] = '1'
	} else {
		out[i] = '0'
	}
	return out
}

// TestRecoverStatesWhatItAdopted: someone without the key drops the close
// checkpoint, edits an event after the last periodic checkpoint, appends a
// forged one and recomputes the hashes. The restarted sink cannot tell this
// from a crash, but its recover checkpoint states, under its signature,
// that the three records after seq 11 were adopted unsealed.
func TestRecoverStatesWhatItAdopted(t *testing.T) {
	key, pub := testKey("adopted")
	keys := []ed25519.PublicKey{pub}
	dir := t.TempDir()
	f := baseLog(t, dir, key)
	ls := lines(t, f)[:13] // without the close checkpoint
	ls[11] = bytes.Replace(ls[11], []byte(`"decision":"allow"`), []byte(`"decision":"deny"`), 1)
	ls = append(ls, bytes.Replace(slices.Clone(ls[12]), []byte(callID(9)), []byte("call-FORGED"), 1))
	writeLines(t, f, rechain(t, ls, 0, nil))

	s := newTestSink(t, dir, WithSigningKey(key))
	shutdown(t, s)
	rep, err := VerifyDir(dir, VerifyOptions{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Recoveries) != 1 {
		t.Fatalf("recoveries %+v", rep.Recoveries)
	}
	if r := rep.Recoveries[0]; r.Seq != 15 || r.SignedThrough != 11 || r.Adopted != 3 || r.File != f || len(r.Torn) != 0 {
		t.Fatalf("recovery %+v, want seq 15 sealed through 11, 3 adopted", r)
	}
	recoverLine := lines(t, f)[14]
	if !bytes.Contains(recoverLine, []byte(`"reason":"recover"`)) || !bytes.Contains(recoverLine, []byte(`"signed_through":11,"adopted":3`)) {
		t.Fatalf("recover record %s", recoverLine)
	}

	// The statement is signed, and checked against the log even unsigned.
	for _, tc := range []struct {
		from, to string
		opts     VerifyOptions
		reason   string
	}{
		{`"signed_through":11,"adopted":3`, `"signed_through":14`, VerifyOptions{Keys: keys}, "signature does not verify"},
		{`"signed_through":11,"adopted":3`, `"signed_through":14`, VerifyOptions{Unsigned: true}, "the last checkpoint before it is seq 11"},
		{`"signed_through":11,"adopted":3`, `"signed_through":11,"adopted":2`, VerifyOptions{Unsigned: true}, "does not add up"},
	} {
		all := lines(t, f)
		all[14] = bytes.Replace(slices.Clone(all[14]), []byte(tc.from), []byte(tc.to), 1)
		g := filepath.Join(t.TempDir(), "audit-000001.jsonl")
		writeLines(t, g, rechain(t, all, 0, nil))
		_, err := Verify(tc.opts, g)
		wantBroken(t, err, g, 15, 15, tc.reason)
	}
}

// checkpointLog collects the checkpoints a sink hands over as JSON lines,
// as an operator keeping anchors would.
type checkpointLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
	cps []Checkpoint
}

func (l *checkpointLog) add(c Checkpoint) {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	l.mu.Lock()
	l.buf.Write(append(b, '\n'))
	l.cps = append(l.cps, c)
	l.mu.Unlock()
}

func TestVerifyTruncationToAnEarlierClose(t *testing.T) {
	key, pub := testKey(t.Name())
	keys := []ed25519.PublicKey{pub}
	dir := t.TempDir()
	var kept checkpointLog
	for run := range 2 {
		s := newTestSink(t, dir, WithSigningKey(key), WithCheckpointFunc(kept.add))
		mustWrite(t, s, ids(run*3, run*3+3)...)
		shutdown(t, s)
	}
	anchors, err := ParseAnchors(bytes.NewReader(kept.buf.Bytes()))
	if err != nil || len(anchors) != 4 {
		t.Fatalf("%d anchors: %v", len(anchors), err)
	}
	if rep, err := VerifyDir(dir, VerifyOptions{Keys: keys, Anchors: anchors}); err != nil || rep.Anchors != 4 {
		t.Fatalf("the whole log with its anchors: %v %+v", err, rep)
	}

	// Cut the log right after the first close: open, 3 events, close.
	f := filepath.Join(dir, "audit-000001.jsonl")
	writeLines(t, f, lines(t, f)[:5])
	rep, err := VerifyDir(dir, VerifyOptions{Keys: keys})
	if err != nil || !rep.Closed || rep.Events != 3 {
		t.Fatalf("on its own, the cut log verifies as closed (what anchors are for): %v %+v", err, rep)
	}
	_, err = VerifyDir(dir, VerifyOptions{Keys: keys, Anchors: anchors})
	wantBroken(t, err, f, 5, 5, "the log was cut back")
}

func TestVerifyChainPinned(t *testing.T) {
	key, pub := testKey(t.Name())
	keys := []ed25519.PublicKey{pub}
	dir := t.TempDir()
	var kept checkpointLog
	s := newTestSink(t, dir, WithSigningKey(key), WithCheckpointFunc(kept.add))
	mustWrite(t, s, ids(0, 3)...)
	shutdown(t, s)
	rep, err := VerifyDir(dir, VerifyOptions{Keys: keys, Chain: kept.cps[0].Chain})
	if err != nil || rep.Chain != kept.cps[0].Chain {
		t.Fatalf("%v %+v", err, rep)
	}

	// Wipe the directory: the next sink starts a new chain, valid alone.
	for _, f := range s.Files() {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	s = newTestSink(t, dir, WithSigningKey(key))
	mustWrite(t, s, "after-the-wipe")
	shutdown(t, s)
	if _, err := VerifyDir(dir, VerifyOptions{Keys: keys}); err != nil {
		t.Fatalf("the new chain alone: %v", err)
	}
	f := s.Files()[0]
	_, err = VerifyDir(dir, VerifyOptions{Keys: keys, Chain: kept.cps[0].Chain})
	wantBroken(t, err, f, 1, 1, "not chain "+kept.cps[0].Chain)
	_, err = VerifyDir(dir, VerifyOptions{Keys: keys, Anchors: kept.cps})
	wantBroken(t, err, f, 1, 1, "an anchor belongs to chain")

	for _, opts := range []VerifyOptions{
		{Keys: keys, Chain: "not-a-chain"},
		{Keys: keys, Chain: strings.Repeat("a", 32), After: &Checkpoint{Seq: 1, Hash: strings.Repeat("b", 64), Chain: strings.Repeat("c", 32)}},
		{Keys: keys, Chain: strings.Repeat("a", 32), Anchors: []Checkpoint{{Seq: 1, Hash: strings.Repeat("b", 64), Chain: strings.Repeat("c", 32)}}},
	} {
		if _, err := VerifyDir(dir, opts); err == nil || errors.Is(err, ErrChainBroken) {
			t.Errorf("options %+v: %v, want an error about the options", opts, err)
		}
	}
}

func TestCheckpointJSONRoundTrip(t *testing.T) {
	key, pub := testKey(t.Name())
	dir := t.TempDir()
	// A log that ends torn, so that a recover checkpoint states all it can.
	f := baseLog(t, dir, key)
	ls := lines(t, f)
	writeLines(t, f, append(ls[:12], ls[12][:30]))
	var kept checkpointLog
	s := newTestSink(t, dir, WithSigningKey(key), WithCheckpointFunc(kept.add))
	shutdown(t, s)
	if len(kept.cps) != 2 || kept.cps[0].Reason != CheckpointRecover || len(kept.cps[0].Torn) != 1 || kept.cps[0].Adopted != 1 || kept.cps[0].SignedThrough != 11 {
		t.Fatalf("checkpoints %+v", kept.cps)
	}
	parsed, err := ParseAnchors(bytes.NewReader(kept.buf.Bytes()))
	if err != nil || !reflect.DeepEqual(parsed, kept.cps) {
		t.Fatalf("ParseAnchors: %v\n got %+v\nwant %+v", err, parsed, kept.cps)
	}
	for _, c := range kept.cps {
		var back Checkpoint
		b, _ := json.Marshal(c)
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip of %s: %v %+v", b, err, back)
		}
		ev := CheckpointEvent(c)
		if ev.Kind != KindCheckpoint || ev.Reason != c.Reason || !ev.Time.Equal(c.Time) {
			t.Fatalf("CheckpointEvent %+v", ev)
		}
		fromEvent, err := ParseAnchors(bytes.NewReader(ev.Args))
		if err != nil || len(fromEvent) != 1 || !reflect.DeepEqual(fromEvent[0], c) {
			t.Fatalf("the event's Args do not parse back: %v %+v", err, fromEvent)
		}
	}
	rep, err := VerifyDir(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}, Anchors: parsed})
	if err != nil || !reflect.DeepEqual(*rep.LastCheckpoint, kept.cps[1]) || rep.Anchors != 2 {
		t.Fatalf("%v: verified %+v, shipped %+v", err, rep.LastCheckpoint, kept.cps[1])
	}
}

func TestParseAnchorsRefusesOtherLines(t *testing.T) {
	good := `{"seq":3,"hash":"` + strings.Repeat("a", 64) + `","prev":"","reason":"close","time":"2025-01-01T00:00:00Z","chain":"","file":""}`
	if cps, err := ParseAnchors(strings.NewReader("\n" + good + "\n\n" + good)); err != nil || len(cps) != 2 {
		t.Fatalf("good anchors: %v %+v", err, cps)
	}
	for name, in := range map[string]string{
		"not JSON":       "seq 3\n",
		"unknown key":    strings.Replace(good, `"file"`, `"files"`, 1),
		"no hash":        strings.Replace(good, strings.Repeat("a", 64), "", 1),
		"upper-case":     strings.Replace(good, strings.Repeat("a", 64), strings.Repeat("A", 64), 1),
		"no seq":         strings.Replace(good, `"seq":3`, `"seq":0`, 1),
		"two on a line":  good + " " + good,
		"second bad":     good + "\n{",
		"a JSON array":   "[" + good + "]",
		"a torn object":  good[:40],
		"string for seq": strings.Replace(good, `"seq":3`, `"seq":"3"`, 1),
	} {
		if _, err := ParseAnchors(strings.NewReader(in)); err == nil || !strings.HasPrefix(err.Error(), "audit: anchors: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestVerifyRefusesReencodedCheckpoint: a checkpoint re-encoded (same
// meaning, other bytes) with its record's hash recomputed is refused, so
// that a checkpoint, and the head hash an anchor keeps, has one encoding.
func TestVerifyRefusesReencodedCheckpoint(t *testing.T) {
	key, pub := testKey("reencode")
	f := baseLog(t, t.TempDir(), key)
	ls := lines(t, f)
	closeLine := ls[13]
	v := view(t, closeLine)
	sig := v.Checkpoint.Sig
	flipped := []byte(sig)
	flipped[len(sig)-3] ^= 1 // a padding bit of the last digit before "=="
	for _, tc := range []struct{ name, from, to string }{
		{"a space", `"reason":"close"`, `"reason": "close"`},
		{"keys reordered", `"reason":"close","time":"` + v.Checkpoint.Time + `"`, `"time":"` + v.Checkpoint.Time + `","reason":"close"`},
		{"a repeated key", `"reason":"close"`, `"reason":"periodic","REASON":"close","torn":null`},
		{"an escape", `"reason":"close"`, `"reason":"\u0063lose"`},
		{"a newline in the signature", sig, sig[:40] + `\n` + sig[40:]},
		{"padding bits", sig, string(flipped)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := slices.Clone(ls)
			out[13] = bytes.Replace(slices.Clone(closeLine), []byte(tc.from), []byte(tc.to), 1)
			if bytes.Equal(out[13], closeLine) {
				t.Fatal("nothing replaced")
			}
			g := filepath.Join(t.TempDir(), "audit-000001.jsonl")
			writeLines(t, g, rechain(t, out, 0, nil))
			_, err := Verify(VerifyOptions{Keys: []ed25519.PublicKey{pub}}, g)
			wantBroken(t, err, g, 14, 14, "malformed checkpoint")
		})
	}
}
