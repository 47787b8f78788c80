package audittest_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
)

func TestChainHelpers(t *testing.T) {
	key, pub := audittest.NewSigningKey(t)
	if again, _ := audittest.NewSigningKey(t); !again.Equal(key) {
		t.Fatal("NewSigningKey is not stable within a test")
	}
	if !key.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatal("NewSigningKey returned a mismatched pair")
	}
	dir := t.TempDir()
	sink, err := audit.NewFileSink(dir, audit.WithSigningKey(key))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c2", "c3"} {
		if err := sink.Write(context.Background(), audit.Event{Kind: audit.KindToolCall, CallID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep := audittest.VerifyChain(t, dir, pub)
	if rep.Events != 3 || !rep.Closed || rep.Signed != 2 || !rep.SignaturesChecked {
		t.Fatalf("report %+v", rep)
	}
	// Without a key, the hashes are checked and the signatures are not.
	if rep := audittest.VerifyChain(t, dir, nil); rep.Events != 3 || rep.SignaturesChecked {
		t.Fatalf("report without a key %+v", rep)
	}
	for _, events := range [][]audit.Event{audittest.ReadEvents(t, dir), audittest.ReadEvents(t, sink.Files()...)} {
		if len(events) != 3 || events[0].CallID != "c1" || events[2].CallID != "c3" {
			t.Fatalf("events %+v", events)
		}
	}

	// A broken chain fails the test, naming the record.
	f := sink.Files()[0]
	b, _ := os.ReadFile(f)
	if err := os.WriteFile(f, bytes.Replace(b, []byte(`"c2"`), []byte(`"cX"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, helper := range map[string]func(tb testing.TB){
		"VerifyChain": func(tb testing.TB) { audittest.VerifyChain(tb, dir, pub) },
		"ReadEvents":  func(tb testing.TB) { audittest.ReadEvents(tb, dir) },
	} {
		ft := &fatalT{TB: t}
		done := make(chan struct{})
		go func() { // Fatalf ends the goroutine, as in a real test
			defer close(done)
			helper(ft)
		}()
		<-done
		if !bytes.Contains([]byte(ft.msg), []byte("chain broken at")) {
			t.Fatalf("%s on a broken chain: %q", name, ft.msg)
		}
	}
}

// fatalT records Fatalf instead of failing the test.
type fatalT struct {
	testing.TB
	msg string
}

func (f *fatalT) Helper() {}

func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
