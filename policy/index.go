package policy

import (
	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// index selects, for a request, the policies whose scope can match it.
// (Placeholder: selects every policy.)
type index struct {
	ps *cedar.PolicySet
}

func newIndex(ps *cedar.PolicySet) *index { return &index{ps: ps} }

// policies returns the policies whose scope can match a request for
// principal, action and resource, given the entities.
func (ix *index) policies(ents types.EntityGetter, principal, action, resource cedar.EntityUID) cedar.PolicyIterator {
	return ix.ps
}

// authorize is cedar.Authorize over the policies whose scope can match req:
// the same decision and diagnostic as over the whole set.
func (ix *index) authorize(ents types.EntityGetter, req cedar.Request) (cedar.Decision, cedar.Diagnostic) {
	return cedar.Authorize(ix.policies(ents, req.Principal, req.Action, req.Resource), ents, req)
}
