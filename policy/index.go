package policy

import (
	"iter"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"
)

// index selects, for a request, the policies whose scope can match it, so
// that a request evaluates a handful of policies rather than the whole set.
//
// Every policy is filed under the keys of one scope slot (principal, action
// or resource), or in the wildcard list if its scope constrains nothing. A
// key is an entity (the target of ==, in, is … in, or each member of an
// action's in [...]) or an entity type (the target of is, or of is … in).
// A policy has one key, except for an action's in [...], filed under each
// member. Of the slots (and, for is … in, of the type and the entity) a
// policy could be filed under, it goes under the one whose keys are shared
// by the fewest policies of the set.
//
// For a request, each slot looks up every entity its request entity is in
// (itself and its ancestors, as Cedar's `in` sees them) and the entity's
// type; the candidates are those lists and the wildcards, in policy ID order
// without duplicates.
//
// This is exact: a policy whose scope cannot match evaluates to false
// without error (Cedar evaluates the scope first and stops there), so
// leaving it out changes neither the decision nor the diagnostic. A policy
// is only ever filed under a key its scope requires, so every policy whose
// scope matches is a candidate; the converse need not hold (== is filed like
// in), which is safe because Cedar checks the scope again.
type index struct {
	entries []indexEntry // every policy, in ID order; candidates are positions here

	entityKeys [numSlots]map[cedar.EntityUID][]int32  // per slot, in entries order
	typeKeys   [numSlots]map[cedar.EntityType][]int32 // per slot, in entries order
	wild       []int32                                // policies with no key
}

type indexEntry struct {
	id cedar.PolicyID
	p  *cedar.Policy
}

type slot uint8

const (
	slotPrincipal slot = iota
	slotAction
	slotResource
	numSlots
)

// indexKey is one key of one slot: an entity, or (isType) an entity type.
type indexKey struct {
	slot   slot
	isType bool
	uid    cedar.EntityUID // for a type key, only uid.Type is set
}

// alternative is one way to file a policy: under every one of its keys, of
// which a request the policy's scope matches reaches at least one (more than
// one key only for an action's in [...]).
type alternative []indexKey

func newIndex(ps *cedar.PolicySet) *index {
	ix := &index{}
	for id, p := range ps.All() {
		ix.entries = append(ix.entries, indexEntry{id: id, p: p})
	}
	slices.SortFunc(ix.entries, func(a, b indexEntry) int { return strings.Compare(string(a.id), string(b.id)) })

	alts := make([][]alternative, len(ix.entries))
	count := map[indexKey]int{}
	for i, e := range ix.entries {
		alts[i] = scopeAlternatives((*ast.Policy)(e.p.AST()))
		for _, alt := range alts[i] {
			for _, k := range alt {
				count[k]++
			}
		}
	}
	// File each policy under its most selective alternative: the one whose
	// keys are shared by the fewest policies.
	for i, as := range alts {
		best, bestCost := -1, 0
		for j, alt := range as {
			cost := 0
			for _, k := range alt {
				cost += count[k]
			}
			if best < 0 || cost < bestCost {
				best, bestCost = j, cost
			}
		}
		if best < 0 {
			ix.wild = append(ix.wild, int32(i))
			continue
		}
		for _, k := range as[best] {
			ix.file(k, int32(i))
		}
	}
	return ix
}

func (ix *index) file(k indexKey, i int32) {
	if k.isType {
		m := ix.typeKeys[k.slot]
		if m == nil {
			m = map[cedar.EntityType][]int32{}
			ix.typeKeys[k.slot] = m
		}
		if l := m[k.uid.Type]; len(l) == 0 || l[len(l)-1] != i {
			m[k.uid.Type] = append(l, i)
		}
		return
	}
	m := ix.entityKeys[k.slot]
	if m == nil {
		m = map[cedar.EntityUID][]int32{}
		ix.entityKeys[k.slot] = m
	}
	if l := m[k.uid]; len(l) == 0 || l[len(l)-1] != i {
		m[k.uid] = append(l, i)
	}
}

// scopeAlternatives lists the ways p can be filed. None means p must be a
// wildcard: its scope constrains nothing, or in a way the index does not
// know.
func scopeAlternatives(p *ast.Policy) []alternative {
	var alts []alternative
	add := func(s slot, n ast.IsScopeNode) {
		switch n := n.(type) {
		case ast.ScopeTypeEq:
			alts = append(alts, alternative{{slot: s, uid: n.Entity}})
		case ast.ScopeTypeIn:
			alts = append(alts, alternative{{slot: s, uid: n.Entity}})
		case ast.ScopeTypeIs:
			alts = append(alts, alternative{{slot: s, isType: true, uid: cedar.EntityUID{Type: n.Type}}})
		case ast.ScopeTypeIsIn:
			alts = append(alts,
				alternative{{slot: s, isType: true, uid: cedar.EntityUID{Type: n.Type}}},
				alternative{{slot: s, uid: n.Entity}})
		case ast.ScopeTypeInSet:
			// `in []` never matches, but filing it as a wildcard is safe.
			if len(n.Entities) > 0 {
				alt := make(alternative, 0, len(n.Entities))
				for _, e := range n.Entities {
					if !slices.Contains(alt, indexKey{slot: s, uid: e}) {
						alt = append(alt, indexKey{slot: s, uid: e})
					}
				}
				alts = append(alts, alt)
			}
		}
		// ScopeTypeAll, and any scope type unknown here: no alternative.
	}
	add(slotPrincipal, p.Principal)
	add(slotAction, p.Action)
	add(slotResource, p.Resource)
	return alts
}

// maxStackAncestors is how many ancestors a request entity may have before
// they spill from the stack to the heap.
const maxStackAncestors = 16

// candidates returns, in index order and without duplicates, the positions
// of the policies whose scope can match the request. It appends to buf.
func (ix *index) candidates(buf []int32, ents types.EntityGetter, uids *[numSlots]cedar.EntityUID) []int32 {
	out := buf
	sources := 0
	var anc [maxStackAncestors]cedar.EntityUID
	for s := range numSlots {
		uid := uids[s]
		if m := ix.typeKeys[s]; len(m) > 0 {
			if l := m[uid.Type]; len(l) > 0 {
				out = append(out, l...)
				sources++
			}
		}
		m := ix.entityKeys[s]
		if len(m) == 0 {
			continue
		}
		for _, a := range ancestors(ents, uid, anc[:0]) {
			if l := m[a]; len(l) > 0 {
				out = append(out, l...)
				sources++
			}
		}
	}
	if len(ix.wild) > 0 {
		out = append(out, ix.wild...)
		sources++
	}
	if sources > 1 {
		slices.Sort(out)
		out = slices.Compact(out)
	}
	return out
}

// ancestors appends to buf every entity uid is `in` as Cedar evaluates it
// (entityInOne and entityInSet in cedar-go's evaluator): uid itself, the
// parents of uid if it is in the store (whether or not they are), and so on
// transitively through the parents that are in the store. An entity absent
// from the store is in itself only. Each entity appears once.
func ancestors(ents types.EntityGetter, uid cedar.EntityUID, buf []cedar.EntityUID) []cedar.EntityUID {
	out := append(buf, uid)
	if ents == nil {
		return out
	}
	var seen map[cedar.EntityUID]struct{} // once out is too long to search
	for i := 0; i < len(out); i++ {
		e, ok := ents.Get(out[i])
		if !ok || e.Parents.Len() == 0 {
			continue
		}
		for p := range e.Parents.All() {
			if seen != nil {
				if _, dup := seen[p]; dup {
					continue
				}
				seen[p] = struct{}{}
			} else {
				if slices.Contains(out, p) {
					continue
				}
				if len(out) >= 32 {
					seen = make(map[cedar.EntityUID]struct{}, 2*len(out))
					for _, a := range out {
						seen[a] = struct{}{}
					}
					seen[p] = struct{}{}
				}
			}
			out = append(out, p)
		}
	}
	return out
}

// candidateSet is a cedar.PolicyIterator over some of an index's policies.
type candidateSet struct {
	ix  *index
	pos []int32
	buf [16]int32
}

// All yields the candidates in index (policy ID) order.
func (c *candidateSet) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, i := range c.pos {
			e := &c.ix.entries[i]
			if !yield(e.id, e.p) {
				return
			}
		}
	}
}

// policies returns the policies whose scope can match a request for
// principal, action and resource, given the entities.
func (ix *index) policies(ents types.EntityGetter, principal, action, resource cedar.EntityUID) cedar.PolicyIterator {
	c := &candidateSet{ix: ix}
	uids := [numSlots]cedar.EntityUID{principal, action, resource}
	c.pos = ix.candidates(c.buf[:0], ents, &uids)
	return c
}

// authorize is cedar.Authorize over the policies whose scope can match req:
// the same decision and diagnostic as over the whole set.
func (ix *index) authorize(ents types.EntityGetter, req cedar.Request) (cedar.Decision, cedar.Diagnostic) {
	return cedar.Authorize(ix.policies(ents, req.Principal, req.Action, req.Resource), ents, req)
}
