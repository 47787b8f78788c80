package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/agentguard/go-sdk/audit"
)

// auditLog is the quickstart's audit file: JSON lines, each record
// carrying its sequence number and the hash of the one before, with
// checkpoints signed by an Ed25519 key.
type auditLog struct {
	dir  string
	pub  ed25519.PublicKey
	sink *audit.FileSink

	// anchors are the checkpoints the sink handed out as it wrote them.
	// An operator ships them elsewhere (audit.CheckpointEvent through an
	// OTelSink to a collector, or a file on another host): they prove
	// the log was not cut back past them.
	mu      sync.Mutex
	anchors []audit.Checkpoint
}

// openAuditLog starts the audit file in a new directory inside
// AGENTGUARD_AUDIT_DIR, or inside the system's temporary directory: each
// run starts its own chain, signed with a key made for this run. An
// operator gives theirs (audit.ParsePrivateKey of a PEM file, such as one
// made by "go run github.com/agentguard/go-sdk/cmd/agentguard-audit keygen")
// and keeps one directory per chain.
func openAuditLog() (*auditLog, error) {
	parent := os.Getenv("AGENTGUARD_AUDIT_DIR")
	if parent != "" {
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp(parent, "agentguard-audit-")
	if err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	l := &auditLog{dir: dir, pub: pub}
	l.sink, err = audit.NewFileSink(dir, audit.WithSigningKey(priv), audit.WithCheckpointFunc(func(c audit.Checkpoint) {
		l.mu.Lock()
		l.anchors = append(l.anchors, c)
		l.mu.Unlock()
	}))
	if err != nil {
		return nil, err
	}
	return l, nil
}

// verify shuts the audit file down (a close checkpoint seals it), verifies
// it with the public key, and shows that an edited copy fails.
func (l *auditLog) verify(ctx context.Context, out io.Writer) error {
	if err := l.sink.Shutdown(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	anchors := l.anchors
	l.mu.Unlock()
	keys := audit.VerifyOptions{Keys: []ed25519.PublicKey{l.pub}}
	anchored := keys
	anchored.Anchors = anchors
	rep, err := audit.VerifyDir(l.dir, anchored)
	if err != nil {
		return fmt.Errorf("the audit log does not verify: %w", err)
	}
	files := l.sink.Files()
	fmt.Fprintf(out, "\naudit log %s (chain %s):\n", filepath.Join(l.dir, "audit-*.jsonl"), rep.Chain)
	fmt.Fprintf(out, "  %d records (%d events, %d checkpoints signed by %s), seq %d..%d, closed, %d anchors kept elsewhere found: chain intact\n",
		rep.Records, rep.Events, rep.Checkpoints, rep.Key, rep.First, rep.Last, rep.Anchors)

	// An edited copy: the refund denied for its amount turned into an allow.
	orig, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	edited := bytes.Replace(orig, []byte(`"decision":"deny"`), []byte(`"decision":"allow"`), 1)
	copyDir, err := os.MkdirTemp("", "agentguard-audit-edited-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(copyDir)
	if err := os.WriteFile(filepath.Join(copyDir, filepath.Base(files[0])), edited, 0o600); err != nil {
		return err
	}
	_, err = audit.VerifyDir(copyDir, keys)
	var ce *audit.ChainError
	if !errors.As(err, &ce) {
		return fmt.Errorf("an edited copy of the audit log verified: %v", err)
	}
	fmt.Fprintf(out, "  a copy with one denial edited into an allow fails at line %d (seq %d): %s\n", ce.Line, ce.Seq, ce.Reason)

	// A copy cut back by its last three records (the close checkpoint
	// with them) reads as a log still open; only the anchors show it was
	// cut.
	lines := bytes.SplitAfter(orig, []byte("\n"))
	cut := bytes.Join(lines[:len(lines)-1-3], nil)
	if err := os.WriteFile(filepath.Join(copyDir, filepath.Base(files[0])), cut, 0o600); err != nil {
		return err
	}
	open := keys
	open.AllowOpen = true
	if _, err := audit.VerifyDir(copyDir, open); err != nil {
		return fmt.Errorf("a cut copy of the audit log does not verify as an open log: %w", err)
	}
	open.Anchors = anchors
	if _, err = audit.VerifyDir(copyDir, open); !errors.As(err, &ce) {
		return fmt.Errorf("a cut copy of the audit log verified against the anchors: %v", err)
	}
	fmt.Fprintf(out, "  a copy cut back by its last 3 records passes as a log still open, but not against the anchors: %s\n", ce.Reason)
	return nil
}
