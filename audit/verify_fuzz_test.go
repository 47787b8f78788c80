package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/audit"
)

// fuzzLog is a closed, signed log of a few events, written once.
var fuzzLog struct {
	once sync.Once
	data []byte
	pub  ed25519.PublicKey
	err  error
}

func signedLog(tb testing.TB) ([]byte, ed25519.PublicKey) {
	fuzzLog.once.Do(func() {
		seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
		priv := ed25519.NewKeyFromSeed(seed)
		dir, err := os.MkdirTemp("", "agentguard-fuzz-")
		if err != nil {
			fuzzLog.err = err
			return
		}
		defer os.RemoveAll(dir)
		sink, err := audit.NewFileSink(dir, audit.WithSigningKey(priv), audit.WithCheckpointEvery(3, time.Hour))
		if err != nil {
			fuzzLog.err = err
			return
		}
		ctx := context.Background()
		for i, d := range []string{audit.Allow, audit.Deny, audit.Allow, audit.Deny, audit.Allow} {
			if err := sink.Write(ctx, audit.Event{Time: time.Unix(int64(i), 0).UTC(), Kind: audit.KindToolCall,
				Tool: "refund", Decision: d, Policies: []string{"p"}, Outcome: audit.OutcomeOK}); err != nil {
				fuzzLog.err = err
				return
			}
		}
		if err := sink.Shutdown(ctx); err != nil {
			fuzzLog.err = err
			return
		}
		fuzzLog.data, fuzzLog.err = os.ReadFile(sink.Files()[0])
		fuzzLog.pub = priv.Public().(ed25519.PublicKey)
	})
	if fuzzLog.err != nil {
		tb.Fatal(fuzzLog.err)
	}
	return fuzzLog.data, fuzzLog.pub
}

// FuzzVerifyDetectsChanges changes a signed, closed log (overwrites,
// inserts or deletes bytes at a position) and checks that Verify never
// panics and never accepts a log that differs from the one written.
func FuzzVerifyDetectsChanges(f *testing.F) {
	f.Add(uint16(40), uint8(0), []byte("9"))
	f.Add(uint16(200), uint8(1), []byte(`,"x":1`))
	f.Add(uint16(300), uint8(2), []byte("0123"))
	f.Add(uint16(0), uint8(2), []byte("\n"))
	f.Add(uint16(500), uint8(0), []byte(`"decision":"allow"`))
	f.Fuzz(func(t *testing.T, pos uint16, op uint8, b []byte) {
		orig, pub := signedLog(t)
		p := int(pos) % (len(orig) + 1)
		var changed []byte
		switch op % 3 {
		case 0: // overwrite
			changed = append([]byte(nil), orig...)
			copy(changed[p:], b)
		case 1: // insert
			changed = append(append(append([]byte(nil), orig[:p]...), b...), orig[p:]...)
		default: // delete len(b) bytes
			end := min(p+len(b), len(orig))
			changed = append(append([]byte(nil), orig[:p]...), orig[end:]...)
		}
		dir := t.TempDir()
		name := filepath.Join(dir, "audit-000001.jsonl")
		if err := os.WriteFile(name, changed, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := audit.Verify(audit.VerifyOptions{Keys: []ed25519.PublicKey{pub}}, name)
		if bytes.Equal(changed, orig) {
			if err != nil {
				t.Fatalf("the log as written does not verify: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("a changed log verifies (op %d at %d, %q)", op%3, p, b)
		}
	})
}
