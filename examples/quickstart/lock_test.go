package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
)

// TestLockFile: agentguard.lock pins exactly the quickstart's tools as it
// registers them. go test -run TestLockFile -update rewrites it; review
// the diff like code.
func TestLockFile(t *testing.T) {
	lock := agentguard.NewLock()
	for _, tl := range supportTools(&paymentsAPI{}) {
		tl.Toolset = "helpdesk"
		lock.PinTool(tl)
	}
	want := lock.Bytes()
	if *update {
		if err := os.WriteFile("agentguard.lock", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(lockFile, want) {
		t.Fatalf("agentguard.lock is out of date; run go test -run TestLockFile -update and review the diff. Want:\n%s", want)
	}
	parsed, err := agentguard.ParseLock(lockFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := parsed.Bytes(); !bytes.Equal(got, lockFile) {
		t.Fatalf("agentguard.lock does not round-trip:\n%s", got)
	}
}
