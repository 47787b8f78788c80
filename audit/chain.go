package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
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
	// without a close checkpoint (a crash); it names the torn tail the
	// crash left, if any.
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
type Checkpoint struct {
	// Seq is the checkpoint record's sequence number and Hash its hash
	// (hex SHA-256): together they name the head of the chain. An
	// operator who keeps them elsewhere (see WithCheckpointFunc) can later
	// prove the log was not cut back past them (VerifyOptions.Anchors).
	Seq  uint64
	Hash string
	// Prev is the hash of the record before it.
	Prev string
	// Reason is one of CheckpointOpen, CheckpointPeriodic,
	// CheckpointRotate, CheckpointClose and CheckpointRecover.
	Reason string
	Time   time.Time
	// Chain is the random ID given to the chain when it was created.
	Chain string
	// Key is the signing key's ID (KeyID), empty when unsigned.
	Key string
	// Signature is the base64 Ed25519 signature, empty when unsigned.
	Signature string
	// Torn is set on a recover checkpoint when the log ended with part of
	// a record, and names those bytes.
	Torn *Torn
	// File is the base name of the file holding the checkpoint.
	File string
}

// Torn describes bytes after the last newline of a file: part of a record
// the writer was writing when it stopped. They are kept as evidence and
// never rewritten.
type Torn struct {
	// File is the file, as given to Verify; in a checkpoint, its base name.
	File string
	// Offset is where the torn bytes start and Length how many there are.
	Offset int64
	Length int64
	// Digest is the hex SHA-256 of the torn bytes.
	Digest string
}

// wireCheckpoint is a checkpoint's JSON in a record.
type wireCheckpoint struct {
	Reason string    `json:"reason"`
	Time   string    `json:"time"`
	Chain  string    `json:"chain"`
	Key    string    `json:"key,omitempty"`
	Torn   *wireTorn `json:"torn,omitempty"`
	Sig    string    `json:"sig,omitempty"`
}

type wireTorn struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
}

// checkpointMessage is what a checkpoint's signature covers: a domain
// string, then the chain, the sequence number, the previous hash, the
// reason, the time exactly as written, the key ID and the torn tail if any,
// one per line.
func checkpointMessage(chain string, seq uint64, prev, reason, ts, key string, t *wireTorn) []byte {
	b := make([]byte, 0, 256)
	b = append(b, checkpointDomain...)
	for _, s := range []string{chain, strconv.FormatUint(seq, 10), prev, reason, ts, key} {
		b = append(b, '\n')
		b = append(b, s...)
	}
	if t != nil {
		for _, s := range []string{t.File, strconv.FormatInt(t.Offset, 10), strconv.FormatInt(t.Length, 10), t.SHA256} {
			b = append(b, '\n')
			b = append(b, s...)
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

func decodeHash(dst *[sha256.Size]byte, src []byte) bool {
	for _, c := range src {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	_, err := hex.Decode(dst[:], src)
	return err == nil
}

// parseCheckpoint decodes and checks the form of a checkpoint payload.
func parseCheckpoint(payload []byte) (wireCheckpoint, time.Time, error) {
	var c wireCheckpoint
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, time.Time{}, fmt.Errorf("malformed checkpoint: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return c, time.Time{}, errors.New("malformed checkpoint: data after the object")
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
	if c.Sig != "" {
		if s, err := base64.StdEncoding.DecodeString(c.Sig); err != nil || len(s) != ed25519.SignatureSize {
			return c, time.Time{}, errors.New("malformed checkpoint: sig is not a base64 Ed25519 signature")
		}
	}
	if c.Torn != nil && c.Reason != CheckpointRecover {
		return c, time.Time{}, errors.New("malformed checkpoint: only a recover checkpoint names a torn tail")
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
		Reason: c.Reason, Time: t, Chain: c.Chain, Key: c.Key, Signature: c.Sig, File: file,
	}
	if c.Torn != nil {
		cp.Torn = &Torn{File: c.Torn.File, Offset: c.Torn.Offset, Length: c.Torn.Length, Digest: c.Torn.SHA256}
	}
	return cp
}
