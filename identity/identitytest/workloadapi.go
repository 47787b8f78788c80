// Package identitytest provides a fake SPIFFE Workload API, for tests of
// agents that get their identity from SPIRE.
//
// A [WorkloadAPI] serves, on a unix socket, X.509-SVIDs, JWT-SVIDs and trust
// bundles from an [identity.DevIssuer], the way a SPIRE agent serves a
// workload that its registration entries match. A test points go-spiffe's
// workloadapi client (or anything built on it, such as
// [identity.NewSPIFFESource]) at [WorkloadAPI.Addr], then changes what the
// fake serves — new entries, rotated SVIDs, federated trust domains, an
// agent that fails — to see how the code under test reacts.
//
// Like the rest of the development issuer, it attests nothing: it serves
// every caller the same SVIDs. It is for tests only.
package identitytest

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/agentguard/go-sdk/identity"
)

// socketName is the file name of the Workload API socket, in a directory
// of its own.
const socketName = "agent.sock"

// securityHeader is the gRPC metadata key every Workload API request must
// carry, with the value "true".
const securityHeader = "workload.spiffe.io"

// Errors with the codes and messages of a SPIRE agent.
var (
	errNoIdentity      = status.Error(codes.PermissionDenied, "no identity issued")
	errNoSecurityHdr   = status.Error(codes.InvalidArgument, "security header missing from request")
	errNoAudience      = status.Error(codes.InvalidArgument, "audience must be specified")
	errEmptyAudience   = status.Error(codes.InvalidArgument, "audience must not be empty")
	errNoSVIDToCheck   = status.Error(codes.InvalidArgument, "svid must be specified")
	errWorkloadAPIDown = status.Error(codes.Unavailable, "identitytest: workload API closed")
)

// Entry is one SVID the fake serves: like a SPIRE registration entry
// matching the caller.
type Entry struct {
	// ID is the SPIFFE ID of the SVID. It must be in the issuer's trust
	// domain.
	ID spiffeid.ID
	// Hint is an operator's hint to tell the workload's SVIDs apart, such
	// as "internal" or "external"; it may be empty. go-spiffe's client
	// drops an SVID whose non-empty hint an earlier SVID already has.
	Hint string
}

// WorkloadAPI is a fake SPIFFE Workload API server, serving what an
// [identity.DevIssuer] mints. Its methods may be called from any goroutine;
// every change is pushed to the open streams at once.
//
// The server behaves as a SPIRE agent does: every request must carry the
// gRPC metadata "workload.spiffe.io: true" (else codes.InvalidArgument);
// while no SVID is served, FetchX509SVID, FetchJWTSVID, FetchX509Bundles and
// FetchJWTBundles fail with codes.PermissionDenied ("no identity issued"),
// as they do for a workload no registration entry matches, and open streams
// end with that status; ValidateJWTSVID still answers, against the issuer's
// own bundle.
type WorkloadAPI struct {
	t      testing.TB
	issuer *identity.DevIssuer
	addr   string
	dir    string
	server *grpc.Server

	served    chan struct{} // closed when Serve has returned
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	handlers  sync.WaitGroup // RPC handlers running; Add only while !closed

	x509Updates atomic.Int64

	// svidMu serializes the changes of the SVIDs served, so that Rotate
	// never brings back entries a concurrent SetEntries replaced.
	svidMu sync.Mutex

	mu        sync.Mutex
	closed    bool
	svids     []servedSVID          // replaced, never modified in place
	federated []*identity.DevIssuer // replaced, never modified in place
	failure   codes.Code            // codes.OK unless Fail was called
	fails     uint64                // how many times Fail was called
	lastFail  codes.Code            // the code of the last Fail
	changed   chan struct{}         // closed and replaced on every change
}

// servedSVID is an X.509-SVID the fake serves, with the entry it is for.
type servedSVID struct {
	entry Entry
	chain []byte // DER certificates, leaf first
	key   []byte // PKCS#8 DER
}

// NewWorkloadAPI starts a fake Workload API that serves X.509-SVIDs the
// issuer mints for entries, and the issuer's bundles. With no entries, the
// caller is a workload with no registration entry (see [WorkloadAPI]).
//
// It listens on a unix socket in a new directory under [os.TempDir], whose
// name is short enough for the operating system's limit on socket paths. The
// server is closed, and the directory removed, when the test and its
// subtests have finished (see [testing.TB.Cleanup]). Errors in setting it up
// end the test with t.Fatalf.
func NewWorkloadAPI(t testing.TB, issuer *identity.DevIssuer, entries ...Entry) *WorkloadAPI {
	t.Helper()
	if issuer == nil {
		t.Fatalf("identitytest: NewWorkloadAPI: nil issuer")
	}
	w := &WorkloadAPI{
		t:       t,
		issuer:  issuer,
		served:  make(chan struct{}),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	svids, err := w.mint(entries)
	if err != nil {
		t.Fatalf("identitytest: NewWorkloadAPI: %v", err)
	}
	w.svids = svids

	dir, err := os.MkdirTemp("", "agw")
	if err != nil {
		t.Fatalf("identitytest: NewWorkloadAPI: %v", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		t.Fatalf("identitytest: NewWorkloadAPI: %v", err)
	}
	w.dir = dir
	path := filepath.Join(dir, socketName)
	lis, err := net.Listen("unix", path)
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("identitytest: NewWorkloadAPI: %v", err)
	}
	w.addr = "unix://" + path

	w.server = grpc.NewServer(
		grpc.UnaryInterceptor(w.unaryInterceptor),
		grpc.StreamInterceptor(w.streamInterceptor),
	)
	workload.RegisterSpiffeWorkloadAPIServer(w.server, &handler{w: w})
	go func() {
		defer close(w.served)
		_ = w.server.Serve(lis)
	}()
	t.Cleanup(w.Close)
	return w
}

// Addr returns the address of the Workload API, such as
// "unix:///tmp/agw1234/agent.sock", for workloadapi.WithAddr or the
// SPIFFE_ENDPOINT_SOCKET environment variable.
func (w *WorkloadAPI) Addr() string { return w.addr }

// SetEntries replaces the entries the fake serves: it mints new X.509-SVIDs
// for exactly these entries and pushes them to every open FetchX509SVID
// stream. With no entries the caller is a workload with no registration
// entry: open streams end with codes.PermissionDenied.
//
// If the issuer cannot mint an SVID for an entry (an ID outside its trust
// domain, say), SetEntries reports it with t.Errorf and changes nothing.
func (w *WorkloadAPI) SetEntries(entries ...Entry) {
	w.t.Helper()
	w.svidMu.Lock()
	defer w.svidMu.Unlock()
	svids, err := w.mint(entries)
	if err != nil {
		w.t.Errorf("identitytest: SetEntries: %v", err)
		return
	}
	w.update(func() { w.svids = svids })
}

// Rotate mints new X.509-SVIDs, with new keys and serial numbers, for the
// entries being served (same IDs, same hints), and pushes them to every open
// FetchX509SVID stream, as SPIRE does when SVIDs near their expiry. Call it
// after [identity.DevIssuer.Rotate] to serve SVIDs of the issuer's new CA
// and the issuer's new bundles.
//
// If the issuer cannot mint one of the SVIDs, Rotate reports it with
// t.Errorf and changes nothing.
func (w *WorkloadAPI) Rotate() {
	w.t.Helper()
	w.svidMu.Lock()
	defer w.svidMu.Unlock()
	w.mu.Lock()
	entries := make([]Entry, len(w.svids))
	for i, s := range w.svids {
		entries[i] = s.entry
	}
	w.mu.Unlock()
	svids, err := w.mint(entries)
	if err != nil {
		w.t.Errorf("identitytest: Rotate: %v", err)
		return
	}
	w.update(func() { w.svids = svids })
}

// SetX509SVIDs serves exactly svids, with empty hints, in place of the
// SVIDs minted for entries, and pushes them to every open FetchX509SVID
// stream. It is for negative tests: serve an expired SVID, or one from
// another issuer, and see the code under test refuse it. The bundle served
// with them is still the issuer's.
//
// Their IDs become the entries: FetchJWTSVID mints JWT-SVIDs for them
// (failing with codes.Unavailable for an ID outside the issuer's trust
// domain), and Rotate replaces them with SVIDs the issuer mints.
//
// A nil SVID, or one without certificates or with a key that cannot be
// marshaled, is reported with t.Errorf and nothing changes.
func (w *WorkloadAPI) SetX509SVIDs(svids ...*x509svid.SVID) {
	w.t.Helper()
	served := make([]servedSVID, 0, len(svids))
	for i, s := range svids {
		if s == nil || len(s.Certificates) == 0 || s.PrivateKey == nil {
			w.t.Errorf("identitytest: SetX509SVIDs: SVID %d has no certificate or key", i)
			return
		}
		v, err := serve(Entry{ID: s.ID}, s)
		if err != nil {
			w.t.Errorf("identitytest: SetX509SVIDs: %v", err)
			return
		}
		served = append(served, v)
	}
	w.svidMu.Lock()
	defer w.svidMu.Unlock()
	w.update(func() { w.svids = served })
}

// Federate makes the fake serve the X.509 and JWT bundles of issuers, each
// of another trust domain, as federated bundles: in FetchX509SVID
// responses, in FetchX509Bundles and FetchJWTBundles, and for
// ValidateJWTSVID. It replaces the issuers of an earlier call (with none,
// the fake federates with no one) and pushes the change to every open
// stream. An issuer of the fake's own trust domain is reported with
// t.Errorf and nothing changes.
//
// As in SPIRE, federated bundles are served only while the caller has an
// SVID.
func (w *WorkloadAPI) Federate(issuers ...*identity.DevIssuer) {
	w.t.Helper()
	for _, iss := range issuers {
		if iss == nil || iss.TrustDomain() == w.issuer.TrustDomain() {
			w.t.Errorf("identitytest: Federate: an issuer of another trust domain than %q is needed", w.issuer.TrustDomain())
			return
		}
	}
	federated := slices.Clone(issuers)
	w.update(func() { w.federated = federated })
}

// Fail makes every RPC fail with a status of code (codes.Unavailable, for an
// agent that is down; codes.PermissionDenied, for a workload the agent
// refuses; ...), and ends every open stream with it, until Recover.
// go-spiffe's client retries, with back-off, after any code but
// codes.InvalidArgument and codes.Canceled. Fail(codes.OK) is Recover.
func (w *WorkloadAPI) Fail(code codes.Code) {
	if code == codes.OK {
		w.Recover()
		return
	}
	w.update(func() {
		w.failure = code
		w.fails++
		w.lastFail = code
	})
}

// Recover undoes Fail: RPCs are served again. Streams Fail ended stay
// ended, even if Recover came before they noticed; clients open new ones.
func (w *WorkloadAPI) Recover() {
	w.update(func() { w.failure = codes.OK })
}

// Close stops the server: it closes the listener and every connection,
// ends every stream, waits for the RPCs in progress to return, and removes
// the socket's directory. Later calls do nothing. Close is called when the
// test finishes; call it earlier to test an agent that goes away.
func (w *WorkloadAPI) Close() {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		close(w.done)
		w.mu.Unlock()
		w.server.Stop()
		w.handlers.Wait()
		<-w.served
		_ = os.RemoveAll(w.dir)
	})
}

// X509Updates returns how many X.509-SVID responses (X.509 context updates,
// for go-spiffe's client) the fake has sent, over all FetchX509SVID streams.
// An update is counted by the time a client receives it.
func (w *WorkloadAPI) X509Updates() int { return int(w.x509Updates.Load()) }

// mint makes an X.509-SVID for each entry.
func (w *WorkloadAPI) mint(entries []Entry) ([]servedSVID, error) {
	svids := make([]servedSVID, 0, len(entries))
	for _, e := range entries {
		if e.ID.IsZero() {
			return nil, errors.New("entry with no SPIFFE ID")
		}
		s, err := w.issuer.MintX509SVID(e.ID)
		if err != nil {
			return nil, err
		}
		v, err := serve(e, s)
		if err != nil {
			return nil, err
		}
		svids = append(svids, v)
	}
	return svids, nil
}

// serve encodes s as the Workload API sends it.
func serve(e Entry, s *x509svid.SVID) (servedSVID, error) {
	key, err := x509.MarshalPKCS8PrivateKey(s.PrivateKey)
	if err != nil {
		return servedSVID{}, fmt.Errorf("SVID of %s: private key: %w", s.ID, err)
	}
	var chain []byte
	for _, c := range s.Certificates {
		chain = append(chain, c.Raw...)
	}
	return servedSVID{entry: e, chain: chain, key: key}, nil
}

// update applies change under the lock and wakes every stream.
func (w *WorkloadAPI) update(change func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	change()
	close(w.changed)
	w.changed = make(chan struct{})
}

// state is what the fake serves at one moment.
type state struct {
	svids     []servedSVID
	federated []*identity.DevIssuer
	failure   codes.Code
	fails     uint64
	lastFail  codes.Code
	changed   <-chan struct{} // closed when this state is superseded
}

func (w *WorkloadAPI) state() state {
	w.mu.Lock()
	defer w.mu.Unlock()
	return state{svids: w.svids, federated: w.federated, failure: w.failure, fails: w.fails, lastFail: w.lastFail, changed: w.changed}
}

// failErr is the status of an RPC while Fail(code) is in effect.
func failErr(code codes.Code) error {
	return status.Errorf(code, "identitytest: workload API failing with %s", code)
}

// enter registers an RPC handler, unless the server is closed.
func (w *WorkloadAPI) enter() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	w.handlers.Add(1)
	return true
}

// admit checks what SPIRE's middleware checks, then Fail.
func (w *WorkloadAPI) admit(ctx context.Context) error {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok || len(md[securityHeader]) != 1 || md[securityHeader][0] != "true" {
		return errNoSecurityHdr
	}
	if code := w.state().failure; code != codes.OK {
		return failErr(code)
	}
	return nil
}

func (w *WorkloadAPI) unaryInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if !w.enter() {
		return nil, errWorkloadAPIDown
	}
	defer w.handlers.Done()
	if err := w.admit(ctx); err != nil {
		return nil, err
	}
	return next(ctx, req)
}

func (w *WorkloadAPI) streamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if !w.enter() {
		return errWorkloadAPIDown
	}
	defer w.handlers.Done()
	if err := w.admit(ss.Context()); err != nil {
		return err
	}
	return next(srv, ss)
}

// watch calls send with the current state, then again on every change,
// until send fails, Fail is called, the client goes away or the server
// closes.
func (w *WorkloadAPI) watch(ctx context.Context, send func(state) error) error {
	fails := w.state().fails
	for {
		st := w.state()
		if st.failure != codes.OK {
			return failErr(st.failure)
		}
		if st.fails != fails {
			// Fail then Recover, while this stream was waiting.
			return failErr(st.lastFail)
		}
		if err := send(st); err != nil {
			return err
		}
		select {
		case <-st.changed:
		case <-ctx.Done():
			return nil
		case <-w.done:
			return errWorkloadAPIDown
		}
	}
}

// x509Bundle returns the DER certificates of iss's X.509 bundle.
func x509Bundle(iss *identity.DevIssuer) []byte {
	var der []byte
	for _, c := range iss.X509Bundle().X509Authorities() {
		der = append(der, c.Raw...)
	}
	return der
}

// jwks returns iss's JWT bundle as a JWKS document, keys sorted by key ID
// so that an unchanged bundle marshals the same.
func jwks(iss *identity.DevIssuer) ([]byte, error) {
	authorities := iss.JWTBundle().JWTAuthorities()
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(authorities))}
	for _, kid := range slices.Sorted(maps.Keys(authorities)) {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: authorities[kid], KeyID: kid})
	}
	return json.Marshal(set)
}

// handler implements the Workload API service.
type handler struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	w *WorkloadAPI
}

func (h *handler) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	w := h.w
	return w.watch(stream.Context(), func(st state) error {
		if len(st.svids) == 0 {
			return errNoIdentity
		}
		bundle := x509Bundle(w.issuer)
		resp := &workload.X509SVIDResponse{
			Svids:            make([]*workload.X509SVID, 0, len(st.svids)),
			FederatedBundles: make(map[string][]byte, len(st.federated)),
		}
		for _, s := range st.svids {
			resp.Svids = append(resp.Svids, &workload.X509SVID{
				SpiffeId:    s.entry.ID.String(),
				X509Svid:    s.chain,
				X509SvidKey: s.key,
				Bundle:      bundle,
				Hint:        s.entry.Hint,
			})
		}
		for _, iss := range st.federated {
			resp.FederatedBundles[iss.TrustDomain().IDString()] = x509Bundle(iss)
		}
		// Counted before it is sent, so that a client that has received
		// an update finds it counted.
		w.x509Updates.Add(1)
		if err := stream.Send(resp); err != nil {
			w.x509Updates.Add(-1)
			return err
		}
		return nil
	})
}

func (h *handler) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	w := h.w
	var last *workload.X509BundlesResponse
	return w.watch(stream.Context(), func(st state) error {
		if len(st.svids) == 0 {
			return errNoIdentity
		}
		resp := &workload.X509BundlesResponse{Bundles: map[string][]byte{
			w.issuer.TrustDomain().IDString(): x509Bundle(w.issuer),
		}}
		for _, iss := range st.federated {
			resp.Bundles[iss.TrustDomain().IDString()] = x509Bundle(iss)
		}
		if proto.Equal(resp, last) {
			return nil
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		last = resp
		return nil
	})
}

func (h *handler) FetchJWTBundles(_ *workload.JWTBundlesRequest, stream grpc.ServerStreamingServer[workload.JWTBundlesResponse]) error {
	w := h.w
	var last *workload.JWTBundlesResponse
	return w.watch(stream.Context(), func(st state) error {
		if len(st.svids) == 0 {
			return errNoIdentity
		}
		resp := &workload.JWTBundlesResponse{Bundles: map[string][]byte{}}
		for _, iss := range append([]*identity.DevIssuer{w.issuer}, st.federated...) {
			b, err := jwks(iss)
			if err != nil {
				return status.Errorf(codes.Unavailable, "could not serialize response: %v", err)
			}
			resp.Bundles[iss.TrustDomain().IDString()] = b
		}
		if proto.Equal(resp, last) {
			return nil
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		last = resp
		return nil
	})
}

func (h *handler) FetchJWTSVID(_ context.Context, req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	w := h.w
	if len(req.Audience) == 0 {
		return nil, errNoAudience
	}
	if slices.Contains(req.Audience, "") {
		return nil, errEmptyAudience
	}
	var want spiffeid.ID
	if req.SpiffeId != "" {
		id, err := spiffeid.FromString(req.SpiffeId)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "invalid requested SPIFFE ID: %v", err)
		}
		want = id
	}
	resp := new(workload.JWTSVIDResponse)
	for _, s := range w.state().svids {
		if !want.IsZero() && s.entry.ID != want {
			continue
		}
		svid, err := w.issuer.MintJWTSVID(s.entry.ID, req.Audience...)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "could not fetch JWT-SVID: %v", err)
		}
		resp.Svids = append(resp.Svids, &workload.JWTSVID{
			SpiffeId: s.entry.ID.String(),
			Svid:     svid.Marshal(),
			Hint:     s.entry.Hint,
		})
	}
	if len(resp.Svids) == 0 {
		return nil, errNoIdentity
	}
	return resp, nil
}

func (h *handler) ValidateJWTSVID(_ context.Context, req *workload.ValidateJWTSVIDRequest) (*workload.ValidateJWTSVIDResponse, error) {
	w := h.w
	if req.Audience == "" {
		return nil, errNoAudience
	}
	if req.Svid == "" {
		return nil, errNoSVIDToCheck
	}
	st := w.state()
	bundles := jwtbundle.NewSet(w.issuer.JWTBundle())
	if len(st.svids) > 0 {
		for _, iss := range st.federated {
			bundles.Add(iss.JWTBundle())
		}
	}
	svid, err := jwtsvid.ParseAndValidate(req.Svid, bundles, []string{req.Audience})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	claims := make(map[string]any, len(svid.Claims))
	for k, v := range svid.Claims {
		claims[k] = v
	}
	// A single audience may be a string in the token; SPIRE always
	// returns a list.
	if aud, ok := claims["aud"].(string); ok {
		claims["aud"] = []string{aud}
	}
	s, err := structFromClaims(claims)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &workload.ValidateJWTSVIDResponse{SpiffeId: svid.ID.String(), Claims: s}, nil
}

// structFromClaims converts JWT claims to a protobuf Struct through JSON,
// which handles every type a JSON decoder gives.
func structFromClaims(claims map[string]any) (*structpb.Struct, error) {
	b, err := json.Marshal(claims)
	if err != nil {
		return nil, err
	}
	s := new(structpb.Struct)
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, err
	}
	return s, nil
}
