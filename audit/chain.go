package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The reasons a checkpoint is written, in its "reason" field.
const (
	// CheckpointOpen is the first record of a new chain, and the first
	// record written after a clean close when the log is reopened.
	CheckpointOpen = "open"
	// CheckpointPeriodic is written every so many records or so much time.
	CheckpointPeriodic = "periodic"
	// CheckpointRotate is the last record of a full file; the chain goes
	// on in the next file.
	CheckpointRotate = "rotate"
	// CheckpointClose is the last record written by Shutdown.
	CheckpointClose = "close"
	// CheckpointRecover is the first record written after the log ended
	// without a close checkpoint (a crash, or a log cut short). It states
	// the last checkpoint that sealed the log then, how many records after
	// it the sink adopted unsigned, and the torn tails the crash left.
	CheckpointRecover = "recover"
)

const (
	// checkpointDomain starts every signed message, so a checkpoint
	// signature cannot be mistaken for a signature over anything else.
	checkpointDomain = "agentguard-audit-checkpoint/v1"
	// hashSuffixLen is the length of `,"hash":"<64 hex>"}` that ends every
	// record; the hash covers the bytes before it.
	hashSuffixLen = len(`,"hash":"`) + 2*sha256.Size + len(`"}`)
	// maxLine bounds a record, so a corrupt file cannot exhaust memory.
	maxLine = 16 << 20
	// maxPayload bounds the JSON of one event.
	maxPayload = maxLine - 256
)

// Checkpoint is a signed statement about the head of the chain: the record
// with sequence number Seq follows the record whose hash is Prev. As every
// record's hash commits to the one before it, a valid signature seals every
// record up to and including the checkpoint.
//
// Its JSON form (json.Marshal) is what an operator keeps as an anchor, one
// object per line (see WithCheckpointFunc, CheckpointEvent and
// ParseAnchors); json.Unmarshal reads it back to the same value.
type Checkpoint struct {
	// Seq is the checkpoint record's sequence number and Hash its hash
	// (hex SHA-256): together they name the head of the chain. An
	// operator who keeps them elsewhere (see WithCheckpointFunc) can later
	// prove the log was not cut back past them (VerifyOptions.Anchors).
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	// Prev is the hash of the record before it.
	Prev string `json:"prev"`
	// Reason is one of CheckpointOpen, CheckpointPeriodic,
	// CheckpointRotate, CheckpointClose and CheckpointRecover.
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
	// Chain is the random ID given to the chain when it was created.
	Chain string `json:"chain"`
	// Key is the signing key's ID (KeyID), empty when unsigned.
	Key string `json:"key,omitempty"`
	// Signature is the base64 Ed25519 signature, empty when unsigned.
	Signature string `json:"sig,omitempty"`
	// SignedThrough and Adopted are set on a recover checkpoint: the
	// sequence number of the last checkpoint that sealed the log when the
	// sink restarted (whose signature verified; for an unsigned chain, the
	// last checkpoint), and how many records after it the sink adopted
	// although no signature covered them (0 when the log ended with that
	// checkpoint). See Recovery.
	SignedThrough uint64 `json:"signed_through,omitempty"`
	Adopted       uint64 `json:"adopted,omitempty"`
	// Torn names, on a recover checkpoint (or on the open checkpoint of a
	// chain whose first files hold no complete record), the torn tails
	// the unclean end left, oldest first.
	Torn []Torn `json:"torn,omitempty"`
	// File is the base name of the file holding the checkpoint.
	File string `json:"file"`
}

// Torn describes the end of a file that holds no complete record: the
// bytes from the first line that has no newline or holds a NUL byte (a
// record the writer was writing when it stopped, or blocks a power loss
// left unwritten) to the end of the file. They are kept as evidence and
// never rewritten.
type Torn struct {
	// File is the file, as given to Verify; in a checkpoint, its base
	// name, so a recovered log verifies only under its files' names.
	File string `json:"file"`
	// Offset is where the torn bytes start and Length how many there are.
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
	// Digest is the hex SHA-256 of the torn bytes.
	Digest string `json:"sha256"`
}

// wireCheckpoint is a checkpoint's JSON in a record. The writer encodes it
// with json.Marshal, and a reader accepts only those exact bytes.
type wireCheckpoint struct {
	Reason        string     `json:"reason"`
	Time          string     `json:"time"`
	Chain         string     `json:"chain"`
	Key           string     `json:"key,omitempty"`
	SignedThrough uint64     `json:"signed_through,omitempty"`
	Adopted       uint64     `json:"adopted,omitempty"`
	Torn          []wireTorn `json:"torn,omitempty"`
	Sig           string     `json:"sig,omitempty"`
}

type wireTorn struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
}

// checkpointMessage is what a checkpoint's signature covers, one item per
// line: a domain string, the chain, the sequence number, the previous hash,
// the reason, the time exactly as written and the key ID; then, on a
// recover checkpoint or one that names torn tails, the sequence number it
// was sealed through, the records adopted, the number of torn tails and
// each one's file, offset, length and sha256. No item holds a newline
// (parseCheckpoint makes sure), so the lines cannot be regrouped.
func checkpointMessage(chain string, seq uint64, prev string, c *wireCheckpoint) []byte {
	b := make([]byte, 0, 256)
	b = append(b, checkpointDomain...)
	for _, s := range []string{chain, strconv.FormatUint(seq, 10), prev, c.Reason, c.Time, c.Key} {
		b = append(b, '\n')
		b = append(b, s...)
	}
	if c.Reason == CheckpointRecover || len(c.Torn) > 0 {
		for _, n := range []uint64{c.SignedThrough, c.Adopted, uint64(len(c.Torn))} {
			b = append(b, '\n')
			b = strconv.AppendUint(b, n, 10)
		}
		for _, t := range c.Torn {
			for _, s := range []string{t.File, strconv.FormatInt(t.Offset, 10), strconv.FormatInt(t.Length, 10), t.SHA256} {
				b = append(b, '\n')
				b = append(b, s...)
			}
		}
	}
	return b
}

// appendRecord appends one record line to dst: the sequence number, the
// previous hash, the payload under "event" or "checkpoint", and the hash
// of all of that. It returns the longer slice and the record's hash.
func appendRecord(dst []byte, seq uint64, prev *[sha256.Size]byte, checkpoint bool, payload []byte) ([]byte, [sha256.Size]byte) {
	start := len(dst)
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"prev":"`...)
	dst = hex.AppendEncode(dst, prev[:])
	if checkpoint {
		dst = append(dst, `","checkpoint":`...)
	} else {
		dst = append(dst, `","event":`...)
	}
	dst = append(dst, payload...)
	h := sha256.Sum256(dst[start:])
	dst = append(dst, `,"hash":"`...)
	dst = hex.AppendEncode(dst, h[:])
	dst = append(dst, "\"}\n"...)
	return dst, h
}

// record is one parsed line.
type record struct {
	seq        uint64
	prev       [sha256.Size]byte
	hash       [sha256.Size]byte
	checkpoint bool
	payload    []byte
}

// parseRecord parses a line (without its newline) strictly: exactly the
// keys seq, prev, event or checkpoint, and hash, in that order, as the
// writer writes them. It checks the hash. The payload aliases line.
func parseRecord(line []byte) (record, error) {
	var r record
	rest, ok := bytes.CutPrefix(line, []byte(`{"seq":`))
	if !ok {
		return r, errors.New(`malformed record: does not start with {"seq":`)
	}
	n := 0
	for n < len(rest) && n <= 20 && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || (n > 1 && rest[0] == '0') {
		return r, errors.New("malformed record: bad sequence number")
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	if err != nil || seq == 0 {
		return r, errors.New("malformed record: bad sequence number")
	}
	r.seq = seq
	rest, ok = bytes.CutPrefix(rest[n:], []byte(`,"prev":"`))
	if !ok || len(rest) < 2*sha256.Size {
		return r, errors.New(`malformed record: no "prev" after "seq"`)
	}
	if !decodeHash(&r.prev, rest[:2*sha256.Size]) {
		return r, errors.New("malformed record: prev is not 64 lowercase hex digits")
	}
	rest = rest[2*sha256.Size:]
	if b, ok := bytes.CutPrefix(rest, []byte(`","event":`)); ok {
		rest = b
	} else if b, ok := bytes.CutPrefix(rest, []byte(`","checkpoint":`)); ok {
		rest, r.checkpoint = b, true
	} else {
		return r, errors.New(`malformed record: no "event" or "checkpoint" after "prev"`)
	}
	if len(rest) < hashSuffixLen+2 {
		return r, errors.New("malformed record: too short")
	}
	suffix := rest[len(rest)-hashSuffixLen:]
	r.payload = rest[:len(rest)-hashSuffixLen]
	hx, ok := bytes.CutPrefix(suffix, []byte(`,"hash":"`))
	if !ok || !bytes.HasSuffix(hx, []byte(`"}`)) || !decodeHash(&r.hash, hx[:2*sha256.Size]) {
		return r, errors.New(`malformed record: does not end with ,"hash":"<64 lowercase hex>"}`)
	}
	if r.payload[0] != '{' || r.payload[len(r.payload)-1] != '}' {
		return r, errors.New("malformed record: payload is not a JSON object")
	}
	if sha256.Sum256(line[:len(line)-hashSuffixLen]) != r.hash {
		return r, errors.New("hash mismatch: the record was changed after it was written")
	}
	return r, nil
}

// decodeHash decodes exactly 64 lowercase hex digits into dst.
func decodeHash(dst *[sha256.Size]byte, src []byte) bool {
	if len(src) != 2*sha256.Size {
		return false
	}
	for _, c := range src {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	_, err := hex.Decode(dst[:], src)
	return err == nil
}

// strictBase64 refuses padding bits that are not zero.
var strictBase64 = base64.StdEncoding.Strict()

// parseCheckpoint decodes and checks the form of a checkpoint payload. The
// payload must be exactly what json.Marshal gives for the decoded value,
// as the writer encodes it, so that a checkpoint (and the hash of its
// record) has one encoding only.
func parseCheckpoint(payload []byte) (wireCheckpoint, time.Time, error) {
	var c wireCheckpoint
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, time.Time{}, fmt.Errorf("malformed checkpoint: %w", err)
	}
	if again, err := json.Marshal(&c); err != nil || !bytes.Equal(again, payload) {
		return c, time.Time{}, errors.New("malformed checkpoint: not encoded as the writer encodes it (unknown, repeated or reordered keys, spaces or escapes)")
	}
	switch c.Reason {
	case CheckpointOpen, CheckpointPeriodic, CheckpointRotate, CheckpointClose, CheckpointRecover:
	default:
		return c, time.Time{}, fmt.Errorf("malformed checkpoint: unknown reason %q", c.Reason)
	}
	t, err := time.Parse(time.RFC3339Nano, c.Time)
	if err != nil {
		return c, time.Time{}, errors.New("malformed checkpoint: time is not RFC 3339")
	}
	if len(c.Chain) != 32 || !isLowerHex(c.Chain) {
		return c, time.Time{}, errors.New("malformed checkpoint: chain is not 32 lowercase hex digits")
	}
	if (c.Key == "") != (c.Sig == "") {
		return c, time.Time{}, errors.New("malformed checkpoint: key and sig must be both set or both empty")
	}
	if strings.ContainsFunc(c.Key, unicode.IsControl) {
		return c, time.Time{}, errors.New("malformed checkpoint: key holds a control character")
	}
	if c.Sig != "" {
		// Strict decoding still skips newlines: compare with the encoding.
		if s, err := strictBase64.DecodeString(c.Sig); err != nil || len(s) != ed25519.SignatureSize ||
			base64.StdEncoding.EncodeToString(s) != c.Sig {
			return c, time.Time{}, errors.New("malformed checkpoint: sig is not a base64 Ed25519 signature as the writer encodes it")
		}
	}
	if c.Reason == CheckpointRecover {
		if c.SignedThrough == 0 {
			return c, time.Time{}, errors.New("malformed checkpoint: a recover checkpoint names no checkpoint it was sealed through")
		}
	} else if c.SignedThrough != 0 || c.Adopted != 0 {
		return c, time.Time{}, errors.New("malformed checkpoint: only a recover checkpoint adopts records")
	}
	if len(c.Torn) > 0 && c.Reason != CheckpointRecover && c.Reason != CheckpointOpen {
		return c, time.Time{}, errors.New("malformed checkpoint: only a recover or open checkpoint names torn tails")
	}
	for _, tt := range c.Torn {
		if tt.File == "" || tt.File != filepath.Base(tt.File) || strings.ContainsFunc(tt.File, unicode.IsControl) ||
			tt.Offset < 0 || tt.Length < 1 || len(tt.SHA256) != 2*sha256.Size || !isLowerHex(tt.SHA256) {
			return c, time.Time{}, errors.New("malformed checkpoint: a torn tail is not a base name, offset, length and SHA-256")
		}
	}
	return c, t, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkpointValue is the exported view of a parsed checkpoint record.
func checkpointValue(r *record, c *wireCheckpoint, t time.Time, file string) Checkpoint {
	cp := Checkpoint{
		Seq: r.seq, Hash: hex.EncodeToString(r.hash[:]), Prev: hex.EncodeToString(r.prev[:]),
		Reason: c.Reason, Time: t, Chain: c.Chain, Key: c.Key, Signature: c.Sig,
		SignedThrough: c.SignedThrough, Adopted: c.Adopted, File: file,
	}
	for _, tt := range c.Torn {
		cp.Torn = append(cp.Torn, Torn{File: tt.File, Offset: tt.Offset, Length: tt.Length, Digest: tt.SHA256})
	}
	return cp
}

// ParseAnchors reads checkpoints kept as anchors: one JSON object per line,
// each exactly as json.Marshal encodes a Checkpoint (the value
// WithCheckpointFunc gives, or the Args of a CheckpointEvent). Blank lines
// are skipped; an unknown key, a line that is not such an object, or a
// checkpoint without its sequence number and hash is an error.
func ParseAnchors(r io.Reader) ([]Checkpoint, error) {
	br := bufio.NewReader(r)
	var out []Checkpoint
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return out, fmt.Errorf("audit: anchors: %w", err)
		}
		if len(line) > maxLine {
			return out, fmt.Errorf("audit: anchors: line %d is longer than %d bytes", n, maxLine)
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			var c Checkpoint
			dec := json.NewDecoder(bytes.NewReader(t))
			dec.DisallowUnknownFields()
			if derr := dec.Decode(&c); derr != nil {
				return out, fmt.Errorf("audit: anchors: line %d: %w", n, derr)
			}
			if dec.More() {
				return out, fmt.Errorf("audit: anchors: line %d: more than one object", n)
			}
			var h [sha256.Size]byte
			if c.Seq == 0 || !decodeHash(&h, []byte(c.Hash)) {
				return out, fmt.Errorf("audit: anchors: line %d: no seq and 64 lowercase hex hash", n)
			}
			out = append(out, c)
		}
		if err == io.EOF {
			return out, nil
		}
	}
}
