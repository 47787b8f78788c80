// Command agentguard-audit makes the Ed25519 key that signs an audit log's
// checkpoints, and verifies a log written by audit.FileSink: an auditor
// needs no Go code to prove that the log was not altered.
//
// Usage:
//
//	agentguard-audit keygen -out audit-key.pem
//	agentguard-audit verify -key audit-key.pub.pem | -unsigned
//	        [-open] [-prefix audit] [-anchors FILE] [-after FILE|SEQ:HASH]
//	        [-chain ID] [-accept-recovered] DIR | FILE...
//
// keygen writes a new key pair: the public key to <out without .pem>.pub.pem,
// then the private key to out (PKCS #8 PEM, mode 0600). It refuses to
// overwrite either file, and leaves neither behind when it fails. Give the
// private key to the agent's FileSink (audit.WithSigningKey) and the
// public key to whoever verifies.
//
// verify checks every record's hash and link, the sequence numbers, each
// checkpoint's signature with the public key(s) given (-key, repeat it for
// a chain whose key was changed), how files follow one another, what each
// recover checkpoint states, and that the log ends with a close checkpoint.
// Options:
//
//   - -unsigned checks the hashes and links without signatures, for a log
//     written WithoutSigning: an edit is detected, a rewrite of the whole log
//     with recomputed hashes is not.
//   - -open accepts a log still being written or left by a crash, and reports
//     its torn tail and the records no signature covers yet.
//   - -anchors FILE gives checkpoints kept outside the log, one JSON object per
//     line exactly as json.Marshal encodes an audit.Checkpoint (what
//     audit.WithCheckpointFunc hands over, or the agentguard.args of an
//     agentguard.audit.audit_checkpoint record shipped with
//     audit.CheckpointEvent). Each must be in the log with the same hash.
//   - -after FILE|SEQ:HASH says the log's older files were deleted: its first
//     record follows this checkpoint (the last one of FILE, in the anchors'
//     format, or a sequence number and hash).
//   - -chain ID requires the log to be that chain (the "chain" line of an
//     earlier run).
//
// A log cut back to an earlier checkpoint (every restart of the agent
// leaves a close checkpoint), its newest files deleted, or its directory
// wiped and a new chain started, verifies on its own: only -anchors and
// -chain, kept elsewhere, detect it.
//
// A recover checkpoint marks where the agent restarted after the log ended
// without a close checkpoint: a crash, or records removed from its end
// while the agent was stopped. The records written after the last
// checkpoint before it were not sealed by a signature then, and cannot be
// told from records rewritten meanwhile. verify prints a WARNING for each
// recovery and exits 4, unless -accept-recovered.
//
// verify prints a summary and exits 0 when the log verifies, 1 when it does
// not (naming the first broken record: file, line, sequence number and
// why), 2 on a usage error, 3 when it cannot read the log or another error
// stops it, and 4 when the log verifies but was recovered after an unclean
// end.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/agentguard/go-sdk/audit"
)

// Exit codes.
const (
	exitOK        = 0
	exitBroken    = 1
	exitUsage     = 2
	exitError     = 3
	exitRecovered = 4
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// keyFiles collects repeated -key flags.
type keyFiles []string

func (k *keyFiles) String() string     { return strings.Join(*k, ",") }
func (k *keyFiles) Set(v string) error { *k = append(*k, v); return nil }

const verifyUsage = `usage: agentguard-audit verify -key PUB.pem | -unsigned [-open] [-prefix P]
        [-anchors FILE] [-after FILE|SEQ:HASH] [-chain ID] [-accept-recovered] DIR | FILE...
(without a key a rewritten log goes unnoticed; -unsigned checks the hashes only)`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: agentguard-audit keygen -out FILE\n"+strings.TrimPrefix(verifyUsage, "usage: "))
		return exitUsage
	}
	switch args[0] {
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "verify":
		return verify(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "agentguard-audit: unknown command %q (keygen, verify)\n", args[0])
	return exitUsage
}

func keygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to write the private key to (PEM); the public key goes to <out>.pub.pem")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: agentguard-audit keygen -out FILE")
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "agentguard-audit: keygen:", err)
		return exitError
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fail(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fail(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fail(err)
	}
	pubPath := strings.TrimSuffix(*out, ".pem") + ".pub.pem"
	// The public key first: a failure then leaves no private key that
	// nobody could verify with, and no orphan that blocks the next try.
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return fail(err)
	}
	if err := writeNew(*out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		_ = os.Remove(pubPath)
		return fail(err)
	}
	fmt.Fprintf(stdout, "private key %s (keep it with the agent; mode 0600)\npublic key  %s\nkey ID      %s\n", *out, pubPath, audit.KeyID(pub))
	return exitOK
}

// writeNew writes b to a file that must not exist yet, removing it if the
// write fails.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}

var seqHash = regexp.MustCompile(`^([1-9][0-9]*):([0-9a-f]{64})$`)

func verify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var keys keyFiles
	fs.Var(&keys, "key", "public key (PEM) the checkpoints must be signed with; repeat for several")
	unsigned := fs.Bool("unsigned", false, "check the chain without signatures (detects edits, not a rewrite of the whole log)")
	open := fs.Bool("open", false, "accept a log that is still open or was left by a crash")
	prefix := fs.String("prefix", "", "file name prefix of the log's files in DIR (default audit)")
	anchors := fs.String("anchors", "", "file of checkpoints kept outside the log (JSON lines), each must be in the log")
	after := fs.String("after", "", "the checkpoint the log's first record follows (older files deleted): a file in the anchors' format (its last one), or SEQ:HASH")
	chain := fs.String("chain", "", "the chain ID the log must have")
	acceptRecovered := fs.Bool("accept-recovered", false, "exit 0 even when the log was recovered after an unclean end")
	ioFail := func(err error) int {
		fmt.Fprintln(stderr, "agentguard-audit: verify:", err)
		return exitError
	}
	usage := func(format string, a ...any) int {
		if format != "" {
			fmt.Fprintf(stderr, "agentguard-audit: verify: "+format+"\n", a...)
		}
		fmt.Fprintln(stderr, verifyUsage)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 || (len(keys) == 0) == !*unsigned {
		return usage("")
	}
	opts := audit.VerifyOptions{AllowOpen: *open, Prefix: *prefix, Unsigned: *unsigned, Chain: *chain}
	if c := *chain; c != "" && (len(c) != 32 || strings.Trim(c, "0123456789abcdef") != "") {
		return usage("-chain %q is not a chain ID (32 lowercase hex digits)", c)
	}
	for _, k := range keys {
		b, err := os.ReadFile(k)
		if err != nil {
			return ioFail(err)
		}
		pub, err := audit.ParsePublicKey(b)
		if err != nil {
			return usage("%s: %v", k, err)
		}
		opts.Keys = append(opts.Keys, pub)
	}
	if *anchors != "" {
		b, err := os.ReadFile(*anchors)
		if err != nil {
			return ioFail(err)
		}
		cps, err := audit.ParseAnchors(bytes.NewReader(b))
		if err != nil {
			return usage("-anchors %s: %v", *anchors, err)
		}
		opts.Anchors = cps
	}
	if *after != "" {
		if m := seqHash.FindStringSubmatch(*after); m != nil {
			seq, err := strconv.ParseUint(m[1], 10, 64)
			if err != nil {
				return usage("-after: %v", err)
			}
			opts.After = &audit.Checkpoint{Seq: seq, Hash: m[2]}
		} else {
			b, err := os.ReadFile(*after)
			if err != nil {
				return ioFail(fmt.Errorf("-after is neither SEQ:HASH nor a file: %w", err))
			}
			cps, err := audit.ParseAnchors(bytes.NewReader(b))
			if err != nil {
				return usage("-after %s: %v", *after, err)
			}
			if len(cps) == 0 {
				return usage("-after: %s holds no checkpoint", *after)
			}
			opts.After = &cps[len(cps)-1]
		}
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
	var ce *audit.ChainError
	if err != nil && !errors.As(err, &ce) {
		return ioFail(err)
	}
	var out bytes.Buffer
	printReport(&out, rep, len(opts.Anchors))
	if ce != nil {
		fmt.Fprintf(&out, "BROKEN  %s:%d (seq %d, byte %d): %s\n", ce.File, ce.Line, ce.Seq, ce.Offset, ce.Reason)
		_, _ = stdout.Write(out.Bytes())
		return exitBroken
	}
	code := exitOK
	for _, r := range rep.Recoveries {
		if r.Adopted > 0 {
			fmt.Fprintf(&out, "WARNING records %d..%d were not sealed by a signature when the sink restarted after an unclean end (recover checkpoint seq %d): they cannot be told from records rewritten while it was stopped\n",
				r.SignedThrough+1, r.SignedThrough+r.Adopted, r.Seq)
		} else {
			fmt.Fprintf(&out, "WARNING the log ended without a close checkpoint before seq %d (a crash, or records removed from its end while the agent was stopped): only anchors kept elsewhere can show nothing sealed is missing\n", r.Seq)
		}
		if !*acceptRecovered {
			code = exitRecovered
		}
	}
	if code == exitRecovered {
		fmt.Fprintln(&out, "UNCLEAN the log verifies, but it was recovered after an unclean end: records may be unproven or missing (-accept-recovered to accept)")
	} else {
		fmt.Fprintln(&out, "OK      the log verifies")
	}
	_, _ = stdout.Write(out.Bytes())
	return code
}

func printReport(w io.Writer, r *audit.Report, anchors int) {
	fmt.Fprintf(w, "files   %d\nrecords %d (%d events, %d checkpoints)", r.Files, r.Records, r.Events, r.Checkpoints)
	if r.Records > 0 {
		fmt.Fprintf(w, ", seq %d..%d", r.First, r.Last)
	}
	fmt.Fprintln(w)
	if r.Chain != "" {
		fmt.Fprintf(w, "chain   %s\n", r.Chain)
	}
	if c := r.FirstCheckpoint; c != nil {
		fmt.Fprintf(w, "since   %s (first checkpoint, seq %d, %s)\n", c.Time.Format(time.RFC3339), c.Seq, c.Reason)
	}
	if r.Head != "" {
		fmt.Fprintf(w, "head    %s\n", r.Head)
	}
	if r.SignaturesChecked {
		fmt.Fprintf(w, "signed  %d checkpoints, the last by %s; sealed through seq %d, %d records after it\n", r.Signed, r.Key, r.SignedThrough, r.Unsigned)
	} else {
		fmt.Fprintln(w, "signed  not checked (-unsigned)")
	}
	fmt.Fprintf(w, "closed  %t\n", r.Closed)
	if anchors > 0 {
		fmt.Fprintf(w, "anchors %d of %d found in the log\n", r.Anchors, anchors)
	}
	for _, t := range r.Torn {
		fmt.Fprintf(w, "torn    %s: %d bytes at byte %d (%s)\n", t.File, t.Length, t.Offset, t.Digest)
	}
	for _, rc := range r.Recoveries {
		fmt.Fprintf(w, "recover seq %d at %s in %s: sealed through seq %d, %d records adopted unsigned, %d torn tails\n",
			rc.Seq, rc.Time.Format(time.RFC3339), rc.File, rc.SignedThrough, rc.Adopted, len(rc.Torn))
	}
}
