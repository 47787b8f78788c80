package audittest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"os"
	"testing"

	"github.com/agentguard/go-sdk/audit"
)

// NewSigningKey returns an Ed25519 key pair for audit.WithSigningKey,
// derived from the test's name: the same test gets the same key on every
// run, different tests get different keys. Never use it outside tests.
func NewSigningKey(t testing.TB) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	seed := sha256.Sum256([]byte("audittest signing key\n" + t.Name()))
	k := ed25519.NewKeyFromSeed(seed[:])
	pub, _ := k.Public().(ed25519.PublicKey)
	return k, pub
}

// VerifyChain verifies the closed chain in dir (audit.VerifyDir with the
// default prefix) and fails the test with the broken record if it does not
// verify. With a nil pub signatures are not checked (VerifyOptions.Unsigned),
// as for a chain written WithoutSigning.
func VerifyChain(t testing.TB, dir string, pub ed25519.PublicKey) *audit.Report {
	t.Helper()
	opts := audit.VerifyOptions{Unsigned: true}
	if pub != nil {
		opts = audit.VerifyOptions{Keys: []ed25519.PublicKey{pub}}
	}
	rep, err := audit.VerifyDir(dir, opts)
	if err != nil {
		t.Fatalf("audittest: chain in %s does not verify: %v", dir, err)
	}
	return rep
}

// ReadEvents returns the events of a chain in order, checkpoints left out.
// Pass the chain's files in order, or a single directory. The chain may be
// open (still written, or crashed); the test fails if it does not verify.
// Signatures are not checked: use VerifyChain for that.
func ReadEvents(t testing.TB, files ...string) []audit.Event {
	t.Helper()
	var events []audit.Event
	opts := audit.VerifyOptions{Unsigned: true, AllowOpen: true, OnEvent: func(_ uint64, e audit.Event) { events = append(events, e) }}
	var err error
	if len(files) == 1 {
		if fi, serr := os.Stat(files[0]); serr == nil && fi.IsDir() {
			_, err = audit.VerifyDir(files[0], opts)
			if err != nil {
				t.Fatalf("audittest: chain in %s does not verify: %v", files[0], err)
			}
			return events
		}
	}
	if _, err = audit.Verify(opts, files...); err != nil {
		t.Fatalf("audittest: chain does not verify: %v", err)
	}
	return events
}
