package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// EndpointSocketEnv is the environment variable that names the SPIFFE
// Workload API socket, such as "unix:///run/spire/sockets/agent.sock".
const EndpointSocketEnv = "SPIFFE_ENDPOINT_SOCKET"

// DefaultStartTimeout bounds how long NewSPIFFESource waits for the first
// X.509-SVID. The Workload API never answers a workload that no
// registration entry matches: without a bound, start-up would hang.
const DefaultStartTimeout = 15 * time.Second

// Errors of the SPIFFE source.
var (
	// ErrIdentityInUse is returned when an agent asks for an identity another
	// agent of this process is already bound to.
	ErrIdentityInUse = errors.New("identity: SPIFFE ID already bound to another agent in this process")
	// ErrClosed is returned by a closed source and the agents bound to it.
	ErrClosed = errors.New("identity: source closed")
)

// SPIFFEOption configures NewSPIFFESource.
type SPIFFEOption func(*spiffeConfig)

type spiffeConfig struct {
	addr         string
	startTimeout time.Duration
	trustDomains []spiffeid.TrustDomain
	matcher      spiffeid.Matcher
	logger       *slog.Logger
	now          func() time.Time
}

// WithSocket sets the Workload API address, such as
// "unix:///tmp/spire-agent/public/api.sock". Without it, the address is
// read from SPIFFE_ENDPOINT_SOCKET.
func WithSocket(addr string) SPIFFEOption { return func(c *spiffeConfig) { c.addr = addr } }

// WithStartTimeout bounds the wait for the first usable X.509-SVID
// (default DefaultStartTimeout).
func WithStartTimeout(d time.Duration) SPIFFEOption {
	return func(c *spiffeConfig) { c.startTimeout = d }
}

// WithTrustDomains accepts only SVIDs of these trust domains: the agent's
// own X.509-SVIDs of others are ignored, and the source gives out no bundle
// of others, so JWT-SVIDs and handoffs from them do not verify.
func WithTrustDomains(tds ...spiffeid.TrustDomain) SPIFFEOption {
	return func(c *spiffeConfig) { c.trustDomains = append(c.trustDomains, tds...) }
}

// WithIDs accepts only SVIDs whose SPIFFE ID m accepts, such as
// spiffeid.MatchOneOf(...) or [MatchPathPrefix].
func WithIDs(m spiffeid.Matcher) SPIFFEOption { return func(c *spiffeConfig) { c.matcher = m } }

// WithSPIFFELogger sets where the source logs SVIDs it refuses and Workload
// API errors (default slog.Default()).
func WithSPIFFELogger(l *slog.Logger) SPIFFEOption { return func(c *spiffeConfig) { c.logger = l } }

// MatchPathPrefix accepts SPIFFE IDs of trust domain td whose path is
// prefix or lies under it: MatchPathPrefix(td, "/agent") accepts
// spiffe://td/agent and spiffe://td/agent/support but not spiffe://td/agents.
func MatchPathPrefix(td spiffeid.TrustDomain, prefix string) spiffeid.Matcher {
	prefix = strings.TrimSuffix(prefix, "/")
	return func(id spiffeid.ID) error {
		p := id.Path()
		if id.MemberOf(td) && (p == prefix || strings.HasPrefix(p, prefix+"/")) {
			return nil
		}
		return fmt.Errorf("%s is not under spiffe://%s%s", id, td.Name(), prefix)
	}
}

// SPIFFESource reads this workload's X.509-SVIDs from the SPIFFE Workload
// API (a SPIRE agent) and follows their rotation. Every SVID is verified
// against the trust bundle served with it; SVIDs that do not verify, or
// that WithTrustDomains or WithIDs exclude, are never used.
//
// A process may host several agents, each bound to its own SVID with
// [SPIFFESource.Agent]: SPIRE serves one SVID per registration entry that
// matches the workload. A SPIFFE ID is bound to at most one agent of the
// process at a time, whichever source it came from.
//
// The source keeps serving the SVIDs it has while the Workload API is
// unreachable, until they expire. When the Workload API says the workload
// has no identity (its registration entries were deleted), the agents lose
// theirs at once.
type SPIFFESource struct {
	cfg    spiffeConfig
	client *workloadapi.Client
	jwt    *workloadapi.JWTSource
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	svids []*x509svid.SVID // verified and allowed
	// serials are the svids' leaf serial numbers in hex, made once per
	// update rather than on every Identity call.
	serials []string
	bundles *x509bundle.Set
	lastErr error
	ready   chan struct{} // closed on the first usable update
	closed  bool
}

var (
	_ jwtbundle.Source  = (*SPIFFESource)(nil)
	_ x509bundle.Source = (*SPIFFESource)(nil)
)

// NewSPIFFESource connects to the Workload API and waits, at most the start
// timeout, for a usable X.509-SVID and the JWT bundles. It fails with an
// error matching ErrNoIdentity when none arrives: most often no
// registration entry matches this workload. Close releases the connection.
func NewSPIFFESource(ctx context.Context, opts ...SPIFFEOption) (*SPIFFESource, error) {
	cfg := spiffeConfig{startTimeout: DefaultStartTimeout, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.addr == "" {
		cfg.addr = os.Getenv(EndpointSocketEnv)
	}
	if cfg.addr == "" {
		return nil, fmt.Errorf("%w: no Workload API address: set %s or use WithSocket", ErrNoIdentity, EndpointSocketEnv)
	}
	if err := workloadapi.ValidateAddress(cfg.addr); err != nil {
		return nil, fmt.Errorf("identity: Workload API address %q: %w", cfg.addr, err)
	}
	if cfg.startTimeout <= 0 {
		cfg.startTimeout = DefaultStartTimeout
	}
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(cfg.addr), workloadapi.WithBackoffStrategy(retryStrategy{}))
	if err != nil {
		return nil, fmt.Errorf("identity: Workload API at %s: %w", cfg.addr, err)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &SPIFFESource{cfg: cfg, client: client, cancel: cancel, ready: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := client.WatchX509Context(wctx, watcher{s})
		if err != nil && wctx.Err() == nil {
			s.watchError(err)
		}
	}()

	sctx, scancel := context.WithTimeout(ctx, cfg.startTimeout)
	defer scancel()
	select {
	case <-s.ready:
	case <-sctx.Done():
		s.mu.Lock()
		last := s.lastErr
		s.mu.Unlock()
		_ = s.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("identity: Workload API at %s: %w", cfg.addr, ctx.Err())
		}
		why := "no answer"
		if last != nil {
			why = "last error: " + last.Error()
		}
		return nil, fmt.Errorf("%w: no usable X.509-SVID from the Workload API at %s within %s (%s); is there a registration entry for this workload?",
			ErrNoIdentity, cfg.addr, cfg.startTimeout, why)
	}
	jwt, err := workloadapi.NewJWTSource(sctx, workloadapi.WithClient(client))
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("identity: JWT bundles from the Workload API at %s: %w", cfg.addr, err)
	}
	s.mu.Lock()
	s.jwt = jwt
	s.mu.Unlock()
	return s, nil
}

// watcher receives the Workload API's updates for a source; it is not the
// source itself, so that no caller can feed the source SVIDs.
type watcher struct{ s *SPIFFESource }

func (w watcher) OnX509ContextUpdate(c *workloadapi.X509Context) { w.s.update(c) }
func (w watcher) OnX509ContextWatchError(err error)              { w.s.watchError(err) }

// update takes a new X.509 context: the SVIDs that verify and are allowed.
func (s *SPIFFESource) update(c *workloadapi.X509Context) {
	now := s.cfg.now()
	var (
		ok      []*x509svid.SVID
		serials []string
	)
	for _, sv := range c.SVIDs {
		if err := s.allowed(sv.ID); err != nil {
			s.cfg.logger.Warn("identity: ignoring SVID the source does not accept", "spiffe_id", sv.ID.String(), "error", err)
			continue
		}
		if _, err := verifySVID(sv, c.Bundles, now); err != nil {
			s.cfg.logger.Warn("identity: ignoring SVID that does not verify", "spiffe_id", sv.ID.String(), "error", err)
			continue
		}
		ok = append(ok, sv)
		serials = append(serials, leafSerial(sv))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.svids, s.serials, s.bundles = ok, serials, c.Bundles
	if len(ok) == 0 {
		s.lastErr = errors.New("the Workload API served no SVID this source accepts")
		return
	}
	s.lastErr = nil
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
}

// watchError takes an error of the Workload API watch.
func (s *SPIFFESource) watchError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	if status.Code(err) == codes.PermissionDenied {
		// The agent no longer issues this workload an identity: its
		// entries are gone. Stop using the SVIDs at once.
		s.svids, s.serials = nil, nil
	}
	if !s.closed {
		s.cfg.logger.Warn("identity: Workload API watch error", "error", err)
	}
}

// allowedTD refuses a trust domain WithTrustDomains excludes: the source
// gives out no bundle of it, so no SVID of it verifies.
func (s *SPIFFESource) allowedTD(td spiffeid.TrustDomain) error {
	if s == nil {
		return ErrClosed
	}
	if len(s.cfg.trustDomains) > 0 && !slices.Contains(s.cfg.trustDomains, td) {
		return fmt.Errorf("identity: trust domain %q is not allowed", td.Name())
	}
	return nil
}

func (s *SPIFFESource) allowed(id spiffeid.ID) error {
	if len(s.cfg.trustDomains) > 0 && !slices.Contains(s.cfg.trustDomains, id.TrustDomain()) {
		return fmt.Errorf("trust domain %q is not allowed", id.TrustDomain().Name())
	}
	if s.cfg.matcher != nil {
		return s.cfg.matcher(id)
	}
	return nil
}

// IDs returns the SPIFFE IDs of the usable SVIDs the Workload API serves now.
func (s *SPIFFESource) IDs() []spiffeid.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]spiffeid.ID, len(s.svids))
	for i, sv := range s.svids {
		out[i] = sv.ID
	}
	return out
}

// Selector picks one SVID of a workload for an agent. The zero Selector
// selects nothing.
type Selector struct {
	kind selectorKind
	id   spiffeid.ID
	hint string
}

type selectorKind int

const (
	selectNone selectorKind = iota
	selectID
	selectHint
	selectOnly
)

// ByID selects the SVID of SPIFFE ID id. A zero id selects nothing.
func ByID(id spiffeid.ID) Selector { return Selector{kind: selectID, id: id} }

// ByHint selects the SVID whose registration entry carries hint. An empty
// hint selects nothing.
func ByHint(hint string) Selector { return Selector{kind: selectHint, hint: hint} }

// OnlySVID selects the workload's SVID when it has exactly one, and fails
// when it has several: pick one with ByID or ByHint then.
func OnlySVID() Selector { return Selector{kind: selectOnly} }

func (sel Selector) String() string {
	switch sel.kind {
	case selectID:
		return "SPIFFE ID " + sel.id.String()
	case selectHint:
		return fmt.Sprintf("hint %q", sel.hint)
	case selectOnly:
		return "the only SVID"
	}
	return "no selector"
}

func (sel Selector) matches(sv *x509svid.SVID) bool {
	switch sel.kind {
	case selectID:
		return sv.ID == sel.id
	case selectHint:
		return sv.Hint == sel.hint
	case selectOnly:
		return true
	}
	return false
}

// bound holds the SPIFFE IDs bound to an agent anywhere in this process, by
// any SPIFFESource.
var bound = struct {
	sync.Mutex
	agents map[spiffeid.ID]*SPIFFEAgent
}{agents: map[spiffeid.ID]*SPIFFEAgent{}}

// Agent binds an agent to the SVID sel selects now and returns its
// identity. From then on the agent follows that SPIFFE ID's rotations. An
// SVID bound to another live agent of this process is refused with
// ErrIdentityInUse, so two agents never share an identity by accident;
// Release ends a binding.
func (s *SPIFFESource) Agent(sel Selector) (*SPIFFEAgent, error) {
	switch {
	case sel.kind == selectNone, sel.kind == selectID && sel.id.IsZero(), sel.kind == selectHint && sel.hint == "":
		return nil, fmt.Errorf("identity: no SVID selected: use ByID with a SPIFFE ID, ByHint with a hint, or OnlySVID")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	var match []*x509svid.SVID
	for _, sv := range s.svids {
		if sel.matches(sv) {
			match = append(match, sv)
		}
	}
	switch {
	case len(match) == 0:
		return nil, fmt.Errorf("%w: the Workload API serves no usable SVID with %s (serving %d)", ErrNoIdentity, sel, len(s.svids))
	case len(match) > 1:
		return nil, fmt.Errorf("identity: %d SVIDs match %s: select one by SPIFFE ID or hint", len(match), sel)
	}
	id := match[0].ID
	bound.Lock()
	defer bound.Unlock()
	if _, taken := bound.agents[id]; taken {
		return nil, fmt.Errorf("%w: %s", ErrIdentityInUse, id)
	}
	a := &SPIFFEAgent{s: s, id: id}
	bound.agents[id] = a
	return a, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source with the bundles
// the Workload API serves (the own trust domain's and federated ones).
func (s *SPIFFESource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if err := s.allowedTD(td); err != nil {
		return nil, err
	}
	s.mu.Lock()
	b := s.bundles
	s.mu.Unlock()
	if b == nil {
		return nil, fmt.Errorf("identity: no X.509 bundle for trust domain %q", td)
	}
	return b.GetX509BundleForTrustDomain(td)
}

// GetJWTBundleForTrustDomain implements jwtbundle.Source with the JWT
// bundles the Workload API serves, to verify JWT-SVIDs other agents present.
func (s *SPIFFESource) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	if err := s.allowedTD(td); err != nil {
		return nil, err
	}
	s.mu.Lock()
	j := s.jwt
	s.mu.Unlock()
	if j == nil {
		return nil, ErrClosed
	}
	return j.GetJWTBundleForTrustDomain(td)
}

// Close stops watching the Workload API and closes the connection. Agents
// bound to the source have no identity afterwards. Close is idempotent.
func (s *SPIFFESource) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.svids, s.serials = nil, nil
	j := s.jwt
	s.jwt = nil
	s.mu.Unlock()
	bound.Lock()
	for id, a := range bound.agents {
		if a.s == s {
			delete(bound.agents, id)
		}
	}
	bound.Unlock()
	s.cancel()
	var errs []error
	if j != nil {
		errs = append(errs, j.Close())
	}
	s.wg.Wait()
	errs = append(errs, s.client.Close())
	return errors.Join(errs...)
}

// SPIFFEAgent is one agent's identity from the Workload API: a [Source] and
// [JWTIssuer] bound to one SPIFFE ID. Get it from [SPIFFESource.Agent].
type SPIFFEAgent struct {
	s  *SPIFFESource
	id spiffeid.ID
}

var (
	_ Source    = (*SPIFFEAgent)(nil)
	_ JWTIssuer = (*SPIFFEAgent)(nil)
)

// ID returns the SPIFFE ID the agent is bound to.
func (a *SPIFFEAgent) ID() spiffeid.ID { return a.id }

// SVID returns the agent's current X.509-SVID, for mutual TLS. It fails
// with ErrNoIdentity when the Workload API no longer serves it, or it
// expired.
func (a *SPIFFEAgent) SVID() (*x509svid.SVID, error) {
	sv, _, err := a.current()
	return sv, err
}

// current returns the agent's current X.509-SVID, as SVID does, and its
// leaf's serial number in hex.
func (a *SPIFFEAgent) current() (*x509svid.SVID, string, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, "", fmt.Errorf("%w: %w", ErrNoIdentity, ErrClosed)
	}
	if !a.isBound() {
		return nil, "", fmt.Errorf("%w: the agent's binding to %s was released", ErrNoIdentity, a.id)
	}
	for i, sv := range s.svids {
		if sv.ID == a.id {
			leaf := sv.Certificates[0]
			now := s.cfg.now()
			if now.After(leaf.NotAfter) {
				return nil, "", fmt.Errorf("%w: X.509-SVID of %s expired at %s", ErrNoIdentity, a.id, leaf.NotAfter.UTC().Format(time.RFC3339))
			}
			return sv, s.serials[i], nil
		}
	}
	why := "the Workload API no longer serves it"
	if s.lastErr != nil {
		why += " (" + s.lastErr.Error() + ")"
	}
	return nil, "", fmt.Errorf("%w: no X.509-SVID for %s: %s", ErrNoIdentity, a.id, why)
}

// Identity returns the agent's SPIFFE ID while the Workload API serves it a
// verified, unexpired X.509-SVID, with that SVID's serial number and
// expiry.
func (a *SPIFFEAgent) Identity(ctx context.Context) (Identity, error) {
	if err := ctx.Err(); err != nil {
		return Identity{}, err
	}
	sv, serial, err := a.current()
	if err != nil {
		return Identity{}, err
	}
	return Identity{ID: a.id, Serial: serial, NotAfter: sv.Certificates[0].NotAfter}, nil
}

// JWTSVID fetches a JWT-SVID of the agent for audience from the Workload
// API.
func (a *SPIFFEAgent) JWTSVID(ctx context.Context, audience string, extra ...string) (*JWTSVID, error) {
	if audience == "" {
		return nil, errors.New("identity: a JWT-SVID needs an audience")
	}
	if _, err := a.SVID(); err != nil {
		return nil, err
	}
	a.s.mu.Lock()
	j := a.s.jwt
	a.s.mu.Unlock()
	if j == nil {
		return nil, ErrClosed
	}
	sv, err := j.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience, ExtraAudiences: extra, Subject: a.id})
	if err != nil {
		return nil, fmt.Errorf("identity: JWT-SVID for %s: %w", a.id, err)
	}
	if sv.ID != a.id {
		return nil, fmt.Errorf("identity: Workload API returned a JWT-SVID for %s, not %s", sv.ID, a.id)
	}
	return newJWTSVID(sv), nil
}

// Release ends the agent's binding: its SPIFFE ID may be bound again, and
// this SPIFFEAgent has no identity any more.
func (a *SPIFFEAgent) Release() {
	bound.Lock()
	defer bound.Unlock()
	if bound.agents[a.id] == a {
		delete(bound.agents, a.id)
	}
}

func (a *SPIFFEAgent) isBound() bool {
	bound.Lock()
	defer bound.Unlock()
	return bound.agents[a.id] == a
}

// GetJWTBundleForTrustDomain implements jwtbundle.Source with the source's
// JWT bundles, so a guard can verify handoffs to this agent.
func (a *SPIFFEAgent) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	return a.s.GetJWTBundleForTrustDomain(td)
}

// retryStrategy retries the Workload API watch after 100 ms, doubling up to
// 5 s: go-spiffe's default grows to 30 s, too slow to notice that a
// workload got its registration entry back.
type retryStrategy struct{}

func (retryStrategy) NewBackoff() workloadapi.Backoff { return &retryBackoff{} }

type retryBackoff struct{ next time.Duration }

func (b *retryBackoff) Next() time.Duration {
	switch {
	case b.next == 0:
		b.next = 100 * time.Millisecond
	case b.next < 5*time.Second:
		b.next = min(2*b.next, 5*time.Second)
	}
	return b.next
}

func (b *retryBackoff) Reset() { b.next = 0 }
