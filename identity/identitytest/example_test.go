package identitytest_test

import (
	"context"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/identity/identitytest"
)

// This example is the body of a test of an agent that gets its identity
// from the Workload API. It is not run: it needs the test's *testing.T.
func ExampleNewWorkloadAPI() {
	var t *testing.T // the test's t

	issuer, err := identity.NewDevIssuer("example.org")
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromPath(issuer.TrustDomain(), "/agent/support-bot")
	api := identitytest.NewWorkloadAPI(t, issuer, identitytest.Entry{ID: id})

	// Code that reads SPIFFE_ENDPOINT_SOCKET finds the fake there...
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", api.Addr())
	// ... and go-spiffe's sources can also be told its address.
	source, err := workloadapi.NewX509Source(t.Context(),
		workloadapi.WithClientOptions(workloadapi.WithAddr(api.Addr())))
	if err != nil {
		t.Fatal(err)
	}
	defer source.Close()

	svid, err := source.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, source); err != nil {
		t.Fatal(err)
	}

	// Rotate the SVID, and wait for the source to have the new one.
	api.Rotate()
	if err := source.WaitUntilUpdated(t.Context()); err != nil {
		t.Fatal(err)
	}

	// Make the agent unavailable, and see what the code under test does.
	api.Fail(codes.Unavailable)
	// ...
	api.Recover()
}

// A test of code that must refuse an expired X.509-SVID.
func ExampleWorkloadAPI_SetX509SVIDs() {
	var t *testing.T // the test's t

	past := func() time.Time { return time.Now().Add(-2 * identity.DefaultX509SVIDTTL) }
	old, err := identity.NewDevIssuer("example.org", identity.WithDevClock(past))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := old.MintX509SVID(spiffeid.RequireFromPath(old.TrustDomain(), "/agent/support-bot"))
	if err != nil {
		t.Fatal(err)
	}
	api := identitytest.NewWorkloadAPI(t, old)
	api.SetX509SVIDs(expired)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(api.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	x509Context, err := client.FetchX509Context(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(x509Context.DefaultSVID().Certificates, x509Context.Bundles); err == nil {
		t.Fatal("an expired X.509-SVID verified")
	}
}
