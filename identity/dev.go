package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Default lifetimes of what a DevIssuer mints, close to SPIRE's defaults.
const (
	DefaultX509SVIDTTL = time.Hour
	DefaultJWTSVIDTTL  = 5 * time.Minute
)

// DevIssuer is an in-memory SPIFFE certificate authority for one trust
// domain. It mints real X.509-SVIDs and JWT-SVIDs, verifiable with its
// bundles, so that development and tests exercise the same verification
// code as production.
//
// NOT FOR PRODUCTION. Its keys are made at start-up and live only in this
// process's memory; it attests nothing: it signs whatever name it is asked
// to. In production, identities come from SPIRE's Workload API
// ([NewSPIFFESource]), where the SPIRE agent attests the workload before it
// gets an SVID.
type DevIssuer struct {
	td     spiffeid.TrustDomain
	now    func() time.Time
	x509   time.Duration
	jwtTTL time.Duration

	mu     sync.Mutex
	caKey  crypto.Signer
	caCert *x509.Certificate
	jwtKey crypto.Signer
	kid    string
	// retired authorities stay in the bundles after Rotate, so SVIDs signed
	// before a rotation verify until they expire.
	oldCAs  []*x509.Certificate
	oldJWTs map[string]crypto.PublicKey
}

// DevOption configures a DevIssuer.
type DevOption func(*DevIssuer)

// WithDevClock sets the issuer's clock, to mint SVIDs valid at another
// time (tests of expiry).
func WithDevClock(now func() time.Time) DevOption { return func(d *DevIssuer) { d.now = now } }

// WithDevTTL sets the lifetimes of the X.509-SVIDs and JWT-SVIDs the issuer
// mints; zero keeps the default.
func WithDevTTL(x509SVID, jwtSVID time.Duration) DevOption {
	return func(d *DevIssuer) {
		if x509SVID > 0 {
			d.x509 = x509SVID
		}
		if jwtSVID > 0 {
			d.jwtTTL = jwtSVID
		}
	}
}

// NewDevIssuer returns a development issuer for trustDomain, such as
// "example.org". See [DevIssuer]: not for production.
func NewDevIssuer(trustDomain string, opts ...DevOption) (*DevIssuer, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("identity: dev issuer: trust domain %q: %w", trustDomain, err)
	}
	d := &DevIssuer{td: td, now: time.Now, x509: DefaultX509SVIDTTL, jwtTTL: DefaultJWTSVIDTTL, oldJWTs: map[string]crypto.PublicKey{}}
	for _, o := range opts {
		o(d)
	}
	if err := d.newAuthorities(); err != nil {
		return nil, err
	}
	return d, nil
}

// newAuthorities makes a new CA and JWT signing key. d.mu is held or d is
// not yet shared.
func (d *DevIssuer) newAuthorities() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("identity: dev issuer: %w", err)
	}
	now := d.now()
	serial, err := serialNumber()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"AgentGuard development issuer (not for production)"}, CommonName: d.td.Name()},
		URIs:                  []*url.URL{d.td.ID().URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		return fmt.Errorf("identity: dev issuer: CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("identity: dev issuer: CA: %w", err)
	}
	jwtKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("identity: dev issuer: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(jwtKey.Public())
	if err != nil {
		return fmt.Errorf("identity: dev issuer: %w", err)
	}
	sum := sha256.Sum256(pub)
	if d.caCert != nil {
		d.oldCAs = append(d.oldCAs, d.caCert)
		d.oldJWTs[d.kid] = d.jwtKey.Public()
	}
	d.caKey, d.caCert, d.jwtKey, d.kid = caKey, cert, jwtKey, hex.EncodeToString(sum[:8])
	return nil
}

// Rotate replaces the issuer's CA and JWT signing key. SVIDs minted before
// still verify against the bundles (which keep the old authorities) until
// they expire, as in SPIRE.
func (d *DevIssuer) Rotate() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.newAuthorities()
}

// TrustDomain returns the issuer's trust domain.
func (d *DevIssuer) TrustDomain() spiffeid.TrustDomain { return d.td }

// ID returns the SPIFFE ID of path in the issuer's trust domain.
func (d *DevIssuer) ID(path string) (spiffeid.ID, error) {
	return spiffeid.FromPath(d.td, path)
}

// X509Bundle returns the trust bundle that verifies the X.509-SVIDs the
// issuer minted.
func (d *DevIssuer) X509Bundle() *x509bundle.Bundle {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := x509bundle.New(d.td)
	for _, c := range d.oldCAs {
		b.AddX509Authority(c)
	}
	b.AddX509Authority(d.caCert)
	return b
}

// JWTBundle returns the trust bundle that verifies the JWT-SVIDs the issuer
// minted.
func (d *DevIssuer) JWTBundle() *jwtbundle.Bundle {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := jwtbundle.New(d.td)
	for kid, k := range d.oldJWTs {
		_ = b.AddJWTAuthority(kid, k)
	}
	_ = b.AddJWTAuthority(d.kid, d.jwtKey.Public())
	return b
}

// GetX509BundleForTrustDomain implements x509bundle.Source: the issuer's
// bundle for its own trust domain, an error for any other.
func (d *DevIssuer) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != d.td {
		return nil, fmt.Errorf("identity: no X.509 bundle for trust domain %q", td)
	}
	return d.X509Bundle(), nil
}

// GetJWTBundleForTrustDomain implements jwtbundle.Source: the issuer's
// bundle for its own trust domain, an error for any other.
func (d *DevIssuer) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	if td != d.td {
		return nil, fmt.Errorf("identity: no JWT bundle for trust domain %q", td)
	}
	return d.JWTBundle(), nil
}

// MintX509SVID returns a new X.509-SVID for id, valid from now for the
// issuer's X.509-SVID lifetime.
func (d *DevIssuer) MintX509SVID(id spiffeid.ID) (*x509svid.SVID, error) {
	if !id.MemberOf(d.td) {
		return nil, fmt.Errorf("identity: dev issuer for %q cannot mint %s", d.td, id)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: dev issuer: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	notAfter := now.Add(d.x509)
	if notAfter.After(d.caCert.NotAfter) {
		notAfter = d.caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"AgentGuard development issuer (not for production)"}},
		URIs:                  []*url.URL{id.URL()},
		NotBefore:             now.Add(-10 * time.Second),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, d.caCert, key.Public(), d.caKey)
	if err != nil {
		return nil, fmt.Errorf("identity: dev issuer: SVID: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("identity: dev issuer: SVID: %w", err)
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}, nil
}

// MintJWTSVID returns a new JWT-SVID for id, addressed to audience, valid
// from now for the issuer's JWT-SVID lifetime.
func (d *DevIssuer) MintJWTSVID(id spiffeid.ID, audience ...string) (*JWTSVID, error) {
	tok, exp, err := d.mintJWT(id, audience)
	if err != nil {
		return nil, err
	}
	return &JWTSVID{ID: id, Audience: slices.Clone(audience), Expiry: exp, token: func() string { return tok }}, nil
}

// mintJWT signs a JWT-SVID for id and returns the serialized token.
func (d *DevIssuer) mintJWT(id spiffeid.ID, audience []string) (string, time.Time, error) {
	if !id.MemberOf(d.td) {
		return "", time.Time{}, fmt.Errorf("identity: dev issuer for %q cannot mint %s", d.td, id)
	}
	if len(audience) == 0 || slices.Contains(audience, "") {
		return "", time.Time{}, errors.New("identity: a JWT-SVID needs an audience")
	}
	d.mu.Lock()
	key, kid, now := d.jwtKey, d.kid, d.now()
	d.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("identity: dev issuer: %w", err)
	}
	exp := now.Add(d.jwtTTL).Truncate(time.Second)
	claims := jwt.Claims{
		Subject:  id.String(),
		Audience: jwt.Audience(audience),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(exp),
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("identity: dev issuer: %w", err)
	}
	return tok, exp.UTC(), nil
}

// Agent returns the identity of the agent at path (such as
// "/agent/support-bot") in the issuer's trust domain: a [Source] and
// [JWTIssuer] backed by X.509-SVIDs the issuer mints and renews.
func (d *DevIssuer) Agent(path string) (*DevAgent, error) {
	id, err := d.ID(path)
	if err != nil {
		return nil, fmt.Errorf("identity: dev issuer: agent %q: %w", path, err)
	}
	return &DevAgent{d: d, id: id}, nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("identity: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// DevAgent is one agent's identity from a [DevIssuer]: not for production.
// Each X.509-SVID it gets is verified against the issuer's bundle once, and
// each Identity call checks its validity period; a new SVID is minted when
// half its life has passed.
type DevAgent struct {
	d  *DevIssuer
	id spiffeid.ID

	mu   sync.Mutex
	svid *x509svid.SVID
	// serial is svid's leaf serial number in hex, made once per SVID.
	serial string
}

var (
	_ Source    = (*DevAgent)(nil)
	_ JWTIssuer = (*DevAgent)(nil)
)

// ID returns the agent's SPIFFE ID.
func (a *DevAgent) ID() spiffeid.ID { return a.id }

// SVID returns the agent's current X.509-SVID, minting one when there is
// none or the current one is past half its life.
func (a *DevAgent) SVID() (*x509svid.SVID, error) {
	s, _, err := a.current()
	return s, err
}

// current returns the agent's current X.509-SVID, as SVID does, and its
// leaf's serial number in hex.
func (a *DevAgent) current() (*x509svid.SVID, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.d.now()
	if a.svid != nil {
		leaf := a.svid.Certificates[0]
		half := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
		if now.Before(half) {
			return a.svid, a.serial, nil
		}
	}
	s, err := a.d.MintX509SVID(a.id)
	if err != nil {
		return nil, "", err
	}
	// Verified once, as a Workload API source verifies each update; each
	// Identity call then checks only the validity period.
	if _, err := verifySVID(s, a.d, now); err != nil {
		return nil, "", err
	}
	a.svid, a.serial = s, leafSerial(s)
	return s, a.serial, nil
}

// Identity returns the agent's SPIFFE ID, read from its X.509-SVID once
// that verifies against the issuer's bundle, with that SVID's serial
// number and expiry.
func (a *DevAgent) Identity(ctx context.Context) (Identity, error) {
	if err := ctx.Err(); err != nil {
		return Identity{}, err
	}
	s, serial, err := a.current()
	if err != nil {
		if errors.Is(err, ErrNoIdentity) {
			return Identity{}, err
		}
		return Identity{}, fmt.Errorf("%w: %w", ErrNoIdentity, err)
	}
	leaf, now := s.Certificates[0], a.d.now()
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return Identity{}, fmt.Errorf("%w: X.509-SVID of %s is not valid at %s", ErrNoIdentity, s.ID, now.UTC().Format(time.RFC3339))
	}
	return Identity{ID: s.ID, Serial: serial, NotAfter: leaf.NotAfter}, nil
}

// leafSerial is the serial number of s's leaf certificate in lower-case
// hex, as Identity.Serial gives it.
func leafSerial(s *x509svid.SVID) string {
	if s == nil || len(s.Certificates) == 0 || s.Certificates[0].SerialNumber == nil {
		return ""
	}
	return s.Certificates[0].SerialNumber.Text(16)
}

// JWTSVID mints a JWT-SVID of the agent for audience.
func (a *DevAgent) JWTSVID(ctx context.Context, audience string, extra ...string) (*JWTSVID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return a.d.MintJWTSVID(a.id, append([]string{audience}, extra...)...)
}

// verifySVID checks s's chain against bundles at now and returns its ID.
func verifySVID(s *x509svid.SVID, bundles x509bundle.Source, now time.Time) (spiffeid.ID, error) {
	if s == nil || len(s.Certificates) == 0 {
		return spiffeid.ID{}, fmt.Errorf("%w: no X.509-SVID", ErrNoIdentity)
	}
	leaf := s.Certificates[0]
	if now.After(leaf.NotAfter) {
		return spiffeid.ID{}, fmt.Errorf("%w: X.509-SVID of %s expired at %s", ErrNoIdentity, s.ID, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return spiffeid.ID{}, fmt.Errorf("%w: X.509-SVID of %s not valid before %s", ErrNoIdentity, s.ID, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	id, _, err := x509svid.Verify(s.Certificates, bundles, x509svid.WithTime(now))
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: X.509-SVID of %s does not verify: %w", ErrNoIdentity, s.ID, err)
	}
	if id != s.ID {
		return spiffeid.ID{}, fmt.Errorf("%w: X.509-SVID names %s, not %s", ErrNoIdentity, id, s.ID)
	}
	return id, nil
}

// GetJWTBundleForTrustDomain implements jwtbundle.Source with the issuer's
// bundle, so a guard can verify handoffs to this agent.
func (a *DevAgent) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	return a.d.GetJWTBundleForTrustDomain(td)
}
