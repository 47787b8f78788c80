package agentguard_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// TestFileSinkChainsGuardedCalls runs concurrent calls through a guard whose
// audit sink is the chained file: every call is in the verified chain,
// exactly once, with its decision.
func TestFileSinkChainsGuardedCalls(t *testing.T) {
	for _, mode := range []string{"durable", "buffered"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			priv, pub := audittest.NewSigningKey(t)
			opts := []audit.FileOption{audit.WithSigningKey(priv), audit.WithMaxFileSize(16 << 10)}
			if mode == "buffered" {
				opts = append(opts, audit.WithBuffered(8))
			}
			sink, err := audit.NewFileSink(dir, opts...)
			if err != nil {
				t.Fatal(err)
			}
			g, err := agentguard.New(
				agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(agentguardtest.AgentID))),
				agentguard.WithPolicy(policytest.NewRules(policytest.Rule{ID: "lookup", Tool: "lookup"})),
				agentguard.WithAudit(sink),
			)
			if err != nil {
				t.Fatal(err)
			}
			var runs atomic.Int64
			reg := g.NewRegistry("t")
			if err := reg.Register(counted("lookup", &runs), counted("wipe", &runs)); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			const workers, calls = 16, 25
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range calls {
						name := "lookup"
						if i%5 == 0 {
							name = "wipe" // denied: no rule allows it
						}
						_, _ = reg.Call(ctx, agentguard.Call{ID: fmt.Sprintf("c-%d-%d", w, i), Name: name, Args: []byte(`{}`)})
					}
				})
			}
			wg.Wait()
			if err := g.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := sink.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			rep := audittest.VerifyChain(t, dir, pub)
			if rep.Files < 2 {
				t.Errorf("%d files, want the log rotated", rep.Files)
			}
			events := audittest.ReadEvents(t, dir)
			audittest.ExpectCount(t, events, audittest.Want{Kind: audit.KindToolCall, Tool: "lookup", Decision: audit.Allow, Outcome: audit.OutcomeOK}, workers*calls*4/5)
			audittest.ExpectCount(t, events, audittest.Want{Kind: audit.KindToolCall, Tool: "wipe", Decision: audit.Deny, Outcome: audit.OutcomeDenied}, workers*calls/5)
			seen := map[string]bool{}
			for _, e := range events {
				if e.Kind == audit.KindToolCall {
					if seen[e.CallID] {
						t.Errorf("call %s recorded twice", e.CallID)
					}
					seen[e.CallID] = true
				}
			}
			if got := runs.Load(); got != workers*calls*4/5 {
				t.Errorf("tool ran %d times, want %d", got, workers*calls*4/5)
			}
		})
	}
}

// TestFileSinkFailureDenies makes the chained file fail for real: its next
// file already exists when it must rotate, so the record cannot be
// written. In strict mode (the default) the call that needed the record is
// denied and every later one too; the tool never runs unaudited.
func TestFileSinkFailureDenies(t *testing.T) {
	dir := t.TempDir()
	priv, _ := audittest.NewSigningKey(t)
	sink, err := audit.NewFileSink(dir, audit.WithSigningKey(priv), audit.WithMaxFileSize(1024))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Shutdown(context.Background())
	// The file rotation will create, made beforehand: the sink refuses to
	// write into a file it did not create.
	if err := os.WriteFile(filepath.Join(dir, "audit-000002.jsonl"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(agentguardtest.AgentID))),
		agentguard.WithPolicy(policytest.AllowAll()),
		agentguard.WithAudit(sink),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	var runs atomic.Int64
	tool := counted("lookup", &runs)
	ctx := context.Background()
	var denied error
	ran := int64(0)
	for i := range 50 {
		before := runs.Load()
		_, err := g.Invoke(ctx, tool, agentguard.Call{ID: fmt.Sprint("c-", i), Name: "lookup", Args: []byte(`{}`)})
		if err != nil {
			denied = err
			ran = before
			break
		}
	}
	if denied == nil {
		t.Fatal("50 calls succeeded although the audit file could not rotate")
	}
	if !errors.Is(denied, agentguard.ErrAudit) || !errors.Is(denied, agentguard.ErrDenied) {
		t.Fatalf("err = %v, want ErrDenied wrapping ErrAudit", denied)
	}
	if !errors.Is(denied, audit.ErrSinkFailed) {
		t.Errorf("err = %v, want it to wrap audit.ErrSinkFailed", denied)
	}
	// Every later call is refused before its tool runs.
	for i := range 3 {
		if _, err := g.Invoke(ctx, tool, agentguard.Call{ID: fmt.Sprint("after-", i), Name: "lookup", Args: []byte(`{}`)}); !errors.Is(err, agentguard.ErrAudit) {
			t.Fatalf("call after the failure: err = %v, want ErrAudit", err)
		}
	}
	if runs.Load() > ran+1 {
		t.Errorf("tool ran %d times after the sink failed", runs.Load()-ran)
	}
	if sink.Err() == nil {
		t.Error("sink.Err() = nil after a failed rotation")
	}
}

// TestTeeOfFailedFileSinkDenies: a program that ignored NewFileSink's error
// hands Tee a nil *FileSink. In strict mode its calls are denied, never run
// with the file's copy of the trail missing.
func TestTeeOfFailedFileSinkDenies(t *testing.T) {
	file, err := audit.NewFileSink(t.TempDir()) // no signing key: refused
	if err == nil {
		t.Fatal("NewFileSink without a key or WithoutSigning succeeded")
	}
	rec := audittest.NewRecorder()
	g, err := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse(agentguardtest.AgentID))),
		agentguard.WithPolicy(policytest.AllowAll()),
		agentguard.WithAudit(audit.Tee(file, rec)),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	var runs atomic.Int64
	_, err = g.Invoke(context.Background(), counted("lookup", &runs), agentguard.Call{Name: "lookup", Args: []byte(`{}`)})
	if !errors.Is(err, agentguard.ErrAudit) || !errors.Is(err, audit.ErrNilSink) {
		t.Fatalf("err = %v, want ErrAudit wrapping audit.ErrNilSink", err)
	}
	if runs.Load() != 0 {
		t.Error("the tool ran although its audit trail was half gone")
	}
}
