package policytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/internal/canonical"
	"github.com/agentguard/go-sdk/policy"
)

// Expected decisions.
const (
	WantAllow = "allow"
	WantDeny  = "deny"
)

// defaultTime is when a scenario from a file runs unless it says otherwise,
// so that policies on context.request.time give the same answer every run.
var defaultTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// File is a parsed scenario file.
type File struct {
	// Name is the file's name, as given to ParseScenarios or LoadScenarios.
	Name        string
	Description string
	// Tools are the tools the file declares, by name.
	Tools map[string]policy.Tool
	// Scenarios are the file's scenarios, in file order.
	Scenarios []Scenario
}

// Scenario is one authorization question and the answer expected of the
// engine.
type Scenario struct {
	// File and Line say where the scenario was written, for messages; both
	// are empty for a scenario built in Go.
	File string
	Line int
	// Name names the scenario in messages and as a subtest.
	Name        string
	Description string
	// Request is what the engine is asked.
	Request policy.Request
	// Expect is the answer expected.
	Expect Expect
}

// Expect is what a scenario expects of the decision.
type Expect struct {
	// Decision is WantAllow or WantDeny. Anything else fails the scenario.
	Decision string
	// Policies, when not nil, are the deciding policies, compared as a set;
	// an empty, non-nil slice expects none (a deny by no policy).
	Policies []string
	// Obligations, when not nil, are the decision's obligations, compared
	// as a set of name and value; an expected obligation with a PolicyID must
	// also come from that policy. An empty, non-nil slice expects none.
	Obligations []policy.Obligation
	// ReasonContains, when not empty, must occur in the decision's reason.
	ReasonContains string
	// Errors expects evaluation errors. When false, any evaluation error
	// fails the scenario: an error denies, so a scenario that expects a deny
	// would otherwise pass for the wrong reason.
	Errors bool
}

// where is the scenario's place for messages: `file:line: "name"`.
func (s *Scenario) where() string {
	var b strings.Builder
	if s.File != "" {
		b.WriteString(s.File)
		if s.Line > 0 {
			b.WriteString(":" + strconv.Itoa(s.Line))
		}
		b.WriteString(": ")
	}
	b.WriteString(strconv.Quote(s.Name))
	return b.String()
}

// Result is the outcome of checking one scenario.
type Result struct {
	Scenario Scenario
	// Decision is what the engine decided; Err is set instead when it could
	// not decide.
	Decision policy.Decision
	Err      error
	// Failures says how the decision differs from the expectation, one
	// message per difference, each naming the file and scenario. It is empty
	// when the scenario passed.
	Failures []string
}

// Passed reports whether the decision was as expected.
func (r Result) Passed() bool { return len(r.Failures) == 0 }

// Check asks engine the scenario's question and compares the decision with
// the expectation. It does not fail any test; Run does, with its failures.
func Check(ctx context.Context, engine policy.Engine, sc Scenario) Result {
	res := Result{Scenario: sc}
	fail := func(format string, args ...any) {
		res.Failures = append(res.Failures, sc.where()+": "+fmt.Sprintf(format, args...))
	}
	want := sc.Expect
	if want.Decision != WantAllow && want.Decision != WantDeny {
		fail("expected decision is %q, want %q or %q", want.Decision, WantAllow, WantDeny)
		return res
	}
	req := sc.Request
	req.Args = slices.Clone(req.Args)
	d, err := engine.Decide(ctx, &req)
	if err != nil {
		res.Err = err
		fail("the engine could not decide (the guard denies such a call): %v; want %s", err, describeWant(want))
		return res
	}
	res.Decision = d
	got := describe(d)

	allowed := want.Decision == WantAllow
	if d.Allowed != allowed {
		// The rest follows from the wrong decision, which says it all.
		fail("got %s, want %s", got, describeWant(want))
		return res
	}
	if want.Policies != nil && !sameSet(d.Policies, want.Policies) {
		fail("got %s, want %s", got, describeWant(want))
	}
	if want.ReasonContains != "" && !strings.Contains(d.Reason, want.ReasonContains) {
		fail("reason %q does not contain %q; got %s", d.Reason, want.ReasonContains, got)
	}
	if want.Obligations != nil && !sameObligations(d.Obligations, want.Obligations) {
		fail("got obligations %s, want %s; got %s", obligationList(d.Obligations), obligationList(want.Obligations), got)
	}
	switch {
	case want.Errors && len(d.Errors) == 0:
		fail("want evaluation errors, got none; got %s", got)
	case !want.Errors && len(d.Errors) > 0:
		fail("got evaluation errors (which deny): %s; set expect.errors if they are intended; got %s", errorList(d.Errors), got)
	}
	return res
}

// describe says what a decision was, for a person: its effect, the deciding
// policies, the reason, evaluation errors and obligations.
func describe(d policy.Decision) string {
	var b strings.Builder
	if d.Allowed {
		b.WriteString(WantAllow)
	} else {
		b.WriteString(WantDeny)
	}
	b.WriteString(" by " + policyList(d.Policies))
	if d.Reason != "" {
		b.WriteString(" (" + strconv.Quote(d.Reason) + ")")
	}
	if len(d.Errors) > 0 {
		b.WriteString(" with evaluation errors " + errorList(d.Errors))
	}
	if len(d.Obligations) > 0 {
		b.WriteString(" with obligations " + obligationList(d.Obligations))
	}
	return b.String()
}

func describeWant(e Expect) string {
	if e.Policies == nil {
		return e.Decision
	}
	return e.Decision + " by " + policyList(e.Policies)
}

func policyList(ids []string) string {
	if len(ids) == 0 {
		return "no policy"
	}
	return "[" + strings.Join(sortedSet(ids), ", ") + "]"
}

func errorList(errs []policy.EvalError) string {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.PolicyID + ": " + e.Message
	}
	return "[" + strings.Join(s, "; ") + "]"
}

func obligationList(obs []policy.Obligation) string {
	s := make([]string, len(obs))
	for i, o := range obs {
		s[i] = o.Name + "=" + strconv.Quote(o.Value)
		if o.PolicyID != "" {
			s[i] += " from " + o.PolicyID
		}
	}
	slices.Sort(s)
	return "[" + strings.Join(s, ", ") + "]"
}

func sortedSet(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

func sameSet(a, b []string) bool { return slices.Equal(sortedSet(a), sortedSet(b)) }

// sameObligations reports whether got holds exactly the obligations of want:
// one for each, of the same name and value and, where want names a policy,
// from that policy.
func sameObligations(got, want []policy.Obligation) bool {
	if len(got) != len(want) {
		return false
	}
	used := make([]bool, len(got))
	// Obligations that name their policy first, so that one that does not
	// cannot take the only match of one that does.
	ordered := slices.Clone(want)
	slices.SortStableFunc(ordered, func(a, b policy.Obligation) int {
		return boolInt(a.PolicyID == "") - boolInt(b.PolicyID == "")
	})
	for _, w := range ordered {
		found := false
		for i, g := range got {
			if !used[i] && g.Name == w.Name && g.Value == w.Value && (w.PolicyID == "" || g.PolicyID == w.PolicyID) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Report is what a run found: one result per scenario that ran.
type Report struct {
	mu      sync.Mutex
	results []Result
}

func (r *Report) add(res ...Result) {
	r.mu.Lock()
	r.results = append(r.results, res...)
	r.mu.Unlock()
}

// Results returns the results, in the order the scenarios ran.
func (r *Report) Results() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.results)
}

// Deciding returns, sorted, the policies that were a deciding policy of some
// scenario's decision (not counting policies that failed to evaluate).
func (r *Report) Deciding() []string {
	var ids []string
	for _, res := range r.Results() {
		if res.Err != nil {
			continue
		}
		for _, id := range res.Decision.Policies {
			if !slices.ContainsFunc(res.Decision.Errors, func(e policy.EvalError) bool { return e.PolicyID == id }) {
				ids = append(ids, id)
			}
		}
	}
	return sortedSet(ids)
}

// Uncovered returns, sorted, the policies of ids that decided no scenario: a
// permit that never allowed one, a forbid that never denied one.
func (r *Report) Uncovered(ids []string) []string {
	deciding := r.Deciding()
	var out []string
	for _, id := range sortedSet(ids) {
		if _, found := slices.BinarySearch(deciding, id); !found {
			out = append(out, id)
		}
	}
	return out
}

// RequireCoverage fails t if some policy of set decided no scenario of the
// report. Untested policies are where mistakes hide: a permit no scenario
// exercises may allow more than meant, and a forbid no scenario trips may
// never fire.
func (r *Report) RequireCoverage(t testing.TB, set *policy.Set) {
	t.Helper()
	if missing := r.Uncovered(set.IDs()); len(missing) > 0 {
		t.Errorf("policytest: %d of %d policies decided no scenario: %s; add a scenario that each decides (a permit that allows, a forbid that denies)",
			len(missing), set.Len(), strings.Join(missing, ", "))
	}
}

// Run checks each scenario against engine in a subtest named by the
// scenario, and fails the subtest with each difference from the
// expectation.
func Run(t *testing.T, engine policy.Engine, scenarios ...Scenario) *Report {
	t.Helper()
	rep := &Report{}
	run(t, engine, rep, scenarios)
	return rep
}

func run(t *testing.T, engine policy.Engine, rep *Report, scenarios []Scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			t.Helper()
			res := Check(t.Context(), engine, sc)
			rep.add(res)
			for _, f := range res.Failures {
				t.Error(f)
			}
		})
	}
}

// RunFiles loads the scenario files that the glob patterns (as
// filepath.Glob) match and runs each file's scenarios, in a subtest per file
// and within it one per scenario: TestPolicies/support_test.json/small_refund.
// A pattern that matches no file, or a file that does not load, fails t.
func RunFiles(t *testing.T, engine policy.Engine, patterns ...string) *Report {
	t.Helper()
	rep := &Report{}
	paths, err := glob(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			t.Helper()
			f, err := LoadScenarios(p)
			if err != nil {
				t.Fatal(err)
			}
			run(t, engine, rep, f.Scenarios)
		})
	}
	return rep
}

// LoadFiles loads every scenario file that the glob patterns match, in
// pattern order and, within a pattern, in lexical order. A pattern that
// matches no file is an error, so that a wrong path cannot make a test
// silently check nothing.
func LoadFiles(patterns ...string) ([]*File, error) {
	paths, err := glob(patterns)
	if err != nil {
		return nil, err
	}
	var files []*File
	var errs []error
	for _, p := range paths {
		f, err := LoadScenarios(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, f)
	}
	return files, errors.Join(errs...)
}

func glob(patterns []string) ([]string, error) {
	if len(patterns) == 0 {
		return nil, errors.New("policytest: no scenario file pattern given")
	}
	var out []string
	for _, pat := range patterns {
		m, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("policytest: pattern %q: %w", pat, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("policytest: no scenario file matches %q", pat)
		}
		for _, p := range m {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// LoadScenarios reads and parses the scenario file at path.
func LoadScenarios(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policytest: %w", err)
	}
	return ParseScenarios(path, b)
}

// The file format, as decoded. Every field is strictly checked: an unknown
// field is an error.

type toolJSON struct {
	Toolset     string   `json:"toolset"`
	Description string   `json:"description"`
	Risk        riskJSON `json:"risk"`
	Labels      []string `json:"labels"`
	ReadOnly    bool     `json:"read_only"`
	Destructive bool     `json:"destructive"`
	Idempotent  bool     `json:"idempotent"`
	OpenWorld   bool     `json:"open_world"`
}

type defaultsJSON struct {
	Principal string    `json:"principal"`
	Chain     *[]string `json:"chain"`
	Task      *taskJSON `json:"task"`
	Time      string    `json:"time"`
}

// taskJSON has pointers so that a scenario's task can set some fields and
// take the others from the defaults.
type taskJSON struct {
	ID          *string          `json:"id"`
	Purpose     *string          `json:"purpose"`
	Sensitivity *sensitivityJSON `json:"sensitivity"`
	Labels      *[]string        `json:"labels"`
	OnBehalfOf  *string          `json:"on_behalf_of"`
	Calls       *int             `json:"calls"`
	ToolCalls   *int             `json:"tool_calls"`
	RecentCalls *int             `json:"calls_last_minute"`
	ToolsUsed   *[]string        `json:"tools_used"`
	Taint       *[]string        `json:"taint"`
}

type approvalJSON struct {
	Granted   bool     `json:"granted"`
	Approvers []string `json:"approvers"`
}

type scenarioJSON struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Principal   string          `json:"principal"`
	Chain       *[]string       `json:"chain"`
	Tool        string          `json:"tool"`
	Action      string          `json:"action"`
	Delegatee   string          `json:"delegatee"`
	Args        json.RawMessage `json:"args"`
	Task        *taskJSON       `json:"task"`
	Approval    *approvalJSON   `json:"approval"`
	Listing     bool            `json:"listing"`
	Time        string          `json:"time"`
	CallID      string          `json:"call_id"`
	Expect      *expectJSON     `json:"expect"`
}

type expectJSON struct {
	Decision       string           `json:"decision"`
	Policies       []string         `json:"policies"`
	Obligations    []obligationJSON `json:"obligations"`
	ReasonContains string           `json:"reason_contains"`
	Errors         bool             `json:"errors"`
}

type obligationJSON struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Policy string `json:"policy"`
}

var (
	sensitivityNames = []string{"public", "internal", "confidential", "restricted"}
	riskNames        = []string{"low", "medium", "high", "critical"}
)

type sensitivityJSON struct{ n int }

func (s *sensitivityJSON) UnmarshalJSON(b []byte) (err error) {
	s.n, err = level(b, "sensitivity", sensitivityNames)
	return err
}

type riskJSON struct{ n int }

func (r *riskJSON) UnmarshalJSON(b []byte) (err error) {
	r.n, err = level(b, "risk", riskNames)
	return err
}

// level reads a level given by name or as a number 0 to 3.
func level(b []byte, what string, names []string) (int, error) {
	var name string
	if json.Unmarshal(b, &name) == nil {
		if i := slices.Index(names, name); i >= 0 {
			return i, nil
		}
	} else if n, err := strconv.Atoi(string(b)); err == nil && n >= 0 && n < len(names) {
		return n, nil
	}
	return 0, fmt.Errorf("%s %s: want one of %s, or 0 to %d", what, b, strings.Join(names, ", "), len(names)-1)
}

// rawAt is a JSON value and where it starts in the file.
type rawAt struct {
	key string
	raw json.RawMessage
	off int64
}

// ParseScenarios parses a scenario file; name is used in errors and in
// failure messages. Errors name the line and the tool or scenario.
func ParseScenarios(name string, data []byte) (*File, error) {
	p := &parser{name: name, data: data}
	f, err := p.file()
	if err != nil {
		return nil, err
	}
	return f, nil
}

type parser struct {
	name string
	data []byte
}

// errAt is an error at byte offset off of the file; what names the tool or
// scenario, if any.
func (p *parser) errAt(off int64, what string, err error) error {
	line, col := p.position(off)
	msg := err.Error()
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		msg = fmt.Sprintf("want %s, got JSON %s", typeName(te.Type.String()), te.Value)
		if te.Field != "" {
			msg = fmt.Sprintf("field %q: %s", te.Field, msg)
		}
	}
	msg = strings.TrimPrefix(msg, "json: ")
	if what != "" {
		msg = what + ": " + msg
	}
	return fmt.Errorf("policytest: %s:%d:%d: %s", p.name, line, col, msg)
}

func typeName(t string) string {
	switch {
	case strings.HasSuffix(t, "string"):
		return "a string"
	case strings.HasSuffix(t, "bool"):
		return "true or false"
	case strings.HasSuffix(t, "int"):
		return "an integer"
	case strings.HasPrefix(t, "[]") || strings.HasPrefix(t, "*[]"):
		return "an array"
	}
	return "an object"
}

// position is the 1-based line and column (in bytes) of offset off.
func (p *parser) position(off int64) (line, col int) {
	off = min(max(off, 0), int64(len(p.data)))
	before := p.data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// skip returns the offset of the next token at or after off, past white
// space and the separators the decoder leaves behind.
func (p *parser) skip(off int64) int64 {
	for off < int64(len(p.data)) && strings.IndexByte(" \t\r\n,:", p.data[off]) >= 0 {
		off++
	}
	return off
}

func (p *parser) file() (*File, error) {
	// Syntax first, with a position.
	var syntax any
	if err := json.Unmarshal(p.data, &syntax); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, p.errAt(se.Offset-1, "", err)
		}
		return nil, fmt.Errorf("policytest: %s: %w", p.name, err)
	}
	if _, ok := syntax.(map[string]any); !ok {
		return nil, p.errAt(p.skip(0), "", errors.New("a scenario file is a JSON object with \"scenarios\""))
	}

	f := &File{Name: p.name, Tools: map[string]policy.Tool{}}
	var tools, scenarios []rawAt
	var defaults *rawAt
	dec := json.NewDecoder(bytes.NewReader(p.data))
	if _, err := dec.Token(); err != nil { // {
		return nil, p.errAt(0, "", err)
	}
	for dec.More() {
		keyOff := p.skip(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return nil, p.errAt(keyOff, "", err)
		}
		key, _ := tok.(string)
		valOff := p.skip(dec.InputOffset())
		switch key {
		case "description":
			if err := dec.Decode(&f.Description); err != nil {
				return nil, p.errAt(valOff, "description", err)
			}
		case "defaults":
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, p.errAt(valOff, "defaults", err)
			}
			defaults = &rawAt{key: "defaults", raw: raw, off: valOff}
		case "tools":
			if tools, err = p.members(dec, '{', valOff); err != nil {
				return nil, err
			}
		case "scenarios":
			if scenarios, err = p.members(dec, '[', valOff); err != nil {
				return nil, err
			}
		default:
			return nil, p.errAt(keyOff, "", fmt.Errorf("unknown field %q (want description, tools, defaults or scenarios)", key))
		}
	}

	for _, t := range tools {
		what := "tool " + strconv.Quote(t.key)
		var tj toolJSON
		if err := p.strict(t, what, &tj); err != nil {
			return nil, err
		}
		switch {
		case t.key == "":
			return nil, p.errAt(t.off, what, errors.New("a tool needs a name"))
		case policy.Reserved(t.key):
			return nil, p.errAt(t.off, what, errors.New("a tool may not take the name of a governance action"))
		}
		f.Tools[t.key] = policy.Tool{
			Name: t.key, Toolset: tj.Toolset, Description: tj.Description,
			ReadOnly: tj.ReadOnly, Destructive: tj.Destructive, Idempotent: tj.Idempotent, OpenWorld: tj.OpenWorld,
			Risk: policy.Risk(tj.Risk.n), Labels: tj.Labels,
		}
	}

	var def defaultsJSON
	if defaults != nil {
		if err := p.strict(*defaults, "defaults", &def); err != nil {
			return nil, err
		}
	}
	if def.Time != "" {
		if _, err := time.Parse(time.RFC3339, def.Time); err != nil {
			return nil, p.errAt(defaults.off, "defaults", fmt.Errorf("time %q is not RFC 3339 (like 2026-01-01T09:00:00Z)", def.Time))
		}
	}

	if len(scenarios) == 0 {
		return nil, fmt.Errorf("policytest: %s: the file has no scenarios", p.name)
	}
	seen := map[string]int{}
	for i, s := range scenarios {
		// Name the scenario in errors, even when some other field is wrong.
		what := fmt.Sprintf("scenario %d", i+1)
		var named struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(s.raw, &named) == nil && named.Name != "" {
			what = "scenario " + strconv.Quote(named.Name)
		}
		var sj scenarioJSON
		if err := p.strict(s, what, &sj); err != nil {
			return nil, err
		}
		if sj.Name == "" {
			return nil, p.errAt(s.off, what, errors.New("a scenario needs a name"))
		}
		line, _ := p.position(s.off)
		if prev, dup := seen[sj.Name]; dup {
			return nil, p.errAt(s.off, what, fmt.Errorf("another scenario at line %d has the same name", prev))
		}
		seen[sj.Name] = line
		sc, err := p.scenario(f, &def, &sj)
		if err != nil {
			return nil, p.errAt(s.off, what, err)
		}
		sc.File, sc.Line = p.name, line
		if sc.Request.CallID == "" {
			sc.Request.CallID = "scenario-" + strconv.Itoa(i+1)
		}
		f.Scenarios = append(f.Scenarios, sc)
	}

	// Repeated keys anywhere else (encoding/json would keep the last).
	if _, err := canonical.Parse(p.data); err != nil {
		return nil, fmt.Errorf("policytest: %s: %v", p.name, strings.TrimPrefix(err.Error(), canonical.ErrInvalid.Error()+": "))
	}
	return f, nil
}

// members reads the members of the object or array that starts at off.
func (p *parser) members(dec *json.Decoder, open json.Delim, off int64) ([]rawAt, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, p.errAt(off, "", err)
	}
	if tok != open {
		want := "an array of scenarios"
		if open == '{' {
			want = "an object of tools by name"
		}
		return nil, p.errAt(off, "", fmt.Errorf("want %s", want))
	}
	var out []rawAt
	for dec.More() {
		var m rawAt
		if open == '{' {
			tok, err := dec.Token()
			if err != nil {
				return nil, p.errAt(p.skip(dec.InputOffset()), "", err)
			}
			m.key, _ = tok.(string)
		}
		m.off = p.skip(dec.InputOffset())
		if err := dec.Decode(&m.raw); err != nil {
			return nil, p.errAt(m.off, "", err)
		}
		out = append(out, m)
	}
	if _, err := dec.Token(); err != nil { // } or ]
		return nil, p.errAt(p.skip(dec.InputOffset()), "", err)
	}
	return out, nil
}

// strict decodes r into v, refusing unknown fields and repeated keys.
func (p *parser) strict(r rawAt, what string, v any) error {
	if _, err := canonical.Parse(r.raw); err != nil {
		return p.errAt(r.off, what, errors.New(strings.TrimPrefix(err.Error(), canonical.ErrInvalid.Error()+": ")))
	}
	dec := json.NewDecoder(bytes.NewReader(r.raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return p.errAt(r.off+te.Offset-1, what, err)
		}
		return p.errAt(r.off, what, err)
	}
	return nil
}

// scenario builds the request and expectation of one scenario.
func (p *parser) scenario(f *File, def *defaultsJSON, sj *scenarioJSON) (Scenario, error) {
	sc := Scenario{Name: sj.Name, Description: sj.Description}
	req := &sc.Request

	principal := firstNonEmpty(sj.Principal, def.Principal)
	if principal == "" {
		return sc, errors.New("no principal: give one in the scenario or in defaults")
	}
	chain := def.Chain
	if sj.Chain != nil {
		chain = sj.Chain
	}
	var chainIDs []string
	if chain != nil {
		chainIDs = *chain
	}
	id, err := identity.Parse(principal, chainIDs...)
	if err != nil {
		return sc, err
	}
	req.Agent = id

	switch sj.Action {
	case "":
		if sj.Tool == "" {
			return sc, errors.New(`no tool: give "tool", or "action" for a governance action`)
		}
		t, ok := f.Tools[sj.Tool]
		if !ok {
			return sc, fmt.Errorf("tool %q is not declared in \"tools\" (declared: %s)", sj.Tool, strings.Join(sortedKeys(f.Tools), ", "))
		}
		req.Tool = t
	case policy.ActionDelegate:
		if sj.Tool != "" {
			return sc, errors.New(`a delegation names the agent in "delegatee", not a tool`)
		}
		if sj.Delegatee == "" {
			return sc, errors.New(`a delegation needs a "delegatee"`)
		}
		if req.Delegatee, err = spiffeid.FromString(sj.Delegatee); err != nil {
			return sc, fmt.Errorf("delegatee %q: %w", sj.Delegatee, err)
		}
		if len(sj.Args) > 0 {
			return sc, errors.New("a delegation has no arguments")
		}
		req.Action = sj.Action
	case policy.ActionChangeToolset, policy.ActionChangePrompt:
		if sj.Tool == "" {
			return sc, fmt.Errorf("action %q needs the tool it concerns", sj.Action)
		}
		req.Action = sj.Action
		req.Tool = policy.Tool{Name: sj.Tool}
		if t, ok := f.Tools[sj.Tool]; ok {
			req.Tool = t
		}
	case policy.ActionCallTool:
		return sc, errors.New(`"call_tool" is the group of every tool call: name the tool with "tool" and leave "action" out`)
	default:
		return sc, fmt.Errorf("unknown action %q (want %s, %s or %s; leave it out for a tool call)",
			sj.Action, policy.ActionDelegate, policy.ActionChangeToolset, policy.ActionChangePrompt)
	}
	if sj.Delegatee != "" && sj.Action != policy.ActionDelegate {
		return sc, errors.New(`"delegatee" is only for "action": "delegate"`)
	}

	if sj.Listing {
		switch {
		case sj.Action != "":
			return sc, errors.New("a listing asks about a tool call, not a governance action")
		case len(sj.Args) > 0 || sj.Approval != nil:
			return sc, errors.New("a listing ignores arguments and approval: leave them out")
		}
		req.Listing = true
	} else {
		raw := sj.Args
		if len(raw) == 0 {
			raw = json.RawMessage("{}")
		}
		// As the guard does: canonical form, and only an object.
		args, parsed, err := canonical.JSON(raw)
		if err != nil {
			return sc, fmt.Errorf("args: %w", err)
		}
		if _, ok := parsed.(map[string]any); !ok {
			return sc, errors.New("args must be a JSON object")
		}
		req.Args = args
	}

	if sj.Approval != nil {
		req.Approval = policy.Approval{Granted: sj.Approval.Granted, Approvers: sj.Approval.Approvers}
	}
	req.Task = mergeTask(def.Task, sj.Task)

	req.Time = defaultTime
	if ts := firstNonEmpty(sj.Time, def.Time); ts != "" {
		if req.Time, err = time.Parse(time.RFC3339, ts); err != nil {
			return sc, fmt.Errorf("time %q is not RFC 3339 (like 2026-01-01T09:00:00Z)", ts)
		}
	}
	req.CallID = sj.CallID

	if sj.Expect == nil || sj.Expect.Decision == "" {
		return sc, errors.New(`no expected decision: give "expect": {"decision": "allow"} or "deny"`)
	}
	e := sj.Expect
	if e.Decision != WantAllow && e.Decision != WantDeny {
		return sc, fmt.Errorf("expected decision %q: want %q or %q", e.Decision, WantAllow, WantDeny)
	}
	if e.Errors && e.Decision == WantAllow {
		return sc, errors.New("expect.errors with an allow can never pass: an evaluation error denies")
	}
	sc.Expect = Expect{Decision: e.Decision, Policies: e.Policies, ReasonContains: e.ReasonContains, Errors: e.Errors}
	if e.Obligations != nil {
		sc.Expect.Obligations = []policy.Obligation{}
		for _, o := range e.Obligations {
			if o.Name == "" {
				return sc, errors.New("an expected obligation needs a name")
			}
			sc.Expect.Obligations = append(sc.Expect.Obligations, policy.Obligation{Name: o.Name, Value: o.Value, PolicyID: o.Policy})
		}
	}
	return sc, nil
}

// mergeTask is the task of a scenario: each field it gives, else the
// default's. Sets are sorted and deduplicated, as the guard keeps them.
func mergeTask(def, sc *taskJSON) policy.Task {
	var d, s taskJSON
	if def != nil {
		d = *def
	}
	if sc != nil {
		s = *sc
	}
	var t policy.Task
	t.ID = deref(pick(s.ID, d.ID))
	t.Purpose = deref(pick(s.Purpose, d.Purpose))
	if v := pick(s.Sensitivity, d.Sensitivity); v != nil {
		t.Sensitivity = policy.Sensitivity(v.n)
	}
	t.Labels = canonical.SortedSet(deref(pick(s.Labels, d.Labels)))
	t.OnBehalfOf = deref(pick(s.OnBehalfOf, d.OnBehalfOf))
	t.Calls = deref(pick(s.Calls, d.Calls))
	t.ToolCalls = deref(pick(s.ToolCalls, d.ToolCalls))
	t.RecentCalls = deref(pick(s.RecentCalls, d.RecentCalls))
	t.ToolsUsed = canonical.SortedSet(deref(pick(s.ToolsUsed, d.ToolsUsed)))
	t.Taint = canonical.SortedSet(deref(pick(s.Taint, d.Taint)))
	return t
}

func pick[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// firstNonEmpty returns a, or b when a is empty.
func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		return []string{"none"}
	}
	return keys
}
