package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
)

const (
	// defaultMaxSkew is how far a signed timestamp may be from the
	// receiver's clock.
	defaultMaxSkew = 5 * time.Minute
	// maxAnswerBody bounds a webhook answer.
	maxAnswerBody = 64 << 10
)

// Webhook is an Approver that posts each request, signed, to a URL and
// accepts only an answer signed with the same key, for that very request,
// and recent. The wire format is in the package documentation. It is safe
// for concurrent use.
//
// The key is copied and kept out of reach of fmt, slog and reflection: a
// Webhook prints as its URL without credentials or query.
type Webhook struct {
	url    *url.URL
	sign   signer
	client *http.Client
	skew   time.Duration
	now    func() time.Time
}

var _ agentguard.Approver = (*Webhook)(nil)

// webhookConfig is what WebhookOptions set.
type webhookConfig struct {
	client   *http.Client
	skew     time.Duration
	now      func() time.Time
	capacity int
	insecure bool
}

// WebhookOption configures a Webhook or a webhook handler
// (NewWebhookHandler). Each option says which it applies to.
type WebhookOption func(*webhookConfig)

// WithHTTPClient sets the client a Webhook posts with. The default client
// follows no redirects (a 3xx is an error) and has no timeout of its own:
// the request's context bounds it. The handler ignores this option.
func WithHTTPClient(c *http.Client) WebhookOption {
	return func(cfg *webhookConfig) { cfg.client = c }
}

// WithMaxSkew sets how far a signed timestamp may be from this side's
// clock: answers for a Webhook, requests for a handler. The default is 5
// minutes; d <= 0 keeps it.
func WithMaxSkew(d time.Duration) WebhookOption {
	return func(cfg *webhookConfig) {
		if d > 0 {
			cfg.skew = d
		}
	}
}

// WithClock sets the clock used to sign and to check timestamps, and, for
// a handler, request expiry. It is for tests.
func WithClock(now func() time.Time) WebhookOption {
	return func(cfg *webhookConfig) { cfg.now = now }
}

// WithInsecureHTTP lets a Webhook post to a plain http URL on a host other
// than a loopback address. Without it NewWebhook refuses such a URL: over
// plain HTTP anyone on the path reads every request (the arguments of the
// call, the task, the agent) and can answer with any status and error
// text, which end up in the call's error and its audit record. Signatures
// still stop them from granting. The handler ignores this option.
func WithInsecureHTTP() WebhookOption {
	return func(cfg *webhookConfig) { cfg.insecure = true }
}

func newWebhookConfig(opts []WebhookOption) webhookConfig {
	cfg := webhookConfig{skew: defaultMaxSkew, now: time.Now, capacity: defaultReplayCapacity}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// NewWebhook returns an Approver posting to rawURL, signing with key,
// which must be at least MinKeySize bytes of random data shared with the
// receiver only. key is copied.
//
// rawURL must be https, or http on a loopback host (localhost, 127.0.0.1
// or any 127.x.y.z, ::1), unless WithInsecureHTTP is given.
func NewWebhook(rawURL string, key []byte, opts ...WebhookOption) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("approval: webhook URL must be an absolute http or https URL")
	}
	s, err := newSigner(key)
	if err != nil {
		return nil, err
	}
	cfg := newWebhookConfig(opts)
	if u.Scheme == "http" && !cfg.insecure && !loopback(u.Hostname()) {
		return nil, errors.New("approval: webhook URL must be https unless its host is a loopback address (or WithInsecureHTTP is given)")
	}
	if cfg.client == nil {
		cfg.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Webhook{url: u, sign: s, client: cfg.client, skew: cfg.skew, now: cfg.now}, nil
}

// loopback reports whether host, a URL's host without port or brackets,
// is localhost or a loopback IP address.
func loopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// errNotMade is Approve's error on a Webhook not made by NewWebhook.
var errNotMade = errors.New("approval: Webhook not made with NewWebhook")

// Approve posts req and returns the answer, bound to req. It returns an
// error for anything but a 200 answer (a *StatusError), signed with the
// key (ErrBadSignature), timestamped within the skew (ErrStaleAnswer), for
// req's own ID and digest (ErrWrongRequest), well formed and naming its
// approvers if it grants (ErrBadAnswer). When ctx's deadline (the guard
// sets it to req.ExpiresAt) passes first, or the receiver answers 504
// Gateway Timeout (nobody decided in time), the error wraps
// agentguard.ErrApprovalTimeout. An unsigned 504 can only deny, never
// grant; it marks the denial as a timeout rather than an error. A nil or
// zero Webhook, not made by NewWebhook, returns an error.
func (w *Webhook) Approve(ctx context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
	switch {
	case w == nil || w.url == nil || w.sign.newMAC == nil || w.client == nil || w.now == nil:
		return agentguard.Approval{}, errNotMade
	case req == nil || req.ID == "":
		return agentguard.Approval{}, errors.New("approval: request without an ID")
	}
	wr := toWire(req)
	wr.Version = wireVersion
	// The arguments go as their canonical bytes, unescaped, so that their
	// SHA-256 on the wire is args_digest.
	body, err := marshalJSON(wr)
	if err != nil {
		return agentguard.Approval{}, fmt.Errorf("approval: request %s: arguments are not JSON", req.ID)
	}
	ts := timestamp(w.now())
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url.String(), bytes.NewReader(body))
	if err != nil {
		return agentguard.Approval{}, fmt.Errorf("approval: webhook request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set(TimestampHeader, ts)
	hreq.Header.Set(SignatureHeader, header(w.sign.requestMAC(ts, body)))

	resp, err := w.client.Do(hreq)
	if err != nil {
		return agentguard.Approval{}, w.failed(ctx, req, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBody+1))
	if err != nil {
		return agentguard.Approval{}, w.failed(ctx, req, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusGatewayTimeout:
		return agentguard.Approval{}, fmt.Errorf("approval: request %s: %w: %w", req.ID, agentguard.ErrApprovalTimeout, newStatusError(resp.StatusCode, data))
	default:
		return agentguard.Approval{}, newStatusError(resp.StatusCode, data)
	}
	if len(data) > maxAnswerBody {
		return agentguard.Approval{}, fmt.Errorf("%w: over %d bytes", ErrBadAnswer, maxAnswerBody)
	}
	return w.verify(req, resp.Header, data)
}

// verify checks a 200 answer to req: signature first, then time, then
// what it says.
func (w *Webhook) verify(req *agentguard.ApprovalRequest, h http.Header, body []byte) (agentguard.Approval, error) {
	ts := h.Get(TimestampHeader)
	signedAt, ok := parseTimestamp(ts)
	if !ok || !verify(h.Get(SignatureHeader), w.sign.answerMAC(ts, req.ID, body)) {
		return agentguard.Approval{}, fmt.Errorf("approval: answer to request %s: %w", req.ID, ErrBadSignature)
	}
	if !withinSkew(signedAt, w.now(), w.skew) {
		return agentguard.Approval{}, fmt.Errorf("approval: answer to request %s signed at %s: %w", req.ID, signedAt.UTC().Format(time.RFC3339), ErrStaleAnswer)
	}
	var a wireAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return agentguard.Approval{}, fmt.Errorf("approval: answer to request %s: %w", req.ID, ErrBadAnswer)
	}
	if a.RequestID != req.ID || a.Digest != req.Digest {
		return agentguard.Approval{}, fmt.Errorf("approval: answer to request %s: %w", req.ID, ErrWrongRequest)
	}
	if !a.Granted {
		return req.Refuse(a.Reason, a.Approvers...), nil
	}
	if len(a.Approvers) == 0 || slices.Contains(a.Approvers, "") {
		return agentguard.Approval{}, fmt.Errorf("approval: answer to request %s grants without naming its approvers: %w", req.ID, ErrBadAnswer)
	}
	g := req.Grant(a.Approvers...)
	g.Reason = a.Reason
	return g, nil
}

// failed describes a request that got no answer. A passed deadline is a
// timeout. The URL is left out: its query may hold a token.
func (w *Webhook) failed(ctx context.Context, req *agentguard.ApprovalRequest, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("approval: request %s: no webhook answer before its deadline: %w: %w", req.ID, agentguard.ErrApprovalTimeout, cerr)
		}
		return fmt.Errorf("approval: request %s: %w", req.ID, cerr)
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	return fmt.Errorf("approval: request %s: webhook unreachable: %w", req.ID, err)
}

// String returns "approval.Webhook(<URL>)", the URL without user
// information, query or fragment. The key is never printed.
func (w *Webhook) String() string {
	if w == nil || w.url == nil {
		return "approval.Webhook(<nil>)"
	}
	u := *w.url
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return "approval.Webhook(" + u.String() + ")"
}

// GoString returns String, for %#v.
func (w *Webhook) GoString() string { return w.String() }

// Format writes String for every verb and flag.
func (w *Webhook) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, w.String()) }

// LogValue returns String, so slog never walks the struct.
func (w *Webhook) LogValue() slog.Value { return slog.StringValue(w.String()) }
