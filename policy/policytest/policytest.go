// Package policytest has fake policy engines for unit-testing agents without
// writing Cedar: allow everything, deny everything, decide with a function,
// or decide with a table of rules. Every fake records the requests it saw,
// so a test can assert what policy was asked.
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
