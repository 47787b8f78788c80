// Package policytest has fake policy engines for agents' unit tests, and
// runs scenario files that test real policies.
//
// For agent authors, the fakes unit-test agents without writing Cedar: allow
// everything, deny everything, decide with a function, or decide with a
// table of rules. Every fake records the requests it saw, so a test can
// assert what policy was asked.
//
// For those who write policy, it runs scenario files from go test: each
// scenario is one question to a real engine and the answer expected.
//
//	func TestPolicies(t *testing.T) {
//		set, _ := policy.LoadFiles("policies/support.cedar")
//		engine, _ := policy.NewCedarEngine(set, policy.WithAgentGroups(groups))
//		report := policytest.RunFiles(t, engine, "policies/*_test.json")
//		report.RequireCoverage(t, set) // every policy decides some scenario
//	}
//
// Each file is a subtest, and each scenario a subtest of its file. A
// scenario file is JSON (not YAML: this module takes no YAML dependency);
// an unknown field, a repeated key, an undeclared tool or a scenario without
// an expected decision is an error that names the file, line and scenario,
// so that a typo cannot make a scenario pass unchecked:
//
//	{
//	  "description": "Refund policies.",
//	  "tools": {
//	    "issue_refund": {"toolset": "payments", "risk": "high", "labels": ["money"],
//	                     "read_only": false, "destructive": true, "idempotent": false, "open_world": false}
//	  },
//	  "defaults": {
//	    "principal": "spiffe://example.org/agent/support-bot",
//	    "task": {"id": "t-1", "purpose": "resolve a ticket", "sensitivity": "internal"}
//	  },
//	  "scenarios": [
//	    {
//	      "name": "small refund allowed",
//	      "description": "Why this case matters.",
//	      "tool": "issue_refund",
//	      "args": {"order": "O-1", "amount": 40},
//	      "expect": {"decision": "allow", "policies": ["support-refunds"], "obligations": []}
//	    },
//	    {
//	      "name": "big refund denied",
//	      "tool": "issue_refund",
//	      "args": {"order": "O-1", "amount": 250},
//	      "task": {"taint": ["pii"]},
//	      "expect": {"decision": "deny", "policies": ["refund-limit"], "reason_contains": "need a human"}
//	    }
//	  ]
//	}
//
// A tool's risk is low, medium, high, critical or 0 to 3. The defaults give
// a principal, chain, task and time to every scenario that gives none; a
// scenario's task takes each field it leaves out from the default task.
//
// A scenario has a name and an expectation, and asks about a call of a
// declared tool with args (canonicalised as the guard does; an object),
// or, with "action", about a governance action: "delegate" to the agent
// "delegatee", or "change_toolset" or "change_prompt" of a tool (declared
// or not). It may give "principal" and "chain" (SPIFFE IDs, root of the
// chain first), "task" (id, purpose, sensitivity as public, internal,
// confidential, restricted or 0 to 3, labels, on_behalf_of, calls,
// tool_calls, calls_last_minute, tools_used, taint), "approval" (granted, approvers), "time" (RFC 3339;
// by default 2026-01-01T00:00:00Z, so that scenarios are reproducible) and
// "call_id". With "listing": true it asks whether the tool is listed, and
// may not give args or approval.
//
// "expect" needs "decision", "allow" or "deny". "policies", when given, are
// the deciding policies, compared as a set ([] expects a deny by no
// policy); "obligations" ({"name", "value", optional "policy"}) likewise;
// "reason_contains" must occur in the reason. Any evaluation error fails a
// scenario unless it sets "errors": true, since an error denies and a
// scenario expecting a deny would otherwise pass for the wrong reason.
//
// A scenario asks the engine only. The guard asks more: for a call by a
// sub-agent it also asks about each agent of the delegation chain; write a
// scenario for each of those questions.
//
// Check compares one scenario's decision with its expectation without
// failing a test; Run and RunFiles fail subtests with its messages.
package policytest

import (
	"context"
	"slices"
	"sync"

	"github.com/agentguard/go-sdk/policy"
)

// Recorder wraps an engine and records every request it decides. It is
// safe for concurrent use.
type Recorder struct {
	engine policy.Engine
	mu     sync.Mutex
	reqs   []policy.Request
}

var _ policy.Engine = (*Recorder)(nil)

// Record returns a recorder around e.
func Record(e policy.Engine) *Recorder { return &Recorder{engine: e} }

// Decide records req and asks the wrapped engine.
func (r *Recorder) Decide(ctx context.Context, req *policy.Request) (policy.Decision, error) {
	c := *req
	c.Args = slices.Clone(req.Args)
	r.mu.Lock()
	r.reqs = append(r.reqs, c)
	r.mu.Unlock()
	return r.engine.Decide(ctx, req)
}

// Requests returns the requests seen so far, oldest first, listings included.
func (r *Recorder) Requests() []policy.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// Calls returns the requests for calls (not listings), oldest first.
func (r *Recorder) Calls() []policy.Request {
	var out []policy.Request
	for _, q := range r.Requests() {
		if !q.Listing {
			out = append(out, q)
		}
	}
	return out
}

// AllowAll returns an engine that allows every call, decided by the policy
// "allow-all". It is for tests that are not about policy.
func AllowAll() *Recorder {
	return Func(func(*policy.Request) policy.Decision {
		return policy.Decision{Allowed: true, Policies: []string{"allow-all"}}
	})
}

// DenyAll returns an engine that denies every call with reason, decided by
// the policy "deny-all".
func DenyAll(reason string) *Recorder {
	return Func(func(*policy.Request) policy.Decision {
		return policy.Decision{Policies: []string{"deny-all"}, Reason: reason}
	})
}

// Func returns an engine that decides with f.
func Func(f func(*policy.Request) policy.Decision) *Recorder {
	return Record(policy.EngineFunc(func(ctx context.Context, req *policy.Request) (policy.Decision, error) {
		if err := ctx.Err(); err != nil {
			return policy.Decision{}, err
		}
		return f(req), nil
	}))
}

// Effect is a rule's effect.
type Effect int

// Rule effects.
const (
	Allow Effect = iota
	Deny
)

// Rule is one row of a rule table.
type Rule struct {
	// ID names the rule in decisions, as a Cedar @id would.
	ID     string
	Effect Effect
	// Agent is the SPIFFE ID the rule applies to; empty matches every agent.
	Agent string
	// Tool is the tool name the rule applies to; empty matches every tool.
	Tool string
	// When further restricts the rule; nil matches. In a listing (Args
	// unknown) an Allow rule's When is taken to match and a Deny rule with a
	// When is taken not to, as the Cedar engine does with conditions.
	When func(req *policy.Request) bool
	// Reason is the denial's reason for a Deny rule.
	Reason string
	// Approval, on an Allow rule, adds an @approval obligation of that kind.
	Approval string
}

// Rules decides with a table, with Cedar's semantics: a matching Deny wins,
// else a matching Allow allows, else the call is denied.
type Rules struct {
	*Recorder
}

// NewRules returns an engine over rules.
func NewRules(rules ...Rule) *Rules {
	rules = slices.Clone(rules)
	return &Rules{Record(policy.EngineFunc(func(ctx context.Context, req *policy.Request) (policy.Decision, error) {
		if err := ctx.Err(); err != nil {
			return policy.Decision{}, err
		}
		return decide(rules, req), nil
	}))}
}

func decide(rules []Rule, req *policy.Request) policy.Decision {
	var allows, denies []Rule
	for _, r := range rules {
		if r.Agent != "" && r.Agent != req.Agent.ID.String() {
			continue
		}
		if r.Tool != "" && r.Tool != req.ActionName() {
			continue
		}
		if r.When != nil {
			if req.Listing {
				if r.Effect == Deny {
					continue
				}
			} else if !r.When(req) {
				continue
			}
		}
		if r.Effect == Deny {
			denies = append(denies, r)
		} else {
			allows = append(allows, r)
		}
	}
	var d policy.Decision
	switch {
	case len(denies) > 0:
		for _, r := range denies {
			d.Policies = append(d.Policies, r.ID)
			if d.Reason == "" {
				d.Reason = r.Reason
			}
		}
		if d.Reason == "" {
			d.Reason = "forbidden by " + denies[0].ID
		}
	case len(allows) > 0:
		d.Allowed = true
		for _, r := range allows {
			d.Policies = append(d.Policies, r.ID)
			if r.Approval != "" {
				d.Obligations = append(d.Obligations, policy.Obligation{Name: policy.ObligationApproval, Value: r.Approval, PolicyID: r.ID})
			}
		}
	default:
		d.Reason = "no rule allows this call"
	}
	return d
}
