package approval

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/identity"
)

// Headers of the webhook wire format (see the package documentation).
const (
	// TimestampHeader carries the signing time, in Unix seconds.
	TimestampHeader = "AgentGuard-Timestamp"
	// SignatureHeader carries "v1=<hex HMAC-SHA256>".
	SignatureHeader = "AgentGuard-Signature"
)

// MinKeySize is the shortest webhook key accepted, in bytes.
const MinKeySize = 32

const (
	// wireVersion is the "version" of a webhook request body.
	wireVersion = 1
	// The contexts that start every signed message. They differ so that a
	// signed request can never pass for a signed answer, nor the reverse.
	requestContext = "agentguard-approval-request"
	answerContext  = "agentguard-approval-answer"
	// signatureScheme prefixes each signature in SignatureHeader.
	signatureScheme = "v1="
	// maxTimestampDigits bounds a timestamp: Unix seconds fit in 19 digits.
	maxTimestampDigits = 19
)

// wireRequest is an approval request as JSON: the webhook request body
// (with Version) and an entry of the queue's listing (without).
type wireRequest struct {
	Version    int      `json:"version,omitempty"`
	ID         string   `json:"id"`
	Action     string   `json:"action"`
	Agent      string   `json:"agent"`
	Chain      []string `json:"chain"`
	Task       string   `json:"task"`
	Purpose    string   `json:"purpose,omitempty"`
	OnBehalfOf string   `json:"on_behalf_of,omitempty"`
	// Sensitivity is the task's, 0 (public) to 3 (restricted).
	Sensitivity int             `json:"sensitivity"`
	Tool        string          `json:"tool"`
	Toolset     string          `json:"toolset"`
	Fingerprint string          `json:"fingerprint"`
	CallID      string          `json:"call_id"`
	Args        json.RawMessage `json:"args"`
	ArgsDigest  string          `json:"args_digest"`
	Digest      string          `json:"digest"`
	Kind        string          `json:"kind"`
	Reason      string          `json:"reason"`
	Policies    []string        `json:"policies"`
	RequestedAt time.Time       `json:"requested_at,omitzero"`
	ExpiresAt   time.Time       `json:"expires_at"`
}

// wireAnswer is the body of a webhook answer.
type wireAnswer struct {
	RequestID string   `json:"request_id"`
	Digest    string   `json:"digest"`
	Granted   bool     `json:"granted"`
	Approvers []string `json:"approvers"`
	Reason    string   `json:"reason"`
}

// toWire gives r as JSON fields: lists are never null, absent arguments
// are null.
func toWire(r *agentguard.ApprovalRequest) wireRequest {
	chain := r.Agent.ChainStrings()
	if chain == nil {
		chain = []string{}
	}
	policies := slices.Clone(r.Policies)
	if policies == nil {
		policies = []string{}
	}
	var args json.RawMessage
	if len(r.Args) > 0 {
		args = slices.Clone(r.Args)
	}
	return wireRequest{
		ID: r.ID, Action: r.Action, Agent: r.Agent.ID.String(), Chain: chain,
		Task: r.TaskID, Purpose: r.Purpose, OnBehalfOf: r.OnBehalfOf, Sensitivity: int(r.Sensitivity),
		Tool: r.Tool, Toolset: r.Toolset, Fingerprint: r.Fingerprint, CallID: r.CallID, Args: args, RequestedAt: r.RequestedAt.UTC(),
		ArgsDigest: r.ArgsDigest, Digest: r.Digest, Kind: r.Kind, Reason: r.Reason,
		Policies: policies, ExpiresAt: r.ExpiresAt.UTC(),
	}
}

// fromWire rebuilds the request, parsing the agent's SPIFFE ID and chain.
func fromWire(w *wireRequest) (*agentguard.ApprovalRequest, error) {
	switch {
	case w.Version != wireVersion:
		return nil, fmt.Errorf("approval: unsupported request version %d", w.Version)
	case w.ID == "" || w.Digest == "":
		return nil, fmt.Errorf("approval: request without id or digest")
	case w.ExpiresAt.IsZero():
		return nil, fmt.Errorf("approval: request without expires_at")
	}
	agent, err := identity.Parse(w.Agent, w.Chain...)
	if err != nil {
		return nil, fmt.Errorf("approval: request agent: %w", err)
	}
	var args json.RawMessage
	if len(w.Args) > 0 && !bytes.Equal(w.Args, []byte("null")) {
		args = slices.Clone(w.Args)
	}
	return &agentguard.ApprovalRequest{
		ID: w.ID, Action: w.Action, Agent: agent, TaskID: w.Task, Purpose: w.Purpose,
		OnBehalfOf: w.OnBehalfOf, Sensitivity: agentguard.Sensitivity(w.Sensitivity), RequestedAt: w.RequestedAt, Tool: w.Tool,
		Toolset: w.Toolset, Fingerprint: w.Fingerprint, CallID: w.CallID, Args: args, ArgsDigest: w.ArgsDigest, Digest: w.Digest,
		Kind: w.Kind, Reason: w.Reason, Policies: slices.Clone(w.Policies),
		ExpiresAt: w.ExpiresAt,
	}, nil
}

// marshalJSON encodes v as JSON without escaping <, > and & (nor U+2028
// and U+2029 inside raw values), so that the canonical arguments of a
// request travel as the very bytes their digest covers. Unlike
// json.Marshal it does not escape for embedding in HTML; what it returns
// is still JSON. There is no trailing newline.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// cloneRequest returns a deep copy of r.
func cloneRequest(r *agentguard.ApprovalRequest) *agentguard.ApprovalRequest {
	c := *r
	c.Agent.Chain = slices.Clone(r.Agent.Chain)
	c.Args = slices.Clone(r.Args)
	c.Policies = slices.Clone(r.Policies)
	return &c
}

// signer signs and verifies webhook messages. The key lives only in the
// closure: fmt and reflection print a func's address, never what it
// captured.
type signer struct {
	newMAC func() hash.Hash
}

// newSigner copies key, which must be at least MinKeySize bytes. The error
// gives the key's length, never its bytes.
func newSigner(key []byte) (signer, error) {
	if len(key) < MinKeySize {
		return signer{}, fmt.Errorf("approval: webhook key has %d bytes; at least %d are needed", len(key), MinKeySize)
	}
	k := bytes.Clone(key)
	return signer{newMAC: func() hash.Hash { return hmac.New(sha256.New, k) }}, nil
}

// mac returns the HMAC of the parts joined by newlines.
func (s signer) mac(parts ...[]byte) []byte {
	m := s.newMAC()
	for i, p := range parts {
		if i > 0 {
			m.Write([]byte{'\n'})
		}
		m.Write(p)
	}
	return m.Sum(nil)
}

func (s signer) requestMAC(ts string, body []byte) []byte {
	return s.mac([]byte(requestContext), []byte(ts), body)
}

func (s signer) answerMAC(ts, requestID string, body []byte) []byte {
	return s.mac([]byte(answerContext), []byte(ts), []byte(requestID), body)
}

// header formats a MAC for SignatureHeader.
func header(mac []byte) string { return signatureScheme + hex.EncodeToString(mac) }

// verify reports whether one of the comma-separated "v1=" signatures in
// value is want. Other schemes are skipped, so that a later version can be
// sent alongside this one.
func verify(value string, want []byte) bool {
	ok := false
	for sig := range strings.SplitSeq(value, ",") {
		hexSig, found := strings.CutPrefix(strings.TrimSpace(sig), signatureScheme)
		if !found {
			continue
		}
		got, err := hex.DecodeString(hexSig)
		if err == nil && hmac.Equal(got, want) {
			ok = true
		}
	}
	return ok
}

// parseTimestamp parses Unix seconds written as plain decimal digits.
func parseTimestamp(ts string) (time.Time, bool) {
	if ts == "" || len(ts) > maxTimestampDigits {
		return time.Time{}, false
	}
	for _, c := range ts {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// timestamp formats t for TimestampHeader.
func timestamp(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// withinSkew reports whether t is at most skew away from now.
func withinSkew(t, now time.Time, skew time.Duration) bool {
	d := now.Sub(t)
	return d <= skew && d >= -skew
}
