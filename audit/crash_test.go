package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The crash tests run this test binary again as a child that writes
// events until it is killed.
const (
	crashDirEnv  = "AGENTGUARD_AUDIT_CRASH_DIR"
	crashTornEnv = "AGENTGUARD_AUDIT_CRASH_TORN"
	// tornAfter is how many records the child writes before tearing one.
	tornAfter = 300
)

func crashKey() (ed25519.PrivateKey, ed25519.PublicKey) { return testKey("crash") }

func crashOptions() []FileOption {
	key, _ := crashKey()
	return []FileOption{WithSigningKey(key), WithMaxFileSize(32 << 10), WithCheckpointEvery(50, 0)}
}

// TestCrashChild is the child process of TestCrash: it does nothing unless
// started by it. It writes events from 8 goroutines in durable mode and
// prints "ack <call ID>" once each Write returned. With crashTornEnv set,
// a hook writes half of a batch, prints "torn <file> <offset> <length>"
// and hangs, so that the kill lands mid-record.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		fmt.Printf(format+"\n", args...)
		out.Unlock()
	}
	opts := crashOptions()
	if os.Getenv(crashTornEnv) != "" {
		opts = append(opts, withHooks(fileHooks{wrap: tearingFile(say)}))
	}
	s, err := NewFileSink(dir, opts...)
	if err != nil {
		say("error %v", err)
		os.Exit(2)
	}
	var n atomic.Int64
	for range 8 {
		go func() {
			for {
				id := callID(int(n.Add(1)))
				if err := s.Write(context.Background(), toolCall(id)); err != nil {
					say("error %v", err)
					os.Exit(2)
				}
				say("ack %s", id)
			}
		}()
	}
	for {
		time.Sleep(time.Hour) // until killed
	}
}

// tearingFile returns a hook that, once tornAfter records are written,
// writes a batch only up to the middle of its last record and hangs.
func tearingFile(say func(string, ...any)) func(string, int64, file) file {
	var records atomic.Int64
	return func(path string, size int64, f file) file {
		written := size
		return &hookedFile{inner: f, write: func(inner file, p []byte) (int, error) {
			nl := int64(bytes.Count(p, []byte("\n")))
			if records.Load()+nl < tornAfter || nl < 2 {
				n, err := inner.Write(p)
				written += int64(n)
				records.Add(nl)
				return n, err
			}
			last := bytes.LastIndexByte(p[:len(p)-1], '\n') + 1 // start of the last record
			cut := last + (len(p)-last)/2
			if _, err := inner.Write(p[:cut]); err != nil {
				say("error %v", err)
				os.Exit(2)
			}
			_ = inner.Sync()
			say("torn %s %d %d", path, written+int64(last), cut-last)
			for {
				time.Sleep(time.Hour) // until killed
			}
		}}
	}
}

type crashResult struct {
	acks []string
	torn []string // the fields of the "torn" line
}

// runCrashChild starts the child on dir and kills it (SIGKILL) after 300
// acknowledgements, or as soon as it says it tore a record.
func runCrashChild(t *testing.T, dir string, torn bool) crashResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	if torn {
		cmd.Env = append(cmd.Env, crashTornEnv+"=1")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var res crashResult
	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil {
				t.Errorf("kill: %v", err)
			}
		}
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() { // after the kill, read what the child printed before it
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ack "):
			res.acks = append(res.acks, strings.TrimPrefix(line, "ack "))
			if !torn && len(res.acks) == 300 {
				kill()
			}
		case strings.HasPrefix(line, "torn "):
			res.torn = strings.Fields(line)[1:]
			kill()
		case strings.HasPrefix(line, "error "):
			kill()
			t.Errorf("child: %s", line)
		}
	}
	kill()
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Exited() {
		t.Fatalf("the child was not killed: %v\n%s", err, stderr.String())
	}
	if len(res.acks) == 0 {
		t.Fatalf("the child acknowledged nothing\n%s", stderr.String())
	}
	return res
}

// checkCrashedLog verifies the log a killed child left: it verifies as an
// open log, and every acknowledged event is in it.
func checkCrashedLog(t *testing.T, dir string, res crashResult) *Report {
	t.Helper()
	_, pub := crashKey()
	rep, got, err := readChain(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}, AllowOpen: true})
	if err != nil {
		t.Fatalf("the log left by the crash does not verify: %v", err)
	}
	in := make(map[string]bool, len(got))
	for _, id := range got {
		in[id] = true
	}
	for _, id := range res.acks {
		if !in[id] {
			t.Fatalf("acknowledged event %s is not in the log", id)
		}
	}
	if rep.Closed || rep.Unsigned < 0 {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("%d acknowledged, %d events in %d files, torn %+v", len(res.acks), rep.Events, rep.Files, rep.Torn)
	return rep
}

// reopenAfterCrash goes on with the crashed log, closes it and verifies
// the whole log as closed. It returns the first checkpoint written.
func reopenAfterCrash(t *testing.T, dir string) (Checkpoint, *Report) {
	t.Helper()
	_, pub := crashKey()
	var first []Checkpoint
	var mu sync.Mutex
	s, err := NewFileSink(dir, append(crashOptions(), WithCheckpointFunc(func(c Checkpoint) {
		mu.Lock()
		first = append(first, c)
		mu.Unlock()
	}))...)
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	mustWrite(t, s, "after-1", "after-2")
	shutdown(t, s)
	rep, got, err := readChain(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}})
	if err != nil {
		t.Fatalf("the reopened log does not verify: %v", err)
	}
	if !rep.Closed || got[len(got)-1] != "after-2" {
		t.Fatalf("report %+v", rep)
	}
	return first[0], rep
}

func TestCrashLeavesVerifiablePrefix(t *testing.T) {
	dir := t.TempDir()
	res := runCrashChild(t, dir, false)
	rep := checkCrashedLog(t, dir, res)
	files, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	if n := len(rep.Torn); n > 0 {
		// A torn tail, if the kill left one, is at the very end.
		last := files[len(files)-1]
		fi, _ := os.Stat(last)
		if tr := rep.Torn[n-1]; n != 1 || tr.File != last || tr.Offset+tr.Length != fi.Size() {
			t.Fatalf("torn %+v, last file %s of %d bytes", rep.Torn, last, fi.Size())
		}
	}
	cp, _ := reopenAfterCrash(t, dir)
	if cp.Reason != CheckpointRecover {
		t.Fatalf("first checkpoint after the crash %+v, want recover", cp)
	}
}

func TestCrashMidRecordReportsTornTail(t *testing.T) {
	dir := t.TempDir()
	res := runCrashChild(t, dir, true)
	if len(res.torn) != 3 {
		t.Fatal("the child did not tear a record")
	}
	path := res.torn[0]
	off, _ := strconv.ParseInt(res.torn[1], 10, 64)
	length, _ := strconv.ParseInt(res.torn[2], 10, 64)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != off+length || length == 0 {
		t.Fatalf("%s has %d bytes, the child tore %d at %d", path, len(b), length, off)
	}
	sum := sha256.Sum256(b[off:])
	want := Torn{File: path, Offset: off, Length: length, Digest: hex.EncodeToString(sum[:])}

	rep := checkCrashedLog(t, dir, res)
	if len(rep.Torn) != 1 || rep.Torn[0] != want {
		t.Fatalf("torn %+v, want %+v", rep.Torn, want)
	}
	_, pub := crashKey()
	if _, err := VerifyDir(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}}); err == nil || !strings.Contains(err.Error(), "torn bytes") {
		t.Fatalf("a torn log verified as closed: %v", err)
	}

	cp, rep := reopenAfterCrash(t, dir)
	named := want
	named.File = filepath.Base(path)
	if cp.Reason != CheckpointRecover || len(cp.Torn) != 1 || cp.Torn[0] != named {
		t.Fatalf("first checkpoint after the crash %+v, want recover naming %+v", cp, named)
	}
	if len(rep.Torn) != 1 || rep.Torn[0] != want {
		t.Fatalf("torn %+v after recovery, want %+v", rep.Torn, want)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
		t.Fatal("the torn file was changed")
	}
}

// tornAt describes the bytes of path from off to its end as a torn tail.
func tornAt(t *testing.T, path string, off int64) Torn {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b[off:])
	return Torn{File: path, Offset: off, Length: int64(len(b)) - off, Digest: hex.EncodeToString(sum[:])}
}

// reopenAndClose starts a sink on dir, writes one event, shuts it down and
// verifies the whole log as closed.
func reopenAndClose(t *testing.T, dir string, key ed25519.PrivateKey, pub ed25519.PublicKey) (*Report, []Checkpoint) {
	t.Helper()
	var kept checkpointLog
	s := newTestSink(t, dir, WithSigningKey(key), WithCheckpointFunc(kept.add))
	mustWrite(t, s, "after")
	shutdown(t, s)
	rep, got, err := readChain(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}})
	if err != nil {
		t.Fatalf("the log does not verify after the restart: %v", err)
	}
	if got[len(got)-1] != "after" || !rep.Closed {
		t.Fatalf("report %+v, events %v", rep, got)
	}
	return rep, kept.cps
}

func TestCrashDuringTheRecoverWrite(t *testing.T) {
	key, pub := testKey(t.Name())
	dir := t.TempDir()
	s := newTestSink(t, dir, WithSigningKey(key))
	mustWrite(t, s, ids(0, 3)...)
	shutdown(t, s)
	f1 := s.Files()[0]
	ls := lines(t, f1)
	kept := bytes.Join(ls[:len(ls)-1], nil)
	writeLines(t, f1, [][]byte{kept, ls[len(ls)-1][:30]}) // the close checkpoint torn

	// The restart dies half-way through writing its recover checkpoint to
	// the new file.
	f2 := filepath.Join(dir, "audit-000002.jsonl")
	dying := func(path string, _ int64, f file) file {
		return &hookedFile{inner: f, write: func(inner file, p []byte) (int, error) {
			n, _ := inner.Write(p[:len(p)/2])
			return n, errInjected
		}}
	}
	if _, err := NewFileSink(dir, WithSigningKey(key), withHooks(fileHooks{wrap: dying})); !errors.Is(err, errInjected) {
		t.Fatalf("NewFileSink with a dying disk: %v", err)
	}
	torn := []Torn{tornAt(t, f1, int64(len(kept))), tornAt(t, f2, 0)}
	rep, err := VerifyDir(dir, VerifyOptions{Keys: []ed25519.PublicKey{pub}, AllowOpen: true})
	if err != nil || !slices.Equal(rep.Torn, torn) {
		t.Fatalf("the open log: %v, torn %+v, want %+v", err, rep.Torn, torn)
	}

	rep, cps := reopenAndClose(t, dir, key, pub)
	if !slices.Equal(rep.Torn, torn) || len(rep.Recoveries) != 1 || !slices.Equal(rep.Recoveries[0].Torn, torn) {
		t.Fatalf("torn %+v, recoveries %+v, want both torn tails %+v", rep.Torn, rep.Recoveries, torn)
	}
	if r := rep.Recoveries[0]; r.File != filepath.Join(dir, "audit-000003.jsonl") || r.SignedThrough != 1 || r.Adopted != 3 {
		t.Fatalf("recovery %+v", r)
	}
	if cps[0].Torn[0].File != filepath.Base(f1) || cps[0].Torn[1].File != filepath.Base(f2) {
		t.Fatalf("the recover checkpoint names %+v", cps[0].Torn)
	}
}

func TestRecoverFromFilesWithNULs(t *testing.T) {
	key, pub := testKey(t.Name())
	t.Run("a last file of NUL bytes", func(t *testing.T) {
		// A power loss after the directory was fsynced, before the data.
		dir := t.TempDir()
		s := newTestSink(t, dir, WithSigningKey(key))
		mustWrite(t, s, ids(0, 2)...)
		shutdown(t, s)
		f2 := filepath.Join(dir, "audit-000002.jsonl")
		if err := os.WriteFile(f2, make([]byte, 300), 0o600); err != nil {
			t.Fatal(err)
		}
		want := tornAt(t, f2, 0)
		rep, _ := reopenAndClose(t, dir, key, pub)
		if len(rep.Recoveries) != 1 || !slices.Equal(rep.Recoveries[0].Torn, []Torn{want}) || rep.Recoveries[0].Adopted != 0 || rep.Recoveries[0].SignedThrough != 4 {
			t.Fatalf("recoveries %+v, want one naming %+v after the close", rep.Recoveries, want)
		}
	})

	t.Run("a NUL hole before a later line", func(t *testing.T) {
		// Blocks a power loss left unwritten, then one that was written.
		dir := t.TempDir()
		s := newTestSink(t, dir, WithSigningKey(key))
		mustWrite(t, s, ids(0, 4)...)
		shutdown(t, s)
		f := s.Files()[0]
		ls := lines(t, f)
		kept := bytes.Join(ls[:3], nil) // open and two events
		hole := append(make([]byte, 4096), ls[3]...)
		writeLines(t, f, [][]byte{kept, hole, ls[4]})
		want := tornAt(t, f, int64(len(kept)))
		rep, _ := reopenAndClose(t, dir, key, pub)
		if len(rep.Recoveries) != 1 || !slices.Equal(rep.Recoveries[0].Torn, []Torn{want}) || rep.Recoveries[0].Adopted != 2 {
			t.Fatalf("recoveries %+v, want one naming %+v", rep.Recoveries, want)
		}
	})

	t.Run("the first record of a new chain torn", func(t *testing.T) {
		for name, content := range map[string][]byte{"half a record": []byte(`{"seq":1,"prev":"0000`), "NUL bytes": make([]byte, 512)} {
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				f1 := filepath.Join(dir, "audit-000001.jsonl")
				if err := os.WriteFile(f1, content, 0o600); err != nil {
					t.Fatal(err)
				}
				want := tornAt(t, f1, 0)
				rep, cps := reopenAndClose(t, dir, key, pub)
				if !slices.Equal(rep.Torn, []Torn{want}) || len(rep.Recoveries) != 0 || rep.First != 1 {
					t.Fatalf("report %+v", rep)
				}
				if cps[0].Reason != CheckpointOpen || cps[0].Seq != 1 || len(cps[0].Torn) != 1 || cps[0].File != "audit-000002.jsonl" {
					t.Fatalf("first checkpoint %+v, want an open naming the torn file", cps[0])
				}
			})
		}
	})
}
