package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentguard/go-sdk/audit"
)

// A FileSink writes a hash-chained, signed log; Verify proves it whole,
// and finds the record someone edited.
func ExampleFileSink() {
	dir, err := os.MkdirTemp("", "audit-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// In production, load the key: audit.ParsePrivateKey(pemBytes).
	seed := sha256.Sum256([]byte("example key"))
	key := ed25519.NewKeyFromSeed(seed[:])
	pub := key.Public().(ed25519.PublicKey)

	ctx := context.Background()
	sink, err := audit.NewFileSink(dir, audit.WithSigningKey(key))
	if err != nil {
		panic(err)
	}
	for i, tool := range []string{"search", "read_file", "refund"} {
		err := sink.Write(ctx, audit.Event{
			Time: time.Now(), Kind: audit.KindToolCall, Agent: "spiffe://example.org/agent/a",
			Tool: tool, CallID: fmt.Sprintf("call-%d", i+1), Decision: audit.Allow, Outcome: audit.OutcomeOK,
		})
		if err != nil { // durable: the record is on disk when Write returns
			panic(err)
		}
	}
	if err := sink.Shutdown(ctx); err != nil {
		panic(err)
	}

	rep, err := audit.VerifyDir(dir, audit.VerifyOptions{Keys: []ed25519.PublicKey{pub}})
	fmt.Printf("verified: %v, %d events, %d checkpoints, all signed: %v, closed: %v\n",
		err == nil, rep.Events, rep.Checkpoints, rep.Signed == rep.Checkpoints, rep.Closed)

	// Someone turns the refund into a harmless search.
	file := sink.Files()[0]
	b, _ := os.ReadFile(file)
	_ = os.WriteFile(file, []byte(strings.Replace(string(b), `"tool":"refund"`, `"tool":"search"`, 1)), 0o600)

	_, err = audit.VerifyDir(dir, audit.VerifyOptions{Keys: []ed25519.PublicKey{pub}})
	var ce *audit.ChainError
	if errors.As(err, &ce) {
		fmt.Printf("broken at %s:%d (seq %d): %s\n", filepath.Base(ce.File), ce.Line, ce.Seq, ce.Reason)
	}
	// Output:
	// verified: true, 3 events, 2 checkpoints, all signed: true, closed: true
	// broken at audit-000001.jsonl:4 (seq 4): hash mismatch: the record was changed after it was written
}

// Checkpoints kept outside the log, as anchors, show a log cut back to an
// earlier close: on its own, such a log verifies.
func ExampleWithCheckpointFunc() {
	dir, err := os.MkdirTemp("", "audit-anchors")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	seed := sha256.Sum256([]byte("example key"))
	key := ed25519.NewKeyFromSeed(seed[:])
	keys := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}

	// In production, a file elsewhere, or audit.CheckpointEvent through
	// an otelaudit.Sink to a collector.
	var anchors bytes.Buffer
	keep := audit.WithCheckpointFunc(func(c audit.Checkpoint) {
		b, _ := json.Marshal(c)
		anchors.Write(append(b, '\n'))
	})
	ctx := context.Background()
	for run := range 2 { // the agent runs twice
		sink, err := audit.NewFileSink(dir, audit.WithSigningKey(key), keep)
		if err != nil {
			panic(err)
		}
		if err := sink.Write(ctx, audit.Event{Kind: audit.KindToolCall, Tool: "refund", CallID: fmt.Sprint("call-", run)}); err != nil {
			panic(err)
		}
		if err := sink.Shutdown(ctx); err != nil { // the checkpoints are handed over
			panic(err)
		}
	}

	// Someone cuts the log back to the end of the first run: open, the
	// event, close.
	file := filepath.Join(dir, "audit-000001.jsonl")
	b, _ := os.ReadFile(file)
	_ = os.WriteFile(file, bytes.Join(bytes.SplitAfter(b, []byte("\n"))[:3], nil), 0o600)

	rep, err := audit.VerifyDir(dir, audit.VerifyOptions{Keys: keys})
	fmt.Printf("alone: verified %v, %d event, closed %v\n", err == nil, rep.Events, rep.Closed)

	kept, err := audit.ParseAnchors(&anchors)
	if err != nil {
		panic(err)
	}
	_, err = audit.VerifyDir(dir, audit.VerifyOptions{Keys: keys, Anchors: kept})
	var ce *audit.ChainError
	if errors.As(err, &ce) {
		fmt.Printf("with %d anchors: broken at %s:%d: %s\n", len(kept), filepath.Base(ce.File), ce.Line, ce.Reason)
	}
	// Output:
	// alone: verified true, 1 event, closed true
	// with 4 anchors: broken at audit-000001.jsonl:3: the log ends at seq 3 but an anchor was kept for seq 6: the log was cut back
}
