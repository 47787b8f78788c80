package policy_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// Regression tests from the review of the policy engine: each is a way a
// call was allowed that the enforced policies, seeing what the tool gets,
// would deny.

func reviewEngine(t *testing.T, text string, opts ...policy.CedarOption) *policy.CedarEngine {
	t.Helper()
	e, err := policy.NewCedarEngine(policy.MustParseSet("review.cedar", text), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func reviewDecide(t *testing.T, e *policy.CedarEngine, req *policy.Request) policy.Decision {
	t.Helper()
	if req.Agent.IsZero() {
		req.Agent = identity.MustParse("spiffe://example.org/agent/a")
	}
	if req.Tool.Name == "" {
		req.Tool = policy.Tool{Name: "refund"}
	}
	if req.Args == nil {
		req.Args = json.RawMessage(`{}`)
	}
	req.Time = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	d, err := e.Decide(context.Background(), req)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return d
}

// The context caches sets by a key: {"public\x00secret"} and {"public",
// "secret"} must not share one, or the second task is judged on the first
// task's taint, and the forbid on "secret" does not fire.
func TestTaintSetCacheKeysDistinct(t *testing.T) {
	e := reviewEngine(t, `
@id("allow") permit(principal, action, resource);
@id("no-secret") forbid(principal, action, resource) when { context.task.taint.contains("secret") };
`)
	// Another task, whose one taint label happens to contain a NUL.
	reviewDecide(t, e, &policy.Request{Task: policy.Task{ID: "t1", Taint: []string{"public\x00secret"}}})

	d := reviewDecide(t, e, &policy.Request{Task: policy.Task{ID: "t2", Taint: []string{"public", "secret"}}})
	if d.Allowed {
		t.Fatalf("task tainted \"secret\" allowed (policy saw another task's cached taint set): %+v", d)
	}
}

// The context caches delegation records by a key: an undelegated task on
// behalf of "alice\x00spiffe://…/parent" and a task of alice delegated
// through parent must not share one, or the delegated call is judged with
// depth 0.
func TestDelegationCacheKeysDistinct(t *testing.T) {
	e := reviewEngine(t, `
@id("allow") permit(principal, action, resource);
@id("no-delegated") forbid(principal, action, resource) when { context.delegation.depth > 0 };
`)
	parent := identity.MustParse("spiffe://example.org/agent/parent")
	reviewDecide(t, e, &policy.Request{Task: policy.Task{ID: "t1", OnBehalfOf: "alice\x00" + parent.ID.String()}})

	sub := identity.MustParse("spiffe://example.org/agent/sub")
	sub.Chain = append(sub.Chain, parent.ID)
	d := reviewDecide(t, e, &policy.Request{Agent: sub, Task: policy.Task{ID: "t2", OnBehalfOf: "alice"}})
	if d.Allowed {
		t.Fatalf("delegated call allowed although a forbid denies depth > 0 (cached depth-0 record reused): %+v", d)
	}
}

// With a schema, an argument whose key differs from a declared property only
// in case would escape a forbid on the declared property, while a Go tool
// decoding with encoding/json matches keys without regard to case and acts
// on it: the schema conversion refuses such a key.
func TestSchemaCaseVariantKeyRefused(t *testing.T) {
	s, err := policy.NewSchema(policy.Tool{Name: "read_file", InputSchema: json.RawMessage(
		`{"type":"object","properties":{"path":{"type":"string"}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	e := reviewEngine(t, `
@id("allow") permit(principal, action == Action::"read_file", resource);
@id("no-etc") forbid(principal, action == Action::"read_file", resource)
when { context.args has path && context.args.path like "/etc/*" };
`, policy.WithSchema(s))
	args := json.RawMessage(`{"PATH":"/etc/shadow"}`)

	// What a Go tool gets.
	var in struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal(args, &in); err != nil || in.Path != "/etc/shadow" {
		t.Fatalf("tool would read %q, %v", in.Path, err)
	}
	// A lower-case key is denied, as it should be.
	if d := reviewDecide(t, e, &policy.Request{Tool: policy.Tool{Name: "read_file"}, Args: json.RawMessage(`{"path":"/etc/shadow"}`)}); d.Allowed {
		t.Fatalf("path /etc/shadow allowed: %+v", d)
	}
	// The case variant is refused: the engine cannot decide, so the guard
	// denies the call.
	req := &policy.Request{Agent: identity.MustParse("spiffe://example.org/agent/a"), Tool: policy.Tool{Name: "read_file"}, Args: args}
	d, err := e.Decide(context.Background(), req)
	if err == nil && d.Allowed {
		t.Fatalf("args %s allowed by %v: policy did not see the path the tool reads (%q)", args, d.Policies, in.Path)
	}
	if err == nil || !strings.Contains(err.Error(), "PATH") {
		t.Fatalf("Decide = %+v, %v; want an error naming PATH", d, err)
	}
}

// With a schema, `context.args has force` on a property the input schema
// does not declare (additionalProperties defaults to true, so the tool
// accepts it) passes strict validation (Cedar's validator types it False);
// the property is kept, untyped, so the forbid still fires, as it does
// without a schema.
func TestSchemaForbidOnUndeclaredArgFires(t *testing.T) {
	s, err := policy.NewSchema(policy.Tool{Name: "deploy", InputSchema: json.RawMessage(
		`{"type":"object","properties":{"env":{"type":"string"}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	const text = `
@id("allow") permit(principal, action == Action::"deploy", resource);
@id("no-force") forbid(principal, action == Action::"deploy", resource) when { context.args has force };
`
	req := func() *policy.Request {
		return &policy.Request{Tool: policy.Tool{Name: "deploy"}, Args: json.RawMessage(`{"env":"prod","force":true}`)}
	}
	if d := reviewDecide(t, reviewEngine(t, text), req()); d.Allowed {
		t.Fatalf("untyped engine allowed a forced deploy: %+v", d)
	}
	e, err := policy.NewCedarEngine(policy.MustParseSet("review.cedar", text), policy.WithSchema(s))
	if err != nil {
		return // refused at load: fine
	}
	if d := reviewDecide(t, e, req()); d.Allowed {
		t.Fatalf("typed engine loaded the forbid on an undeclared argument and then allowed a forced deploy: %+v", d)
	}
}
