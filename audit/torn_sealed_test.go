package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
)

// TestTornTailCannotHideSealedRecords: a NUL byte written into a closed
// log, right after a signed checkpoint, would make every record after it
// (the close checkpoint included) look like a crash's torn tail. Verify
// refuses such a tail, with or without AllowOpen, and so does a sink
// reopening the log: a crash never leaves a checkpoint whose signature
// verifies inside torn bytes.
func TestTornTailCannotHideSealedRecords(t *testing.T) {
	dir := t.TempDir()
	priv, pub := audittest.NewSigningKey(t)
	sink, err := audit.NewFileSink(dir, audit.WithSigningKey(priv), audit.WithCheckpointEvery(3, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 8 {
		if err := sink.Write(ctx, audit.Event{Time: time.Unix(int64(i), 0).UTC(), Kind: audit.KindToolCall, Tool: "refund", Decision: audit.Allow}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	name := sink.Files()[0]
	orig, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(orig, []byte("\n"))
	at := -1
	off := 0
	for i, l := range lines {
		off += len(l)
		if i > 0 && bytes.Contains(l, []byte(`"checkpoint":{"reason":"periodic"`)) {
			at = off
			break
		}
	}
	if at < 0 {
		t.Fatal("no periodic checkpoint")
	}
	changed := append([]byte(nil), orig...)
	changed[at] = 0
	if err := os.WriteFile(name, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	keys := []ed25519.PublicKey{pub}
	for _, open := range []bool{false, true} {
		_, err := audit.VerifyDir(dir, audit.VerifyOptions{Keys: keys, AllowOpen: open})
		var ce *audit.ChainError
		if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "not torn by a crash") {
			t.Fatalf("AllowOpen=%v: Verify = %v, want the hidden sealed records reported", open, err)
		}
		if ce.Offset <= int64(at) {
			t.Errorf("located at byte %d, want past the NUL at %d", ce.Offset, at)
		}
	}
	if s, err := audit.NewFileSink(dir, audit.WithSigningKey(priv)); err == nil {
		s.Shutdown(ctx)
		t.Fatal("the sink reopened a log whose sealed records were made torn")
	}
}

// TestCheckpointFuncPanics: a WithCheckpointFunc function that panics
// neither crashes the process nor stops the log; the checkpoints it
// panicked on are counted.
func TestCheckpointFuncPanics(t *testing.T) {
	dir := t.TempDir()
	priv, pub := audittest.NewSigningKey(t)
	sink, err := audit.NewFileSink(dir, audit.WithSigningKey(priv), audit.WithCheckpointEvery(2, time.Hour),
		audit.WithCheckpointFunc(func(audit.Checkpoint) { panic("anchor store down") }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 6 {
		if err := sink.Write(ctx, audit.Event{Kind: audit.KindToolCall, Tool: "t", CallID: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rep := audittest.VerifyChain(t, dir, pub)
	if got := sink.AnchorsLost(); got != int64(rep.Checkpoints) || got < 3 {
		t.Errorf("AnchorsLost = %d, want every checkpoint (%d)", got, rep.Checkpoints)
	}
}
