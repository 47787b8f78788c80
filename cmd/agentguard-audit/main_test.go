package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
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
