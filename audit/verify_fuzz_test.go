package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// rechain recomputes, from line from on, every record's hash and the next
// record's prev (and, with renumber, the sequence numbers), as someone
// without the signing key would after editing a record.
func rechain(log []byte, from int, renumber bool) []byte {
	lines := bytes.SplitAfter(log, []byte("\n"))
	var prev string
	var out []byte
	for i, l := range lines {
		if len(l) == 0 {
			continue
		}
		if i < from || len(l) < 76 || l[len(l)-1] != '\n' {
			if len(l) >= 76 {
				prev = string(l[len(l)-1-66 : len(l)-1-2])
			}
			out = append(out, l...)
			continue
		}
		body := string(l[:len(l)-1-75])
		if i > 0 && prev != "" {
			if k := strings.Index(body, `"prev":"`); k >= 0 && len(body) >= k+8+64 {
				body = body[:k+8] + prev + body[k+8+64:]
			}
		}
		if renumber {
			if k := strings.Index(body, ","); strings.HasPrefix(body, `{"seq":`) && k > 0 {
				body = `{"seq":` + strconv.Itoa(i+1) + body[k:]
			}
		}
		sum := sha256.Sum256([]byte(body))
		prev = hex.EncodeToString(sum[:])
		out = append(out, body+`,"hash":"`+prev+`"}`+"\n"...)
	}
	return out
}

// FuzzVerifyDetectsChanges changes a signed, closed log (overwrites,
// inserts or deletes bytes at a position; edits a record's body or drops a
// record and recomputes every hash and sequence number after it, as
// someone without the key would) and checks that Verify never panics and
// never accepts a log that differs from the one written.
func FuzzVerifyDetectsChanges(f *testing.F) {
	f.Add(uint16(40), uint8(0), []byte("9"))
	f.Add(uint16(200), uint8(1), []byte(`,"x":1`))
	f.Add(uint16(300), uint8(2), []byte("0123"))
	f.Add(uint16(0), uint8(2), []byte("\n"))
	f.Add(uint16(500), uint8(0), []byte(`"decision":"allow"`))
	f.Add(uint16(3), uint8(3), []byte("ab"))
	f.Add(uint16(5), uint8(4), []byte("x"))
	f.Fuzz(func(t *testing.T, pos uint16, op uint8, b []byte) {
		orig, pub := signedLog(t)
		p := int(pos) % (len(orig) + 1)
		var changed []byte
		switch op % 5 {
		case 0: // overwrite
			changed = append([]byte(nil), orig...)
			copy(changed[p:], b)
		case 1: // insert
			changed = append(append(append([]byte(nil), orig[:p]...), b...), orig[p:]...)
		case 2: // delete len(b) bytes
			end := min(p+len(b), len(orig))
			changed = append(append([]byte(nil), orig[:p]...), orig[end:]...)
		case 3: // edit a byte of a record's body, then recompute the chain after it
			lines := bytes.SplitAfter(orig, []byte("\n"))
			k := p % (len(lines) - 1)
			l := append([]byte(nil), lines[k]...)
			if len(l) < 77 || len(b) == 0 {
				return
			}
			// Past "{"seq":N,"prev":"<64>"," and before the hash suffix.
			start := bytes.Index(l, []byte(`","`)) + 3
			span := len(l) - 1 - 75 - start
			if start < 3 || span <= 0 {
				return
			}
			l[start+int(b[0])%span] ^= 1 + b[len(b)-1]%0x7e
			lines[k] = l
			changed = rechain(bytes.Join(lines, nil), k, false)
		default: // drop a record, renumber and recompute the chain after it
			lines := bytes.SplitAfter(orig, []byte("\n"))
			k := p % (len(lines) - 1)
			lines = append(lines[:k:k], lines[k+1:]...)
			changed = rechain(bytes.Join(lines, nil), k, true)
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
			t.Fatalf("a changed log verifies (op %d at %d, %q)", op%5, p, b)
		}
	})
}

// TestRechainUnchanged checks the fuzzer's own tool: recomputing the chain
// of an unchanged log gives the same bytes, so a log the fuzzer rewrites
// fails only because of the change it made.
func TestRechainUnchanged(t *testing.T) {
	orig, pub := signedLog(t)
	if got := rechain(orig, 0, true); !bytes.Equal(got, orig) {
		t.Fatalf("rechain changed an unchanged log:\n%s\nwant\n%s", got, orig)
	}
	// An edit that rechain covers up fails only at a checkpoint.
	lines := bytes.SplitAfter(orig, []byte("\n"))
	edited := bytes.Replace(lines[2], []byte(`"decision":"deny"`), []byte(`"decision":"allo"`), 1)
	if bytes.Equal(edited, lines[2]) {
		edited = bytes.Replace(lines[2], []byte(`"decision":"allow"`), []byte(`"decision":"denyy"`), 1)
	}
	lines[2] = edited
	changed := rechain(bytes.Join(lines, nil), 2, false)
	name := filepath.Join(t.TempDir(), "audit-000001.jsonl")
	if err := os.WriteFile(name, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := audit.Verify(audit.VerifyOptions{Keys: []ed25519.PublicKey{pub}}, name)
	var ce *audit.ChainError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "signature") {
		t.Fatalf("an edit with recomputed hashes: err = %v, want a signature failure", err)
	}
}
