package identitytest_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/identity/identitytest"
)

// wait bounds every wait for the fake; nothing in these tests should take
// more than a fraction of it.
const wait = 10 * time.Second

func newIssuer(t *testing.T, td string, opts ...identity.DevOption) *identity.DevIssuer {
	t.Helper()
	iss, err := identity.NewDevIssuer(td, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func mustID(t *testing.T, iss *identity.DevIssuer, path string) spiffeid.ID {
	t.Helper()
	id, err := iss.ID(path)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	t.Cleanup(cancel)
	return ctx
}

// fastBackoff retries at once, so that tests of recovery do not wait for
// go-spiffe's default back-off of a second and more.
type fastBackoff struct{}

func (fastBackoff) NewBackoff() workloadapi.Backoff { return fastBackoff{} }
func (fastBackoff) Next() time.Duration             { return 10 * time.Millisecond }
func (fastBackoff) Reset()                          {}

func newClient(t *testing.T, w *identitytest.WorkloadAPI) *workloadapi.Client {
	t.Helper()
	c, err := workloadapi.New(t.Context(), workloadapi.WithAddr(w.Addr()), workloadapi.WithBackoffStrategy(fastBackoff{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawClient is a Workload API client without go-spiffe's conveniences: it
// sends the security header only when asked.
func rawClient(t *testing.T, w *identitytest.WorkloadAPI) workload.SpiffeWorkloadAPIClient {
	t.Helper()
	conn, err := grpc.NewClient(w.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return workload.NewSpiffeWorkloadAPIClient(conn)
}

func withHeader(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("got error %v (code %s), want code %s", err, got, code)
	}
}

// x509Watcher receives go-spiffe's X.509 context updates on channels.
type x509Watcher struct {
	ctx     context.Context
	updates chan *workloadapi.X509Context
	errs    chan error
}

func (x *x509Watcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	select {
	case x.updates <- c:
	case <-x.ctx.Done():
	}
}

func (x *x509Watcher) OnX509ContextWatchError(err error) {
	select {
	case x.errs <- err:
	default: // the client retries while the fake fails; keep the first ones
	}
}

// watchX509 watches c's X.509 context until the test ends.
func watchX509(t *testing.T, c *workloadapi.Client) *x509Watcher {
	ctx, cancel := context.WithCancel(context.Background())
	x := &x509Watcher{ctx: ctx, updates: make(chan *workloadapi.X509Context), errs: make(chan error, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.WatchX509Context(ctx, x)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return x
}

func (x *x509Watcher) next(t *testing.T) *workloadapi.X509Context {
	t.Helper()
	select {
	case c := <-x.updates:
		return c
	case <-time.After(wait):
		t.Fatal("no X.509 context update")
		return nil
	}
}

func (x *x509Watcher) nextErr(t *testing.T) error {
	t.Helper()
	select {
	case err := <-x.errs:
		return err
	case <-time.After(wait):
		t.Fatal("no watch error")
		return nil
	}
}

// jwtBundleWatcher receives go-spiffe's JWT bundle updates on a channel.
type jwtBundleWatcher struct {
	ctx     context.Context
	updates chan *jwtbundle.Set
}

func (j *jwtBundleWatcher) OnJWTBundlesUpdate(s *jwtbundle.Set) {
	select {
	case j.updates <- s:
	case <-j.ctx.Done():
	}
}

func (j *jwtBundleWatcher) OnJWTBundlesWatchError(error) {}

func watchJWTBundles(t *testing.T, c *workloadapi.Client) *jwtBundleWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	j := &jwtBundleWatcher{ctx: ctx, updates: make(chan *jwtbundle.Set)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.WatchJWTBundles(ctx, j)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return j
}

func (j *jwtBundleWatcher) next(t *testing.T) *jwtbundle.Set {
	t.Helper()
	select {
	case s := <-j.updates:
		return s
	case <-time.After(wait):
		t.Fatal("no JWT bundle update")
		return nil
	}
}

func TestX509SVIDVerifiesAgainstBundle(t *testing.T) {
	iss := newIssuer(t, "example.org")
	id := mustID(t, iss, "/agent/support-bot")
	w := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: id})
	c := newClient(t, w)

	xc, err := c.FetchX509Context(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(xc.SVIDs) != 1 {
		t.Fatalf("got %d SVIDs, want 1", len(xc.SVIDs))
	}
	svid := xc.DefaultSVID()
	if svid.ID != id {
		t.Errorf("SVID ID = %s, want %s", svid.ID, id)
	}
	// The bundle served verifies the SVID served...
	got, _, err := x509svid.Verify(svid.Certificates, xc.Bundles)
	if err != nil {
		t.Fatalf("SVID does not verify against the bundle served: %v", err)
	}
	if got != id {
		t.Errorf("verified ID = %s, want %s", got, id)
	}
	// ... and is the issuer's.
	if _, _, err := x509svid.Verify(svid.Certificates, iss); err != nil {
		t.Errorf("SVID does not verify against the issuer: %v", err)
	}
	b, err := xc.Bundles.GetX509BundleForTrustDomain(iss.TrustDomain())
	if err != nil {
		t.Fatal(err)
	}
	if !b.Equal(iss.X509Bundle()) {
		t.Error("bundle served is not the issuer's X.509 bundle")
	}

	// The other X.509 calls serve the same.
	one, err := c.FetchX509SVID(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if one.ID != id {
		t.Errorf("FetchX509SVID ID = %s, want %s", one.ID, id)
	}
	bundles, err := c.FetchX509Bundles(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := bundles.GetX509BundleForTrustDomain(iss.TrustDomain()); err != nil || !b.Equal(iss.X509Bundle()) {
		t.Errorf("FetchX509Bundles: issuer's bundle missing or different (err %v)", err)
	}
}

func TestEntriesWithHints(t *testing.T) {
	iss := newIssuer(t, "example.org")
	internal := mustID(t, iss, "/agent/internal")
	external := mustID(t, iss, "/agent/external")
	w := identitytest.NewWorkloadAPI(t, iss,
		identitytest.Entry{ID: internal, Hint: "internal"},
		identitytest.Entry{ID: external, Hint: "external"},
	)
	c := newClient(t, w)

	xc, err := c.FetchX509Context(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(xc.SVIDs) != 2 {
		t.Fatalf("got %d SVIDs, want 2", len(xc.SVIDs))
	}
	for i, want := range []struct {
		id   spiffeid.ID
		hint string
	}{{internal, "internal"}, {external, "external"}} {
		s := xc.SVIDs[i]
		if s.ID != want.id || s.Hint != want.hint {
			t.Errorf("SVID %d = %s hint %q, want %s hint %q", i, s.ID, s.Hint, want.id, want.hint)
		}
		if _, _, err := x509svid.Verify(s.Certificates, xc.Bundles); err != nil {
			t.Errorf("SVID %d: %v", i, err)
		}
	}

	jwts, err := c.FetchJWTSVIDs(ctxFor(t), jwtsvid.Params{Audience: "spiffe://example.org/tool"})
	if err != nil {
		t.Fatal(err)
	}
	if len(jwts) != 2 || jwts[0].ID != internal || jwts[0].Hint != "internal" || jwts[1].ID != external || jwts[1].Hint != "external" {
		t.Errorf("JWT-SVIDs: got %d, want the two entries with their hints", len(jwts))
		for _, j := range jwts {
			t.Logf("  %s hint %q", j.ID, j.Hint)
		}
	}
}

func TestSetEntriesAndRotatePushToWatcher(t *testing.T) {
	iss := newIssuer(t, "example.org")
	first := mustID(t, iss, "/agent/first")
	second := mustID(t, iss, "/agent/second")
	w := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: first, Hint: "a"})
	x := watchX509(t, newClient(t, w))

	initial := x.next(t).DefaultSVID()
	if initial.ID != first || initial.Hint != "a" {
		t.Fatalf("initial SVID %s hint %q, want %s hint a", initial.ID, initial.Hint, first)
	}
	if n := w.X509Updates(); n != 1 {
		t.Errorf("X509Updates = %d after the first update, want 1", n)
	}

	w.Rotate()
	xc := x.next(t)
	rotated := xc.DefaultSVID()
	if rotated.ID != first || rotated.Hint != "a" {
		t.Errorf("rotated SVID %s hint %q, want %s hint a", rotated.ID, rotated.Hint, first)
	}
	if rotated.Certificates[0].SerialNumber.Cmp(initial.Certificates[0].SerialNumber) == 0 {
		t.Error("rotated SVID has the same serial number")
	}
	if rotated.Certificates[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(initial.Certificates[0].PublicKey) {
		t.Error("rotated SVID has the same key")
	}
	if _, _, err := x509svid.Verify(rotated.Certificates, xc.Bundles); err != nil {
		t.Errorf("rotated SVID: %v", err)
	}

	w.SetEntries(identitytest.Entry{ID: second, Hint: "b"})
	xc = x.next(t)
	if len(xc.SVIDs) != 1 || xc.SVIDs[0].ID != second || xc.SVIDs[0].Hint != "b" {
		t.Errorf("after SetEntries: got %d SVIDs, first %s; want only %s", len(xc.SVIDs), xc.SVIDs[0].ID, second)
	}

	// A rotation of the issuer's CA reaches the workload at the next Rotate,
	// with the bundle that verifies both the old and the new SVIDs.
	if err := iss.Rotate(); err != nil {
		t.Fatal(err)
	}
	w.Rotate()
	xc = x.next(t)
	if _, _, err := x509svid.Verify(xc.DefaultSVID().Certificates, xc.Bundles); err != nil {
		t.Errorf("SVID of the new CA: %v", err)
	}
	if _, _, err := x509svid.Verify(rotated.Certificates, xc.Bundles); err != nil {
		t.Errorf("SVID of the old CA no longer verifies: %v", err)
	}
	if n := w.X509Updates(); n != 4 {
		t.Errorf("X509Updates = %d, want 4", n)
	}
}

func TestNoEntriesPermissionDenied(t *testing.T) {
	iss := newIssuer(t, "example.org")
	w := identitytest.NewWorkloadAPI(t, iss)
	c := newClient(t, w)
	ctx := ctxFor(t)

	_, err := c.FetchX509Context(ctx)
	wantCode(t, err, codes.PermissionDenied)
	if msg := status.Convert(err).Message(); msg != "no identity issued" {
		t.Errorf("message %q, want SPIRE's %q", msg, "no identity issued")
	}
	_, err = c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "spiffe://example.org/tool"})
	wantCode(t, err, codes.PermissionDenied)
	_, err = c.FetchX509Bundles(ctx)
	wantCode(t, err, codes.PermissionDenied)
	_, err = c.FetchJWTBundles(ctx)
	wantCode(t, err, codes.PermissionDenied)

	// ValidateJWTSVID still answers, as SPIRE's does.
	tok, err := iss.MintJWTSVID(mustID(t, iss, "/agent/peer"), "spiffe://example.org/tool")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ValidateJWTSVID(ctx, tok.Marshal(), "spiffe://example.org/tool"); err != nil {
		t.Errorf("ValidateJWTSVID without an entry: %v", err)
	}

	// A source started before the workload is registered gets its SVID
	// once an entry is added: go-spiffe's client keeps retrying.
	id := mustID(t, iss, "/agent/late")
	type result struct {
		src *workloadapi.X509Source
		err error
	}
	started := make(chan result, 1)
	go func() {
		src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(
			workloadapi.WithAddr(w.Addr()), workloadapi.WithBackoffStrategy(fastBackoff{})))
		started <- result{src, err}
	}()
	w.SetEntries(identitytest.Entry{ID: id})
	r := <-started
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.src.Close()
	svid, err := r.src.GetX509SVID()
	if err != nil || svid.ID != id {
		t.Errorf("X509Source: %v, %v; want %s", svid, err, id)
	}

	// Removing the entries ends open streams with PermissionDenied.
	x := watchX509(t, c)
	x.next(t)
	w.SetEntries()
	wantCode(t, x.nextErr(t), codes.PermissionDenied)
	_, err = c.FetchX509Context(ctx)
	wantCode(t, err, codes.PermissionDenied)
}

func TestFailAndRecover(t *testing.T) {
	for _, code := range []codes.Code{codes.Unavailable, codes.PermissionDenied, codes.Internal} {
		t.Run(code.String(), func(t *testing.T) {
			iss := newIssuer(t, "example.org")
			id := mustID(t, iss, "/agent/a")
			w := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: id})
			c := newClient(t, w)
			x := watchX509(t, c)
			bundles := watchJWTBundles(t, c)
			x.next(t)
			bundles.next(t)
			ctx := ctxFor(t)
			tok, err := iss.MintJWTSVID(id, "aud")
			if err != nil {
				t.Fatal(err)
			}

			w.Fail(code)
			wantCode(t, x.nextErr(t), code)
			_, err = c.FetchX509Context(ctx)
			wantCode(t, err, code)
			_, err = c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "aud"})
			wantCode(t, err, code)
			_, err = c.FetchJWTBundles(ctx)
			wantCode(t, err, code)
			_, err = c.ValidateJWTSVID(ctx, tok.Marshal(), "aud")
			wantCode(t, err, code)

			w.Recover()
			if _, err := c.FetchX509Context(ctx); err != nil {
				t.Errorf("FetchX509Context after Recover: %v", err)
			}
			if _, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "aud"}); err != nil {
				t.Errorf("FetchJWTSVID after Recover: %v", err)
			}
			// The watchers reconnect and are served again.
			if got := x.next(t).DefaultSVID().ID; got != id {
				t.Errorf("watcher after Recover: SVID %s, want %s", got, id)
			}
			if _, ok := bundles.next(t).Get(iss.TrustDomain()); !ok {
				t.Error("JWT bundle watcher after Recover: no bundle of the trust domain")
			}
		})
	}
}

func TestMissingSecurityHeader(t *testing.T) {
	iss := newIssuer(t, "example.org")
	w := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: mustID(t, iss, "/agent/a")})
	raw := rawClient(t, w)
	ctx := ctxFor(t)

	check := func(name string, err error) {
		t.Helper()
		if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "security header missing from request" {
			t.Errorf("%s: got %v, want InvalidArgument: security header missing from request", name, err)
		}
	}
	_, err := raw.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"aud"}})
	check("FetchJWTSVID", err)
	_, err = raw.ValidateJWTSVID(ctx, &workload.ValidateJWTSVIDRequest{Audience: "aud", Svid: "x"})
	check("ValidateJWTSVID", err)
	stream, err := raw.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	check("FetchX509SVID", err)
	bstream, err := raw.FetchJWTBundles(ctx, &workload.JWTBundlesRequest{})
	if err == nil {
		_, err = bstream.Recv()
	}
	check("FetchJWTBundles", err)
	_, err = raw.FetchJWTSVID(metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "false"), &workload.JWTSVIDRequest{Audience: []string{"aud"}})
	check("FetchJWTSVID with header false", err)

	// With the header, the same client is served.
	stream, err = raw.FetchX509SVID(withHeader(ctx), &workload.X509SVIDRequest{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("with the header: %v", err)
	}
	s := resp.GetSvids()[0]
	if len(s.GetX509Svid()) == 0 || len(s.GetX509SvidKey()) == 0 || len(s.GetBundle()) == 0 {
		t.Error("X509SVID message lacks the chain, key or bundle")
	}
	if _, err := x509.ParsePKCS8PrivateKey(s.GetX509SvidKey()); err != nil {
		t.Errorf("x509_svid_key is not PKCS#8 DER: %v", err)
	}
}

func TestJWTSVID(t *testing.T) {
	iss := newIssuer(t, "example.org")
	bot := mustID(t, iss, "/agent/support-bot")
	other := mustID(t, iss, "/agent/other")
	w := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: bot}, identitytest.Entry{ID: other, Hint: "other"})
	c := newClient(t, w)
	ctx := ctxFor(t)
	const aud = "spiffe://example.org/tool/search"

	svid, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: aud})
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID != bot {
		t.Errorf("JWT-SVID ID = %s, want the first entry's %s", svid.ID, bot)
	}
	tok := svid.Marshal()

	// The fake validates it...
	got, err := c.ValidateJWTSVID(ctx, tok, aud)
	if err != nil {
		t.Fatalf("ValidateJWTSVID: %v", err)
	}
	if got.ID != bot {
		t.Errorf("validated ID = %s, want %s", got.ID, bot)
	}
	// ... and so does the issuer's bundle, outside the fake.
	if _, err := identity.VerifyJWTSVID(tok, iss, aud); err != nil {
		t.Errorf("issuer's bundle refuses the JWT-SVID: %v", err)
	}
	// ... but not for another audience.
	_, err = c.ValidateJWTSVID(ctx, tok, "spiffe://example.org/tool/other")
	wantCode(t, err, codes.InvalidArgument)

	// The claims come back as SPIRE returns them: "aud" always a list.
	resp, err := rawClient(t, w).ValidateJWTSVID(withHeader(ctx), &workload.ValidateJWTSVIDRequest{Audience: aud, Svid: tok})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSpiffeId() != bot.String() {
		t.Errorf("spiffe_id = %q, want %q", resp.GetSpiffeId(), bot)
	}
	claims := resp.GetClaims().AsMap()
	if a, ok := claims["aud"].([]any); !ok || len(a) != 1 || a[0] != aud {
		t.Errorf("aud claim = %#v, want [%q]", claims["aud"], aud)
	}
	if claims["sub"] != bot.String() {
		t.Errorf("sub claim = %v, want %s", claims["sub"], bot)
	}
	if _, ok := claims["exp"].(float64); !ok {
		t.Errorf("exp claim = %#v, want a number", claims["exp"])
	}

	// A subject picks the entry.
	svid, err = c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: aud, Subject: other})
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID != other || svid.Hint != "other" {
		t.Errorf("JWT-SVID for subject %s: got %s hint %q", other, svid.ID, svid.Hint)
	}
	_, err = c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: aud, Subject: mustID(t, iss, "/agent/unknown")})
	wantCode(t, err, codes.PermissionDenied)
	_, err = c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: ""})
	wantCode(t, err, codes.InvalidArgument)
	_, err = rawClient(t, w).FetchJWTSVID(withHeader(ctx), &workload.JWTSVIDRequest{})
	wantCode(t, err, codes.InvalidArgument)

	// A token of a trust domain the fake does not federate with is refused.
	stranger := newIssuer(t, "stranger.example")
	foreign, err := stranger.MintJWTSVID(mustID(t, stranger, "/agent/x"), aud)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ValidateJWTSVID(ctx, foreign.Marshal(), aud)
	wantCode(t, err, codes.InvalidArgument)

	// A JWTSource fetches JWT-SVIDs and the bundles that verify them.
	src, err := workloadapi.NewJWTSource(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(w.Addr())))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	svid, err = src.FetchJWTSVID(ctx, jwtsvid.Params{Audience: aud})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwtsvid.ParseAndValidate(svid.Marshal(), src, []string{aud}); err != nil {
		t.Errorf("JWT-SVID does not verify against the JWTSource's bundles: %v", err)
	}
}

func TestFederatedBundles(t *testing.T) {
	iss := newIssuer(t, "example.org")
	partner := newIssuer(t, "partner.example")
	id := mustID(t, iss, "/agent/a")
	w := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: id})
	c := newClient(t, w)
	ctx := ctxFor(t)
	x := watchX509(t, c)
	j := watchJWTBundles(t, c)

	if x.next(t).Bundles.Has(partner.TrustDomain()) {
		t.Fatal("partner's X.509 bundle served before Federate")
	}
	if j.next(t).Has(partner.TrustDomain()) {
		t.Fatal("partner's JWT bundle served before Federate")
	}
	partnerTok, err := partner.MintJWTSVID(mustID(t, partner, "/agent/b"), "spiffe://example.org/agent/a")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ValidateJWTSVID(ctx, partnerTok.Marshal(), "spiffe://example.org/agent/a")
	wantCode(t, err, codes.InvalidArgument)

	w.Federate(partner)

	// Pushed to both streams.
	xc := x.next(t)
	partnerSVID, err := partner.MintX509SVID(mustID(t, partner, "/agent/b"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := x509svid.Verify(partnerSVID.Certificates, xc.Bundles); err != nil || got.TrustDomain() != partner.TrustDomain() {
		t.Errorf("partner's SVID against the federated bundle: %s, %v", got, err)
	}
	set := j.next(t)
	b, ok := set.Get(partner.TrustDomain())
	if !ok || !b.Equal(partner.JWTBundle()) {
		t.Error("partner's JWT bundle not pushed, or different")
	}
	if b, ok := set.Get(iss.TrustDomain()); !ok || !b.Equal(iss.JWTBundle()) {
		t.Error("own JWT bundle missing or different")
	}
	if _, err := jwtsvid.ParseAndValidate(partnerTok.Marshal(), set, []string{"spiffe://example.org/agent/a"}); err != nil {
		t.Errorf("partner's JWT-SVID against the bundles served: %v", err)
	}

	// Served by the one-shot calls and used by ValidateJWTSVID.
	x509s, err := c.FetchX509Bundles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := x509s.Get(partner.TrustDomain()); !ok || !b.Equal(partner.X509Bundle()) {
		t.Error("FetchX509Bundles: partner's bundle missing or different")
	}
	if got, err := c.ValidateJWTSVID(ctx, partnerTok.Marshal(), "spiffe://example.org/agent/a"); err != nil || got.ID.TrustDomain() != partner.TrustDomain() {
		t.Errorf("ValidateJWTSVID of the partner's token: %v, %v", got, err)
	}

	// Federate with no one again.
	w.Federate()
	if x.next(t).Bundles.Has(partner.TrustDomain()) {
		t.Error("partner's X.509 bundle still served")
	}
	if j.next(t).Has(partner.TrustDomain()) {
		t.Error("partner's JWT bundle still served")
	}
}

// clock is a settable clock for the issuer.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time      { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) set(d time.Duration) { c.offset.Store(int64(d)) }

func TestSetX509SVIDsForNegativeTests(t *testing.T) {
	var clk clock
	iss := newIssuer(t, "example.org", identity.WithDevClock(clk.now))
	id := mustID(t, iss, "/agent/a")
	w := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: id, Hint: "h"})
	x := watchX509(t, newClient(t, w))
	x.next(t)

	// An SVID that expired an hour ago.
	clk.set(-2 * identity.DefaultX509SVIDTTL)
	expired, err := iss.MintX509SVID(id)
	clk.set(0)
	if err != nil {
		t.Fatal(err)
	}
	w.SetX509SVIDs(expired)
	xc := x.next(t)
	svid := xc.DefaultSVID()
	if svid.Hint != "" || !svid.Certificates[0].Equal(expired.Certificates[0]) {
		t.Fatal("the SVID set is not the one served (or has a hint)")
	}
	var invalid x509.CertificateInvalidError
	if _, _, err := x509svid.Verify(svid.Certificates, xc.Bundles); !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("expired SVID: Verify error %v, want an expiry", err)
	}

	// An SVID of another CA for the same trust domain.
	impostor := newIssuer(t, "example.org")
	forged, err := impostor.MintX509SVID(id)
	if err != nil {
		t.Fatal(err)
	}
	w.SetX509SVIDs(forged)
	xc = x.next(t)
	var unknown x509.UnknownAuthorityError
	if _, _, err := x509svid.Verify(xc.DefaultSVID().Certificates, xc.Bundles); !errors.As(err, &unknown) {
		t.Errorf("SVID of another CA: Verify error %v, want an unknown authority", err)
	}

	// Rotate serves good SVIDs for the same IDs again.
	w.Rotate()
	xc = x.next(t)
	if got, _, err := x509svid.Verify(xc.DefaultSVID().Certificates, xc.Bundles); err != nil || got != id {
		t.Errorf("after Rotate: %s, %v", got, err)
	}
}

func TestCloseEndsStreams(t *testing.T) {
	iss := newIssuer(t, "example.org")
	w := identitytest.NewWorkloadAPI(t, iss, identitytest.Entry{ID: mustID(t, iss, "/agent/a")})
	c := newClient(t, w)
	x := watchX509(t, c)
	x.next(t)
	u, err := url.Parse(w.Addr())
	if err != nil || u.Scheme != "unix" || !filepath.IsAbs(u.Path) {
		t.Fatalf("Addr %q is not unix:///abs/path (%v)", w.Addr(), err)
	}
	if _, err := os.Stat(u.Path); err != nil {
		t.Fatalf("socket: %v", err)
	}

	w.Close()
	if err := x.nextErr(t); err == nil {
		t.Error("watcher got a nil error when the server closed")
	}
	w.Close() // idempotent

	// Every goroutine of the fake has returned: Serve's, and the handlers'.
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 2); err != nil {
		t.Fatal(err)
	}
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "go-sdk/identity/identitytest.") {
			t.Errorf("goroutine of the fake still running after Close:\n%s", g)
		}
	}

	if _, err := os.Stat(filepath.Dir(u.Path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket directory not removed: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := c.FetchX509Context(ctx); err == nil {
		t.Error("FetchX509Context succeeded after Close")
	}
}

func TestConcurrentChanges(t *testing.T) {
	iss := newIssuer(t, "example.org")
	partner := newIssuer(t, "partner.example")
	a := identitytest.Entry{ID: mustID(t, iss, "/agent/a"), Hint: "a"}
	b := identitytest.Entry{ID: mustID(t, iss, "/agent/b"), Hint: "b"}
	w := identitytest.NewWorkloadAPI(t, iss, a)
	c := newClient(t, w)
	watchX509(t, c) // a watcher that never reads: its stream must not block others
	x := watchX509(t, c)
	watchJWTBundles(t, c)

	ctx := ctxFor(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := c.FetchX509Context(ctx)
				if code := status.Code(err); err != nil && code != codes.Unavailable && code != codes.PermissionDenied {
					t.Errorf("FetchX509Context: %v", err)
					return
				}
				_, err = c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "aud"})
				if code := status.Code(err); err != nil && code != codes.Unavailable && code != codes.PermissionDenied {
					t.Errorf("FetchJWTSVID: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-x.updates:
			case <-stop:
				return
			}
		}
	})
	for i := range 50 {
		switch i % 6 {
		case 0:
			w.Rotate()
		case 1:
			w.SetEntries(a, b)
		case 2:
			w.Federate(partner)
		case 3:
			w.Fail(codes.Unavailable)
		case 4:
			w.Recover()
		case 5:
			w.SetEntries()
		}
	}
	w.SetEntries(a)
	close(stop)
	wg.Wait()
	w.Close()
}
