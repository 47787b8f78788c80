package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/audit"
)

// TestKeygenWriteVerifyTamper makes a key with keygen, writes a log signed
// with it, verifies it, then edits one record and verifies again.
func TestKeygenWriteVerifyTamper(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "audit-key.pem")
	var out, errOut bytes.Buffer
	if code := run([]string{"keygen", "-out", keyPath}, &out, &errOut); code != 0 {
		t.Fatalf("keygen exited %d: %s", code, errOut.String())
	}
	st, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", st.Mode().Perm())
	}
	pubPath := filepath.Join(dir, "audit-key.pub.pem")
	if code := run([]string{"keygen", "-out", keyPath}, &out, &errOut); code == 0 {
		t.Error("keygen overwrote an existing key")
	}

	pemBytes, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := audit.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(dir, "log")
	sink, err := audit.NewFileSink(logDir, audit.WithSigningKey(priv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 5 {
		if err := sink.Write(ctx, audit.Event{Time: time.Unix(int64(i), 0), Kind: audit.KindToolCall, Tool: "refund", Decision: audit.Deny, Outcome: audit.OutcomeDenied}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	if code := run([]string{"verify", "-key", pubPath, logDir}, &out, &errOut); code != 0 {
		t.Fatalf("verify exited %d:\n%s%s", code, out.String(), errOut.String())
	}
	if s := out.String(); !strings.Contains(s, "OK ") || !strings.Contains(s, "5 events") || !strings.Contains(s, "closed  true") {
		t.Errorf("verify output:\n%s", s)
	}
	if strings.Contains(out.String(), strings.TrimSpace(string(pemBytes))) {
		t.Error("verify printed the private key")
	}

	// Without a key, verify refuses to vouch for the log.
	if code := run([]string{"verify", logDir}, &out, &errOut); code != 2 {
		t.Errorf("verify without a key exited %d, want 2", code)
	}

	// Edit one record: deny becomes allow.
	files := sink.Files()
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(b, []byte(`"decision":"deny"`), []byte(`"decision":"allow"`), 1)
	if bytes.Equal(edited, b) {
		t.Fatal("no record to edit")
	}
	if err := os.WriteFile(files[0], edited, 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"verify", "-key", pubPath, logDir}, &out, &errOut); code != 1 {
		t.Fatalf("verify of an edited log exited %d, want 1:\n%s", code, out.String())
	}
	if s := out.String(); !strings.Contains(s, "BROKEN  "+files[0]+":") {
		t.Errorf("verify does not locate the edit:\n%s", s)
	}
}

// signedLog writes runs of events to a chain in dir, one sink per run,
// and returns the public key file and the checkpoints the sinks handed
// over as JSON lines.
func signedLog(t *testing.T, dir string, runs [][]string, opts ...audit.FileOption) (pubPath string, anchors []byte, priv ed25519.PrivateKey) {
	t.Helper()
	keyPath := filepath.Join(t.TempDir(), "k.pem")
	var out, errOut bytes.Buffer
	if code := run([]string{"keygen", "-out", keyPath}, &out, &errOut); code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut.String())
	}
	b, _ := os.ReadFile(keyPath)
	priv, err := audit.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	var kept bytes.Buffer
	var mu sync.Mutex
	keep := audit.WithCheckpointFunc(func(c audit.Checkpoint) {
		line, _ := json.Marshal(c)
		mu.Lock()
		kept.Write(append(line, '\n'))
		mu.Unlock()
	})
	for _, ids := range runs {
		sink, err := audit.NewFileSink(dir, append([]audit.FileOption{audit.WithSigningKey(priv), keep}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if err := sink.Write(context.Background(), audit.Event{Kind: audit.KindToolCall, CallID: id}); err != nil {
				t.Fatal(err)
			}
		}
		if err := sink.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return strings.TrimSuffix(keyPath, ".pem") + ".pub.pem", kept.Bytes(), priv
}

func verifyOut(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"verify"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVerifyExitCodes(t *testing.T) {
	dir := t.TempDir()
	pub, _, _ := signedLog(t, dir, [][]string{{"a", "b"}})
	if code, out, _ := verifyOut(t, "-key", pub, dir); code != exitOK || !strings.Contains(out, "OK ") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"no key", []string{dir}, exitUsage},
		{"key and -unsigned", []string{"-key", pub, "-unsigned", dir}, exitUsage},
		{"bad -chain", []string{"-key", pub, "-chain", "x", dir}, exitUsage},
		{"bad -after", []string{"-key", pub, "-after", "3:xyz", dir}, exitError},
		{"missing log", []string{"-key", pub, filepath.Join(dir, "nope")}, exitError},
		{"missing key file", []string{"-key", filepath.Join(dir, "nope.pem"), dir}, exitError},
		{"missing anchors file", []string{"-key", pub, "-anchors", filepath.Join(dir, "nope"), dir}, exitError},
	} {
		code, out, errOut := verifyOut(t, tc.args...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, code, tc.code, out, errOut)
		}
		if code != exitOK && out != "" {
			t.Errorf("%s: printed a report for a log it could not read:\n%s", tc.name, out)
		}
	}
	badAnchors := filepath.Join(t.TempDir(), "anchors.jsonl")
	if err := os.WriteFile(badAnchors, []byte("{\"seq\":1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := verifyOut(t, "-key", pub, "-anchors", badAnchors, dir); code != exitUsage || !strings.Contains(errOut, "line 1") {
		t.Fatalf("bad anchors: exit %d, %s", code, errOut)
	}
	var u bytes.Buffer
	run(nil, &u, &u)
	if !strings.Contains(u.String(), "-unsigned") || !strings.Contains(u.String(), "-anchors") {
		t.Fatalf("usage does not name every option:\n%s", u.String())
	}
}

func TestVerifyWarnsAboutRecoveredRecords(t *testing.T) {
	dir := t.TempDir()
	pub, _, priv := signedLog(t, dir, [][]string{{"a", "b"}})
	f := filepath.Join(dir, "audit-000001.jsonl")
	b, _ := os.ReadFile(f)
	// A crash after two events: the close checkpoint is missing.
	if err := os.WriteFile(f, b[:bytes.LastIndexByte(b[:len(b)-1], '\n')+1], 0o600); err != nil {
		t.Fatal(err)
	}
	sink, err := audit.NewFileSink(dir, audit.WithSigningKey(priv))
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, out, _ := verifyOut(t, "-key", pub, dir)
	if code != exitRecovered || !strings.Contains(out, "WARNING records 2..3 were not sealed by a signature when the sink restarted after an unclean end") ||
		!strings.Contains(out, "recover seq 4") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	code, out, _ = verifyOut(t, "-key", pub, "-accept-recovered", dir)
	if code != exitOK || !strings.Contains(out, "WARNING records 2..3") || !strings.Contains(out, "OK ") {
		t.Fatalf("-accept-recovered: exit %d:\n%s", code, out)
	}
}

// TestVerifyWarnsAboutEveryRecovery: records cut from the end of a closed
// log (here, its close checkpoint) and the agent restarted: the recovery
// adopts nothing unsigned, but the log's end was lost, so verify warns and
// exits 4 unless told to accept it.
func TestVerifyWarnsAboutEveryRecovery(t *testing.T) {
	dir := t.TempDir()
	pub, _, priv := signedLog(t, dir, [][]string{{"a", "b"}}, audit.WithCheckpointEvery(2, time.Hour))
	f := filepath.Join(dir, "audit-000001.jsonl")
	b, _ := os.ReadFile(f)
	lines := bytes.SplitAfter(b, []byte("\n"))
	// Cut back to the periodic checkpoint after the two events.
	cut := 0
	for _, l := range lines {
		cut += len(l)
		if bytes.Contains(l, []byte(`"reason":"periodic"`)) {
			break
		}
	}
	if cut == len(b) {
		t.Fatal("no periodic checkpoint before the close")
	}
	if err := os.WriteFile(f, b[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	sink, err := audit.NewFileSink(dir, audit.WithSigningKey(priv))
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, out, _ := verifyOut(t, "-key", pub, dir)
	if code != exitRecovered || !strings.Contains(out, "WARNING the log ended without a close checkpoint before seq") ||
		!strings.Contains(out, "UNCLEAN") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if code, out, _ := verifyOut(t, "-key", pub, "-accept-recovered", dir); code != exitOK || !strings.Contains(out, "OK ") {
		t.Fatalf("-accept-recovered: exit %d:\n%s", code, out)
	}
}

func TestVerifyWithAnchorsChainAndAfter(t *testing.T) {
	dir := t.TempDir()
	pub, kept, _ := signedLog(t, dir, [][]string{{"a", "b", "c"}, {"d", "e", "f"}})
	anchors := filepath.Join(t.TempDir(), "anchors.jsonl")
	if err := os.WriteFile(anchors, kept, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := verifyOut(t, "-key", pub, "-anchors", anchors, dir)
	if code != exitOK || !strings.Contains(out, "anchors 4 of 4 found") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	chain := strings.Fields(out[strings.Index(out, "chain   "):])[1]

	// Cut back to the first close: fine alone, caught with the anchors.
	f := filepath.Join(dir, "audit-000001.jsonl")
	b, _ := os.ReadFile(f)
	cut := 0
	for range 5 {
		cut += bytes.IndexByte(b[cut:], '\n') + 1
	}
	if err := os.WriteFile(f, b[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := verifyOut(t, "-key", pub, dir); code != exitOK {
		t.Fatalf("the cut log alone: exit %d\n%s", code, out)
	}
	if code, out, _ := verifyOut(t, "-key", pub, "-anchors", anchors, dir); code != exitBroken || !strings.Contains(out, "cut back") {
		t.Fatalf("the cut log with anchors: exit %d\n%s", code, out)
	}

	// A wiped directory started again: caught with -chain.
	other := t.TempDir()
	pub2, _, _ := signedLog(t, other, [][]string{{"x"}})
	if code, out, _ := verifyOut(t, "-key", pub2, "-chain", chain, other); code != exitBroken || !strings.Contains(out, "not chain "+chain) {
		t.Fatalf("another chain with -chain: exit %d\n%s", code, out)
	}

	// The oldest files deleted: verifies after the last checkpoint kept.
	rot := t.TempDir()
	pub3, kept3, _ := signedLog(t, rot, [][]string{strings.Fields(strings.Repeat("call-with-a-long-name ", 60))}, audit.WithMaxFileSize(2048))
	cps, err := audit.ParseAnchors(bytes.NewReader(kept3))
	if err != nil {
		t.Fatal(err)
	}
	var rotate audit.Checkpoint
	for _, c := range cps {
		if c.Reason == audit.CheckpointRotate && c.File == "audit-000001.jsonl" {
			rotate = c
		}
	}
	if rotate.Seq == 0 {
		t.Fatal("no rotate checkpoint in the first file")
	}
	if err := os.Remove(filepath.Join(rot, "audit-000001.jsonl")); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := verifyOut(t, "-key", pub3, rot); code != exitBroken || !strings.Contains(out, "-after") {
		t.Fatalf("without -after: exit %d\n%s", code, out)
	}
	afterFile := filepath.Join(t.TempDir(), "after.json")
	line, _ := json.Marshal(rotate)
	if err := os.WriteFile(afterFile, line, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, after := range []string{afterFile, fmt.Sprintf("%d:%s", rotate.Seq, rotate.Hash)} {
		if code, out, _ := verifyOut(t, "-key", pub3, "-after", after, rot); code != exitOK {
			t.Fatalf("-after %s: exit %d\n%s", after, code, out)
		}
	}
	if code, out, _ := verifyOut(t, "-key", pub3, "-after", fmt.Sprintf("%d:%s", rotate.Seq-1, rotate.Hash), rot); code != exitBroken {
		t.Fatalf("a wrong -after: exit %d\n%s", code, out)
	}
}

func TestVerifyUnsignedLog(t *testing.T) {
	dir := t.TempDir()
	sink, err := audit.NewFileSink(dir, audit.WithoutSigning())
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(context.Background(), audit.Event{Kind: audit.KindToolCall}); err != nil {
		t.Fatal(err)
	}
	if err := sink.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := verifyOut(t, "-unsigned", dir); code != exitOK || !strings.Contains(out, "not checked") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

func TestKeygenLeavesNoHalfPair(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "k.pem")
	pubPath := filepath.Join(dir, "k.pub.pem")
	var out, errOut bytes.Buffer
	// The public key's file exists: nothing is written.
	if err := os.WriteFile(pubPath, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"keygen", "-out", keyPath}, &out, &errOut); code != exitError {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(keyPath); !os.IsNotExist(err) {
		t.Fatalf("a private key was left without its public key: %v", err)
	}
	// The private key's file exists: the public key written is removed.
	if err := os.Remove(pubPath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"keygen", "-out", keyPath}, &out, &errOut); code != exitError {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(pubPath); !os.IsNotExist(err) {
		t.Fatalf("a public key was left without its private key: %v", err)
	}
	if b, _ := os.ReadFile(keyPath); string(b) != "old" {
		t.Fatal("keygen overwrote a private key")
	}
}
