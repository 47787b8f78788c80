package spiretest_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/internal/spiretest"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestSPIRE(t *testing.T) {
	spiretest.Require(t)

	const td = "spiretest.example"
	begin := time.Now()
	s := spiretest.Start(t, td)
	t.Logf("server+agent start: %v", time.Since(begin).Round(time.Millisecond))

	if got := s.TrustDomain(); got != td {
		t.Errorf("TrustDomain() = %q, want %q", got, td)
	}
	t.Logf("agent ID %s, workload API %s", s.AgentID(), s.Addr())

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(s.Addr()))
	if err != nil {
		t.Fatalf("workloadapi.New: %v", err)
	}
	defer client.Close()

	want := "spiffe://" + td + "/agent/a"
	begin = time.Now()
	entryID := s.CreateEntry(t, want, "a", fmt.Sprintf("unix:uid:%d", os.Getuid()))
	created := time.Now()
	t.Logf("entry create (CLI): %v", created.Sub(begin).Round(time.Millisecond))

	// First SVID.
	var fetches int
	for {
		fetches++
		x509Ctx, err := client.FetchX509Context(ctx)
		if err == nil {
			svid := x509Ctx.DefaultSVID()
			if got := svid.ID.String(); got != want {
				t.Fatalf("SVID ID = %q, want %q", got, want)
			}
			if svid.Hint != "a" {
				t.Errorf("SVID hint = %q, want %q", svid.Hint, "a")
			}
			t.Logf("first SVID after entry creation: %v (%d fetches), expires in %v",
				time.Since(created).Round(time.Millisecond), fetches, time.Until(svid.Certificates[0].NotAfter).Round(time.Second))
			break
		}
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("FetchX509Context: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatalf("no SVID within the deadline: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Removal.
	begin = time.Now()
	s.DeleteEntry(t, entryID)
	deleted := time.Now()
	t.Logf("entry delete (CLI): %v", deleted.Sub(begin).Round(time.Millisecond))
	fetches = 0
	for {
		fetches++
		x509Ctx, err := client.FetchX509Context(ctx)
		if err != nil {
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("FetchX509Context after delete: %v", err)
			}
			t.Logf("SVID removed after entry deletion: %v (%d fetches): %v",
				time.Since(deleted).Round(time.Millisecond), fetches, err)
			break
		}
		gone := true
		for _, svid := range x509Ctx.SVIDs {
			if svid.ID.String() == want {
				gone = false
			}
		}
		if gone {
			t.Logf("SVID removed after entry deletion: %v (%d fetches)", time.Since(deleted).Round(time.Millisecond), fetches)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("SVID %s still served after the deadline", want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
