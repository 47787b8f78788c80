package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
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
