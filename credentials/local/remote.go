package local

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DefaultRevocationMaxAge is how long a remote verifier uses a fetched
// revocation list before fetching it again, unless WithRevocationMaxAge
// says otherwise.
const DefaultRevocationMaxAge = 5 * time.Second

const (
	// jwksMinInterval is the least time between two JWKS fetches.
	jwksMinInterval = time.Second
	// maxDocLen bounds a fetched JWKS or revocation list.
	maxDocLen = 1 << 20
)

// RemoteOption configures a remote verifier.
type RemoteOption func(*remoteSource)

// WithHTTPClient sets the client that fetches the issuer's keys and
// revocation list; nil keeps the default, which times out after ten seconds.
func WithHTTPClient(c *http.Client) RemoteOption {
	return func(r *remoteSource) {
		if c != nil {
			r.client = c
		}
	}
}

// WithRemoteIssuer sets the "iss" the verifier expects; empty keeps
// DefaultIssuer.
func WithRemoteIssuer(iss string) RemoteOption {
	return func(r *remoteSource) {
		if iss != "" {
			r.iss = iss
		}
	}
}

// WithRevocationMaxAge sets how long a fetched revocation list is used
// before it is fetched again: a revocation takes up to d to reach the
// verifier. Zero (or less) fetches it on every Verify. The default is
// DefaultRevocationMaxAge.
func WithRevocationMaxAge(d time.Duration) RemoteOption {
	return func(r *remoteSource) { r.maxAge = max(d, 0) }
}

// WithRemoteClock sets the verifier's clock, which checks "exp" and "nbf"
// and times the refetches. For tests; nil keeps time.Now.
func WithRemoteClock(now func() time.Time) RemoteOption {
	return func(r *remoteSource) {
		if now != nil {
			r.now = now
		}
	}
}

// NewRemoteVerifier returns a verifier of the tokens of the issuer whose
// Handler is served at baseURL (such as "http://127.0.0.1:8555").
//
// It fetches the JWKS from baseURL+"/.well-known/jwks.json" on first use,
// and again when a token names a key it does not have, at most once a
// second. It fetches the revocation list from baseURL+"/revoked" when its
// copy is older than WithRevocationMaxAge. It fails closed: when a fetch it
// needs fails, Verify returns an error wrapping ErrUnavailable.
func NewRemoteVerifier(baseURL string, opts ...RemoteOption) *Verifier {
	base := strings.TrimRight(baseURL, "/")
	r := &remoteSource{
		jwksURL:    base + JWKSPath,
		revokedURL: base + RevokedPath,
		iss:        DefaultIssuer,
		client:     &http.Client{Timeout: 10 * time.Second},
		maxAge:     DefaultRevocationMaxAge,
		now:        time.Now,
		keyFetch:   make(chan struct{}, 1),
		revFetch:   make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(r)
	}
	return &Verifier{iss: r.iss, now: r.now, src: r}
}

// remoteSource fetches an issuer's keys and revocations over HTTP.
type remoteSource struct {
	jwksURL, revokedURL string
	iss                 string
	client              *http.Client
	maxAge              time.Duration
	now                 func() time.Time

	// One fetch of each kind at a time; waiting honours the context.
	keyFetch, revFetch chan struct{}

	mu        sync.Mutex
	keys      map[string]*ecdsa.PublicKey
	keysTried time.Time // last JWKS fetch not abandoned by its caller
	keysErr   error     // its failure, if it failed
	revs      map[string]struct{}
	revsAt    time.Time // last successful revocation list fetch; zero before
}

func (r *remoteSource) key(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	r.mu.Lock()
	k, ok := r.keys[kid]
	r.mu.Unlock()
	if ok {
		return k, nil
	}
	if err := acquire(ctx, r.keyFetch); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer func() { <-r.keyFetch }()

	now := r.now()
	r.mu.Lock()
	k, ok = r.keys[kid]
	tried, lastErr := r.keysTried, r.keysErr
	r.mu.Unlock()
	if ok {
		return k, nil // fetched while this call waited
	}
	if !tried.IsZero() && now.Sub(tried) < jwksMinInterval {
		if lastErr != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, lastErr)
		}
		return nil, errUnknownKey
	}
	keys, err := r.fetchKeys(ctx)
	if err != nil && ctx.Err() != nil {
		// This caller gave up: that says nothing about the issuer.
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r.mu.Lock()
	r.keysTried, r.keysErr = now, err
	if err == nil {
		r.keys = keys
	}
	k, ok = r.keys[kid]
	r.mu.Unlock()
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case !ok:
		return nil, errUnknownKey
	}
	return k, nil
}

// fetchKeys gets the JWKS and keeps its ES256 signing keys.
func (r *remoteSource) fetchKeys(ctx context.Context) (map[string]*ecdsa.PublicKey, error) {
	var set jose.JSONWebKeySet
	if err := r.get(ctx, r.jwksURL, &set); err != nil {
		return nil, err
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, k := range set.Keys {
		pub, ok := k.Key.(*ecdsa.PublicKey)
		if !ok || k.KeyID == "" || pub.Curve != elliptic.P256() ||
			(k.Algorithm != "" && k.Algorithm != string(jose.ES256)) || (k.Use != "" && k.Use != "sig") {
			continue
		}
		keys[k.KeyID] = pub
	}
	return keys, nil
}

// revoked reports whether lease id is revoked. Each time it fetches the
// revocation list it fetches the JWKS too, and forgets the keys the issuer
// no longer publishes: an issuer that restarted has new keys and an empty
// list, and a token signed before must not pass because its old key was
// cached.
func (r *remoteSource) revoked(ctx context.Context, kid, id string) (bool, error) {
	check := func(revs map[string]struct{}) (bool, error) {
		r.mu.Lock()
		_, known := r.keys[kid]
		r.mu.Unlock()
		if !known {
			return false, errUnknownKey
		}
		_, revoked := revs[id]
		return revoked, nil
	}
	if revs, ok := r.freshRevocations(); ok {
		return check(revs)
	}
	if err := acquire(ctx, r.revFetch); err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer func() { <-r.revFetch }()
	if revs, ok := r.freshRevocations(); ok {
		return check(revs) // fetched while this call waited
	}
	now := r.now()
	var doc revokedDoc
	if err := r.get(ctx, r.revokedURL, &doc); err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r.mu.Lock()
	recent := !r.keysTried.IsZero() && r.keysErr == nil && now.Sub(r.keysTried) < jwksMinInterval
	r.mu.Unlock()
	if !recent { // keys fetched just now, for this very token, are current
		keys, err := r.fetchKeys(ctx)
		if err != nil {
			return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		r.mu.Lock()
		r.keys, r.keysTried, r.keysErr = keys, now, nil
		r.mu.Unlock()
	}
	revs := make(map[string]struct{}, len(doc.Revoked))
	for _, e := range doc.Revoked {
		revs[e.ID] = struct{}{}
	}
	r.mu.Lock()
	r.revs, r.revsAt = revs, now
	r.mu.Unlock()
	return check(revs)
}

// freshRevocations returns the cached revocation list if it is younger
// than the maximum age.
func (r *remoteSource) freshRevocations() (map[string]struct{}, bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revsAt.IsZero() || r.maxAge <= 0 || now.Sub(r.revsAt) >= r.maxAge {
		return nil, false
	}
	return r.revs, true
}

// get fetches rawURL and decodes its JSON body into v.
func (r *remoteSource) get(ctx context.Context, rawURL string, v any) error {
	url := redacted(rawURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("GET %s: invalid URL", url)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err // names the method and URL already
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocLen+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxDocLen {
		return fmt.Errorf("GET %s: response longer than %d bytes", url, maxDocLen)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: malformed response: %w", url, err)
	}
	return nil
}

// redacted returns rawURL with any password masked, for error messages.
func redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable issuer URL)"
	}
	return u.Redacted()
}

// acquire takes the one-slot semaphore sem, or gives up when ctx is done.
func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
