package agentguard_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// TestComponentPanicDenies: a panic in a component the guard calls denies
// the call at that step, never runs the tool, and is audited.
func TestComponentPanicDenies(t *testing.T) {
	tests := []struct {
		name string
		opts []agentguard.Option
		step string
	}{
		{"identity source", []agentguard.Option{agentguard.WithIdentity(identity.SourceFunc(
			func(context.Context) (identity.Identity, error) { panic("source exploded") }))}, agentguard.StepIdentify},
		{"policy engine", []agentguard.Option{agentguard.WithPolicy(policy.EngineFunc(
			func(context.Context, *policy.Request) (policy.Decision, error) { panic("engine exploded") }))}, agentguard.StepAuthorize},
		{"integrity", []agentguard.Option{agentguard.WithIntegrity(agentguard.IntegrityFunc(
			func(context.Context, *agentguard.Tool) error { panic("integrity exploded") }))}, agentguard.StepIntegrity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := agentguardtest.New(t, nil, "v", tt.opts...)
			var runs atomic.Int64
			_, err := env.Guard.Invoke(context.Background(), counted("t", &runs), agentguard.Call{})
			var de *agentguard.DenyError
			if !errors.As(err, &de) || !errors.Is(err, agentguard.ErrInternal) || de.Step != tt.step {
				t.Fatalf("err = %v, want an ErrInternal denial at %s", err, tt.step)
			}
			if runs.Load() != 0 {
				t.Error("tool ran")
			}
			if evs := env.Audit.Kind(audit.KindToolCall); len(evs) != 1 || evs[0].Step != tt.step || evs[0].Decision != audit.Deny {
				t.Errorf("audit = %+v", evs)
			}
		})
	}
}

// TestSinkPanicDenies: a sink that panics is treated
// like a failing one in strict mode: the call fails, and the guard does not
// try to write the record a second time.
func TestSinkPanicDenies(t *testing.T) {
	var writes atomic.Int64
	sink := audit.SinkFunc(func(_ context.Context, e audit.Event) error {
		if e.Kind == audit.KindToolCall { // not the record of the pin on first use
			writes.Add(1)
		}
		panic("sink exploded")
	})
	env := agentguardtest.New(t, nil, "v", agentguard.WithAudit(sink))
	var runs atomic.Int64
	_, err := env.Guard.Invoke(context.Background(), counted("t", &runs), agentguard.Call{})
	if !errors.Is(err, agentguard.ErrInternal) {
		t.Fatalf("err = %v, want ErrInternal", err)
	}
	if writes.Load() != 1 {
		t.Errorf("sink called %d times, want 1", writes.Load())
	}
}

func TestDuplicateOpenTaskIDRefused(t *testing.T) {
	env := agentguardtest.New(t, nil, "v")
	_, task, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "same"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "same"}); err == nil {
		t.Fatal("a second open task with the same ID started")
	}
	if err := task.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, again, err := env.Guard.StartTask(context.Background(), agentguard.TaskSpec{ID: "same"})
	if err != nil {
		t.Fatalf("reusing the ID of an ended task: %v", err)
	}
	_ = again.End(context.Background())
}

func TestLookupReturnsCopy(t *testing.T) {
	env := agentguardtest.New(t, nil, "v")
	reg := env.Guard.NewRegistry("x")
	var runs atomic.Int64
	orig := counted("t", &runs)
	orig.Labels = []string{"internal"}
	if err := reg.Register(orig); err != nil {
		t.Fatal(err)
	}
	orig.Labels[0] = "changed-after-register"
	got, _ := reg.Lookup("t")
	got.Labels[0] = "changed-after-lookup"
	got.Risk = agentguard.RiskCritical
	again, _ := reg.Lookup("t")
	if again.Labels[0] != "internal" || again.Risk != agentguard.RiskLow {
		t.Errorf("registered tool changed from outside: %+v", again)
	}
}
