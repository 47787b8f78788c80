package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/batch"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/internal/canonical"
)

// Entity types of the Cedar model.
const (
	TypeAgent       = cedar.EntityType("Agent")
	TypeAgentGroup  = cedar.EntityType("AgentGroup")
	TypeTrustDomain = cedar.EntityType("TrustDomain")
	TypeAction      = cedar.EntityType("Action")
	TypeTool        = cedar.EntityType("Tool")
	TypeToolset     = cedar.EntityType("Toolset")
)

// informational annotations are never obligations.
var informational = map[string]bool{"id": true, "reason": true, "description": true, AnnotationLogOnly: true}

// CedarEngine is an Engine that evaluates a Set of Cedar policies. It is safe
// for concurrent use, including Swap and SetShadow during decisions: each
// decision uses one set from start to end.
type CedarEngine struct {
	cur         atomic.Pointer[Set]
	shadow      atomic.Pointer[Set]
	groups      func(spiffeid.ID) []string
	obligations map[string]bool
	schema      *Schema

	agents sync.Map // SPIFFE ID string -> cedar.Entity
	mu     sync.RWMutex
	tools  map[string]toolEntities // tool name -> entities, rebuilt if the tool changes

	naive bool // evaluate every policy, bypassing the scope index (benchmarks and tests)

	// Values of the context that repeat from call to call, built once:
	// sets of task labels, tools used and taint, and delegation records.
	// A value's key is unique within its cache: one element or the user
	// as is, several length-prefixed.
	sets, multiSets               valueCache
	delegations, delegationChains valueCache
}

// schemaArgs converts req's arguments to the types the schema gives them.
func (e *CedarEngine) schemaArgs(req *Request) (cedar.Value, error) {
	v, err := canonical.Parse(req.Args)
	if err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errNotObject
	}
	return e.schema.args(req.ActionName(), v)
}

// noApproval is context.approval before any approval.
var noApproval = cedar.NewRecord(cedar.RecordMap{"granted": cedar.False, "approvers": cedar.NewSet()})

// delegation is context.delegation of req: the chain and the user.
func (e *CedarEngine) delegation(req *Request) cedar.Value {
	chain := req.Agent.Chain
	key := req.Task.OnBehalfOf
	if len(chain) > 0 {
		// Each part length-prefixed, so that no two requests share a key.
		var b strings.Builder
		writeKeyPart(&b, key)
		for _, c := range chain {
			writeKeyPart(&b, c.String())
		}
		key = b.String()
	}
	cache := &e.delegations
	if len(chain) > 0 {
		cache = &e.delegationChains
	}
	if v, ok := cache.load(key); ok {
		return v
	}
	uids := make([]cedar.Value, len(chain))
	for i, c := range chain {
		uids[i] = cedar.NewEntityUID(TypeAgent, cedar.String(c.String()))
	}
	return cache.store(key, cedar.NewRecord(cedar.RecordMap{
		"depth":        cedar.Long(len(chain)),
		"chain":        cedar.NewSet(uids...),
		"on_behalf_of": cedar.String(req.Task.OnBehalfOf),
	}))
}

// valueCache memoizes immutable Cedar values by a string key, up to
// maxCached of them: beyond that, values are built each time, so that a
// stream of distinct values cannot grow memory without bound.
type valueCache struct {
	m sync.Map // string -> cedar.Value
	n atomic.Int64
}

const maxCached = 4096

func (c *valueCache) load(key string) (cedar.Value, bool) {
	v, ok := c.m.Load(key)
	if !ok {
		return nil, false
	}
	return v.(cedar.Value), true
}

// store keeps v for key, while the cache has room, and returns it.
func (c *valueCache) store(key string, v cedar.Value) cedar.Value {
	if c.n.Load() < maxCached {
		if _, loaded := c.m.LoadOrStore(key, v); !loaded {
			c.n.Add(1)
		}
	}
	return v
}

var emptySet = cedar.NewSet()

// stringSet is the set of ss, from sets (one element) or multiSets.
func (e *CedarEngine) stringSet(ss []string) cedar.Value {
	switch len(ss) {
	case 0:
		return emptySet
	case 1:
		if v, ok := e.sets.load(ss[0]); ok {
			return v
		}
		return e.sets.store(ss[0], stringSet(ss))
	}
	var b strings.Builder
	for _, s := range ss {
		writeKeyPart(&b, s)
	}
	key := b.String()
	if v, ok := e.multiSets.load(key); ok {
		return v
	}
	return e.multiSets.store(key, stringSet(ss))
}

// writeKeyPart writes s length-prefixed, so that a sequence of parts
// decodes one way only.
func writeKeyPart(b *strings.Builder, s string) {
	b.WriteString(strconv.Itoa(len(s)))
	b.WriteByte(':')
	b.WriteString(s)
}

type toolEntities struct {
	tool     Tool
	action   cedar.Entity
	resource cedar.Entity
}

var _ Engine = (*CedarEngine)(nil)

// CedarOption configures a CedarEngine.
type CedarOption func(*CedarEngine)

// WithGroups sets the function that names the AgentGroups an agent belongs
// to. It is called once per agent; the result is cached.
func WithGroups(f func(spiffeid.ID) []string) CedarOption {
	return func(e *CedarEngine) { e.groups = f }
}

// WithAgentGroups sets agents' groups from a map of SPIFFE ID to group names.
func WithAgentGroups(m map[string][]string) CedarOption {
	m2 := make(map[string][]string, len(m))
	for k, v := range m {
		m2[k] = slices.Clone(v)
	}
	return WithGroups(func(id spiffeid.ID) []string { return m2[id.String()] })
}

// WithObligations adds annotation names that, on a deciding permit policy,
// become obligations. "approval" is always one.
func WithObligations(names ...string) CedarOption {
	return func(e *CedarEngine) {
		for _, n := range names {
			if !informational[n] {
				e.obligations[n] = true
			}
		}
	}
}

// NewCedarEngine returns an engine over set.
func NewCedarEngine(set *Set, opts ...CedarOption) (*CedarEngine, error) {
	if set == nil {
		return nil, errors.New("policy: nil policy set")
	}
	e := &CedarEngine{
		groups:      func(spiffeid.ID) []string { return nil },
		obligations: map[string]bool{ObligationApproval: true},
		tools:       map[string]toolEntities{},
	}
	for _, o := range opts {
		o(e)
	}
	if err := e.check(set); err != nil {
		return nil, err
	}
	e.cur.Store(set)
	if sh := e.shadow.Load(); sh != nil {
		if err := e.check(sh); err != nil {
			return nil, fmt.Errorf("policy: shadow set: %w", err)
		}
	}
	return e, nil
}

// WithShadow sets a shadow policy set, as SetShadow does.
func WithShadow(set *Set) CedarOption {
	return func(e *CedarEngine) { e.shadow.Store(set) }
}

// check validates set against the engine's schema, if it has one.
func (e *CedarEngine) check(set *Set) error {
	if e.schema == nil {
		return nil
	}
	return set.Validate(e.schema)
}

// Set returns the policy set the engine enforces now.
func (e *CedarEngine) Set() *Set { return e.cur.Load() }

// Shadow returns the shadow policy set, or nil.
func (e *CedarEngine) Shadow() *Set { return e.shadow.Load() }

// Swap validates set against the engine's schema and, if it is valid, makes
// it the enforced set, atomically: each decision uses either the old set or
// the new one, never a mix. It returns the set it replaced. An invalid set
// is an error and changes nothing.
func (e *CedarEngine) Swap(set *Set) (old *Set, err error) {
	if set == nil {
		return nil, errors.New("policy: nil policy set")
	}
	if err := e.check(set); err != nil {
		return nil, err
	}
	return e.cur.Swap(set), nil
}

// SetShadow sets a shadow policy set, or removes it with nil. A shadow set
// is evaluated beside the enforced one for every call (not for listings)
// and never enforced: where its decision differs, the Decision's Shadow
// says what it would have decided. Use it to try a new version of the
// policies on real traffic before swapping it in. The shadow set is
// validated like an enforced one.
func (e *CedarEngine) SetShadow(set *Set) error {
	if set != nil {
		if err := e.check(set); err != nil {
			return fmt.Errorf("policy: shadow set: %w", err)
		}
	}
	e.shadow.Store(set)
	return nil
}

// Decide evaluates req against the enforced policies of the set whose scope
// can match it (which decides exactly as evaluating them all would).
//
// The policies annotated @log_only are not enforced; where adding them would
// change the decision, the Decision's Shadow has an entry of mode "log_only"
// with what they would have decided. Likewise an entry of mode "shadow"
// records where the shadow set (SetShadow) would decide differently.
func (e *CedarEngine) Decide(ctx context.Context, req *Request) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	if req.Agent.IsZero() {
		return Decision{}, errors.New("policy: request has no agent")
	}
	switch {
	case req.Action == ActionDelegate && req.Delegatee.IsZero():
		return Decision{}, errors.New("policy: delegation request names no delegatee")
	case req.Action != ActionDelegate && req.Action != ActionChangePrompt && req.Tool.Name == "":
		return Decision{}, errors.New("policy: request has no tool")
	}
	ents := e.entities(req)
	defer ents.release()
	creq := cedar.Request{
		Principal: ents.agent.UID,
		Action:    ents.action.UID,
		Resource:  ents.resource.UID,
	}
	set := e.cur.Load()
	if req.Listing {
		rec, err := e.contextRecord(req, true)
		if err != nil {
			return Decision{}, err
		}
		creq.Context = rec
		return e.decideListing(ctx, set, ents, creq)
	}
	rec, err := e.contextRecord(req, false)
	if err != nil {
		return Decision{}, err
	}
	creq.Context = rec
	out := e.evaluate(set, set.live, set.livePS, ents, creq)
	if len(set.logOnly) > 0 {
		all := e.evaluate(set, set.index, set.ps, ents, creq)
		if differs(out, all) {
			out.Shadow = append(out.Shadow, shadowOf(ShadowLogOnly, all))
		}
	}
	if sh := e.shadow.Load(); sh != nil {
		// What the shadow set would enforce: its own @log_only policies
		// stay out.
		sd := e.evaluate(sh, sh.live, sh.livePS, ents, creq)
		if differs(out, sd) {
			out.Shadow = append(out.Shadow, shadowOf(ShadowSet, sd))
		}
	}
	return out, nil
}

// evaluate decides creq over the policies of ix (or, for a naive engine,
// every policy of ps).
func (e *CedarEngine) evaluate(set *Set, ix *index, ps *cedar.PolicySet, ents *requestEntities, creq cedar.Request) Decision {
	var d cedar.Decision
	var diag cedar.Diagnostic
	if e.naive {
		d, diag = cedar.Authorize(ps, ents, creq)
	} else {
		d, diag = ix.authorize(ents, creq)
	}
	return e.decision(set, d, diag)
}

// differs reports whether a shadow decision b differs from the enforced a in
// what the guard would do: allow or deny, or the obligations.
func differs(a, b Decision) bool {
	return a.Allowed != b.Allowed || !slices.Equal(a.Obligations, b.Obligations)
}

func shadowOf(mode string, d Decision) ShadowDecision {
	return ShadowDecision{
		Mode: mode, Revision: d.Revision, Allowed: d.Allowed, Policies: d.Policies,
		Reason: d.Reason, Errors: d.Errors, Obligations: d.Obligations,
	}
}

// decideListing asks whether some arguments and approval could make the call
// allowed: with args and approval ignored, a permit whose conditions need them
// drops those conditions and a forbid that needs them is dropped.
func (e *CedarEngine) decideListing(ctx context.Context, set *Set, ents *requestEntities, creq cedar.Request) (Decision, error) {
	var out Decision
	found := false
	var policies cedar.PolicyIterator = set.livePS
	if !e.naive {
		policies = set.live.policies(ents, creq.Principal, creq.Action, creq.Resource)
	}
	err := batch.Authorize(ctx, policies, ents, batch.Request{
		Principal: creq.Principal,
		Action:    creq.Action,
		Resource:  creq.Resource,
		Context:   creq.Context,
	}, func(r batch.Result) error {
		found = true
		out = e.decision(set, r.Decision, r.Diagnostic)
		return nil
	})
	if err != nil {
		return Decision{}, fmt.Errorf("policy: listing: %w", err)
	}
	if !found {
		return Decision{}, errors.New("policy: listing: no result")
	}
	return out, nil
}

func (e *CedarEngine) decision(set *Set, d cedar.Decision, diag cedar.Diagnostic) Decision {
	out := Decision{Allowed: d == cedar.Allow, Revision: set.digest}
	for _, r := range diag.Reasons {
		out.Policies = append(out.Policies, string(r.PolicyID))
	}
	sort.Strings(out.Policies)
	for _, er := range diag.Errors {
		out.Errors = append(out.Errors, EvalError{PolicyID: string(er.PolicyID), Message: er.Message})
	}
	slices.SortFunc(out.Errors, func(a, b EvalError) int { return strings.Compare(a.PolicyID, b.PolicyID) })

	switch {
	case len(out.Errors) > 0:
		// Fail closed: an erroring policy might have been a forbid.
		out.Allowed = false
		ids := make([]string, len(out.Errors))
		for i, er := range out.Errors {
			ids[i] = er.PolicyID
		}
		if len(out.Policies) == 0 || d == cedar.Allow {
			out.Policies = ids
		}
		out.Reason = "policy evaluation error in " + strings.Join(ids, ", ")
		out.Obligations = nil
	case !out.Allowed && len(out.Policies) == 0:
		out.Reason = "no policy permits this call"
	case !out.Allowed:
		var reasons []string
		for _, id := range out.Policies {
			if r, ok := set.ps.Get(cedar.PolicyID(id)).Annotations()["reason"]; ok {
				reasons = append(reasons, string(r))
			}
		}
		if len(reasons) == 0 {
			out.Reason = "forbidden by " + strings.Join(out.Policies, ", ")
		} else {
			out.Reason = strings.Join(reasons, "; ")
		}
	default:
		var reasons []string
		for _, id := range out.Policies {
			anns := set.ps.Get(cedar.PolicyID(id)).Annotations()
			if r, ok := anns["reason"]; ok {
				reasons = append(reasons, string(r))
			}
			keys := make([]string, 0, len(anns))
			for k := range anns {
				if e.obligations[string(k)] {
					keys = append(keys, string(k))
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				out.Obligations = append(out.Obligations, Obligation{Name: k, Value: string(anns[types.AnnotationKey(k)]), PolicyID: id})
			}
		}
		// A permit's @reason says why it allows, or why it asks for
		// approval: the approver is shown it.
		out.Reason = strings.Join(reasons, "; ")
	}
	return out
}

// requestEntities is the entity store of one request: the agent, its
// delegation chain, the action and the tool. Each is built once per agent or
// tool and reused; a request only assembles them.
type requestEntities struct {
	agent    cedar.Entity
	chain    []cedar.Entity
	action   cedar.Entity
	resource cedar.Entity
}

var callToolUID = cedar.NewEntityUID(TypeAction, ActionCallTool)

var governanceActions = map[string]cedar.Entity{}

func init() {
	for _, a := range []string{ActionCallTool, ActionChangeToolset, ActionChangePrompt, ActionDelegate} {
		uid := cedar.NewEntityUID(TypeAction, cedar.String(a))
		governanceActions[a] = cedar.Entity{UID: uid}
	}
}

func (r *requestEntities) Get(uid cedar.EntityUID) (cedar.Entity, bool) {
	switch uid {
	case r.agent.UID:
		return r.agent, true
	case r.action.UID:
		return r.action, true
	case r.resource.UID:
		return r.resource, true
	}
	for _, c := range r.chain {
		if c.UID == uid {
			return c, true
		}
	}
	if ga, ok := governanceActions[string(uid.ID)]; ok && uid.Type == TypeAction {
		return ga, true
	}
	return cedar.Entity{}, false
}

// entityStores holds requestEntities for reuse: nothing keeps one past the
// decision it was built for.
var entityStores = sync.Pool{New: func() any { return new(requestEntities) }}

func (r *requestEntities) release() {
	chain := r.chain[:0]
	*r = requestEntities{chain: chain}
	entityStores.Put(r)
}

func (e *CedarEngine) entities(req *Request) *requestEntities {
	r := entityStores.Get().(*requestEntities)
	r.agent = e.agentEntity(req.Agent.ID)
	switch req.Action {
	case ActionDelegate:
		// The resource of a handoff is the agent the task is handed to.
		r.resource = e.agentEntity(req.Delegatee)
	case ActionChangePrompt:
		// The resource of a prompt change is the agent whose prompt it is:
		// the acting agent unless the request names another.
		r.resource = r.agent
		if !req.Subject.IsZero() && req.Subject != req.Agent.ID {
			r.resource = e.agentEntity(req.Subject)
		}
	default:
		te := e.toolEntities(req.Tool)
		r.resource, r.action = te.resource, te.action
	}
	if req.Action != "" {
		r.action = cedar.Entity{UID: cedar.NewEntityUID(TypeAction, cedar.String(req.Action))}
	}
	for _, c := range req.Agent.Chain {
		r.chain = append(r.chain, e.agentEntity(c))
	}
	return r
}

func (e *CedarEngine) agentEntity(id spiffeid.ID) cedar.Entity {
	key := id.String()
	if v, ok := e.agents.Load(key); ok {
		return v.(cedar.Entity)
	}
	td := id.TrustDomain().Name()
	parents := []cedar.EntityUID{cedar.NewEntityUID(TypeTrustDomain, cedar.String(td))}
	for _, g := range e.groups(id) {
		parents = append(parents, cedar.NewEntityUID(TypeAgentGroup, cedar.String(g)))
	}
	ent := cedar.Entity{
		UID:     cedar.NewEntityUID(TypeAgent, cedar.String(key)),
		Parents: cedar.NewEntityUIDSet(parents...),
		Attributes: cedar.NewRecord(cedar.RecordMap{
			"trust_domain": cedar.String(td),
			"path":         cedar.String(id.Path()),
			"name":         cedar.String(lastSegment(id.Path())),
		}),
	}
	v, _ := e.agents.LoadOrStore(key, ent)
	return v.(cedar.Entity)
}

func (e *CedarEngine) toolEntities(t Tool) toolEntities {
	e.mu.RLock()
	te, ok := e.tools[t.Name]
	e.mu.RUnlock()
	if ok && sameTool(te.tool, t) {
		return te
	}
	te = toolEntities{tool: t}
	te.tool.Labels = slices.Clone(t.Labels)
	te.action = cedar.Entity{
		UID:     cedar.NewEntityUID(TypeAction, cedar.String(t.Name)),
		Parents: cedar.NewEntityUIDSet(callToolUID),
	}
	var parents []cedar.EntityUID
	if t.Toolset != "" {
		parents = append(parents, cedar.NewEntityUID(TypeToolset, cedar.String(t.Toolset)))
	}
	te.resource = cedar.Entity{
		UID:     cedar.NewEntityUID(TypeTool, cedar.String(t.Name)),
		Parents: cedar.NewEntityUIDSet(parents...),
		Attributes: cedar.NewRecord(cedar.RecordMap{
			"name":        cedar.String(t.Name),
			"toolset":     cedar.String(t.Toolset),
			"read_only":   cedar.Boolean(t.ReadOnly),
			"destructive": cedar.Boolean(t.Destructive),
			"idempotent":  cedar.Boolean(t.Idempotent),
			"open_world":  cedar.Boolean(t.OpenWorld),
			"risk":        cedar.Long(t.Risk),
			"labels":      stringSet(t.Labels),
		}),
	}
	e.mu.Lock()
	e.tools[t.Name] = te
	e.mu.Unlock()
	return te
}

func sameTool(a, b Tool) bool {
	return a.Name == b.Name && a.Toolset == b.Toolset && a.ReadOnly == b.ReadOnly &&
		a.Destructive == b.Destructive && a.Idempotent == b.Idempotent && a.OpenWorld == b.OpenWorld &&
		a.Risk == b.Risk && slices.Equal(a.Labels, b.Labels)
}

// contextRecord builds the Cedar context of req. For a listing, args and
// approval are ignored values.
func (e *CedarEngine) contextRecord(req *Request, listing bool) (cedar.Record, error) {
	var args, approval cedar.Value
	if listing {
		args, approval = batch.Ignore(), batch.Ignore()
	} else {
		var err error
		if e.schema != nil {
			args, err = e.schemaArgs(req)
		} else {
			args, err = argsRecord(req.Args)
		}
		if errors.Is(err, errNotObject) {
			return cedar.Record{}, err
		}
		if err != nil {
			return cedar.Record{}, fmt.Errorf("policy: arguments: %w", err)
		}
		approval = noApproval
		if req.Approval.Granted || len(req.Approval.Approvers) > 0 {
			approval = cedar.NewRecord(cedar.RecordMap{
				"granted":   cedar.Boolean(req.Approval.Granted),
				"approvers": stringSet(req.Approval.Approvers),
			})
		}
	}
	t := req.Task
	m := scratchRecord()
	m["time"], m["call_id"] = cedar.NewDatetime(req.Time), cedar.String(req.CallID)
	request := recordOf(m)
	m = scratchRecord()
	m["id"], m["purpose"], m["sensitivity"] = cedar.String(t.ID), cedar.String(t.Purpose), cedar.Long(t.Sensitivity)
	m["labels"], m["calls"] = e.stringSet(t.Labels), cedar.Long(t.Calls)
	m["tool_calls"], m["calls_last_minute"] = cedar.Long(t.ToolCalls), cedar.Long(t.RecentCalls)
	m["tools_used"], m["taint"] = e.stringSet(t.ToolsUsed), e.stringSet(t.Taint)
	task := recordOf(m)
	m = scratchRecord()
	m["args"], m["task"], m["delegation"], m["approval"], m["request"] = args, task, e.delegation(req), approval, request
	return recordOf(m), nil
}
