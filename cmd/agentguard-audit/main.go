// Command agentguard-audit makes the Ed25519 key that signs an audit log's
// checkpoints, and verifies a log written by audit.FileSink: an auditor
// needs no Go code to prove that the log was not altered.
//
// Usage:
//
//	agentguard-audit keygen -out audit-key.pem
//	agentguard-audit verify -key audit-key.pub.pem [-open] [-prefix audit] DIR | FILE...
//
// keygen writes a new private key (PKCS #8 PEM, mode 0600; refused if the
// file exists) and its public key next to it (<out without .pem>.pub.pem).
// Give the private key to the agent's FileSink (audit.WithSigningKey) and
// the public key to whoever verifies.
//
// verify checks every record's hash and link, the sequence numbers, each
// checkpoint's signature with the public key(s) given, how files follow one
// another, and that the log ends with a close checkpoint (-open accepts a
// log still being written or left by a crash, and reports its torn tail
// and the records no signature covers yet). It prints a summary and exits
// 0 when the log verifies, 1 when it does not (naming the first broken
// record: file, line, sequence number and why), 2 on a usage error.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/agentguard/go-sdk/audit"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// keyFiles collects repeated -key flags.
type keyFiles []string

func (k *keyFiles) String() string     { return strings.Join(*k, ",") }
func (k *keyFiles) Set(v string) error { *k = append(*k, v); return nil }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: agentguard-audit keygen -out FILE | verify -key PUB.pem [-open] [-prefix P] DIR | FILE...")
		return 2
	}
	switch args[0] {
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "verify":
		return verify(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "agentguard-audit: unknown command %q (keygen, verify)\n", args[0])
	return 2
}

func keygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to write the private key to (PEM); the public key goes to <out>.pub.pem")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: agentguard-audit keygen -out FILE")
		return 2
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		fmt.Fprintln(stderr, "agentguard-audit: keygen:", err)
		return 1
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		fmt.Fprintln(stderr, "agentguard-audit: keygen:", err)
		return 1
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		fmt.Fprintln(stderr, "agentguard-audit: keygen:", err)
		return 1
	}
	pubPath := strings.TrimSuffix(*out, ".pem") + ".pub.pem"
	if err := writeNew(*out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		fmt.Fprintln(stderr, "agentguard-audit: keygen:", err)
		return 1
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		fmt.Fprintln(stderr, "agentguard-audit: keygen:", err)
		return 1
	}
	fmt.Fprintf(stdout, "private key %s (keep it with the agent; mode 0600)\npublic key  %s\nkey ID      %s\n", *out, pubPath, audit.KeyID(pub))
	return 0
}

// writeNew writes b to a file that must not exist yet.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func verify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var keys keyFiles
	fs.Var(&keys, "key", "public key (PEM) the checkpoints must be signed with; repeat for several")
	open := fs.Bool("open", false, "accept a log that is still open or was left by a crash")
	unsigned := fs.Bool("unsigned", false, "check the chain without signatures (detects edits, not a rewrite of the whole log)")
	prefix := fs.String("prefix", "", "file name prefix of the log's files in DIR (default audit)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 || (len(keys) == 0 && !*unsigned) {
		fmt.Fprintln(stderr, "usage: agentguard-audit verify -key PUB.pem [-open] [-prefix P] DIR | FILE...\n(without a key a rewritten log goes unnoticed; -unsigned checks the hashes only)")
		return 2
	}
	opts := audit.VerifyOptions{AllowOpen: *open, Prefix: *prefix}
	for _, k := range keys {
		b, err := os.ReadFile(k)
		if err != nil {
			fmt.Fprintln(stderr, "agentguard-audit: verify:", err)
			return 2
		}
		pub, err := audit.ParsePublicKey(b)
		if err != nil {
			fmt.Fprintf(stderr, "agentguard-audit: verify: %s: %v\n", k, err)
			return 2
		}
		opts.Keys = append(opts.Keys, pub)
	}
	var (
		rep *audit.Report
		err error
	)
	if st, serr := os.Stat(fs.Arg(0)); serr == nil && st.IsDir() && fs.NArg() == 1 {
		rep, err = audit.VerifyDir(fs.Arg(0), opts)
	} else {
		rep, err = audit.Verify(opts, fs.Args()...)
	}
	if rep != nil {
		printReport(stdout, rep)
	}
	if err != nil {
		var ce *audit.ChainError
		if errors.As(err, &ce) {
			fmt.Fprintf(stdout, "BROKEN  %s:%d (seq %d, byte %d): %s\n", ce.File, ce.Line, ce.Seq, ce.Offset, ce.Reason)
		} else {
			fmt.Fprintln(stdout, "FAILED ", err)
		}
		return 1
	}
	fmt.Fprintln(stdout, "OK      the log verifies")
	return 0
}

func printReport(w io.Writer, r *audit.Report) {
	fmt.Fprintf(w, "files   %d\nrecords %d (%d events, %d checkpoints)", r.Files, r.Records, r.Events, r.Checkpoints)
	if r.Records > 0 {
		fmt.Fprintf(w, ", seq %d..%d", r.First, r.Last)
	}
	fmt.Fprintln(w)
	if r.Chain != "" {
		fmt.Fprintf(w, "chain   %s\n", r.Chain)
	}
	if r.Head != "" {
		fmt.Fprintf(w, "head    %s\n", r.Head)
	}
	if r.SignaturesChecked {
		fmt.Fprintf(w, "signed  %d checkpoints by %s; sealed through seq %d, %d records after it\n", r.Signed, r.Key, r.SignedThrough, r.Unsigned)
	} else {
		fmt.Fprintln(w, "signed  not checked (no key given)")
	}
	fmt.Fprintf(w, "closed  %t\n", r.Closed)
	for _, t := range r.Torn {
		fmt.Fprintf(w, "torn    %s: %d bytes at byte %d (%s)\n", t.File, t.Length, t.Offset, t.Digest)
	}
}
