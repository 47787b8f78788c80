package agentguard

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/internal/canonical"
)

// Lock holds the pins of an agent: the fingerprint of every tool definition
// it trusts, by toolset and name, and the digest of every prompt it trusts,
// by name. A tool or prompt that is not pinned as it is now is blocked
// until a change is reviewed (Registry.Review, Guard.ReviewTool,
// Prompt.Change), so a server that rewrites a tool's description (a rug
// pull) cannot reach the model unreviewed.
//
// A Lock reads and writes a lock file, like go.sum, that a team commits
// and reviews as code:
//
//	# comment
//	tool <toolset> <name> sha256:<hex>
//	prompt <name> sha256:<hex>
//
// A toolset or name that is empty or holds anything but printable ASCII
// other than # " ' ` \ is written Go-quoted ("my tools"). A Lock is an
// Integrity too, and safe for concurrent use. The zero Lock is an empty
// lock, ready to use.
type Lock struct {
	// commit serializes the changes of pins: a guard checks a pin, writes
	// the audit record of its change and sets it as one step (swap).
	commit sync.Mutex
	// mu guards the maps, which are made on first write.
	mu      sync.RWMutex
	tools   map[toolKey]string
	prompts map[string]string
}

type toolKey struct{ toolset, name string }

// ToolPin is one pinned tool definition.
type ToolPin struct {
	Toolset, Name string
	// Fingerprint is the trusted definition's Tool.Fingerprint.
	Fingerprint string
}

// PromptPin is one pinned prompt.
type PromptPin struct {
	Name string
	// Digest is "sha256:<hex>" of the trusted prompt text.
	Digest string
}

var _ Integrity = (*Lock)(nil)

// NewLock returns an empty lock: it trusts nothing. It is the same as
// &Lock{}.
func NewLock() *Lock { return &Lock{} }

// Tool returns the fingerprint pinned for the tool of that toolset and name.
func (l *Lock) Tool(toolset, name string) (string, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	fp, ok := l.tools[toolKey{toolset, name}]
	return fp, ok
}

// Prompt returns the digest pinned for the prompt of that name.
func (l *Lock) Prompt(name string) (string, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	d, ok := l.prompts[name]
	return d, ok
}

// PinTool trusts t's definition as it is now, replacing any pin of its
// toolset and name. Pin only what was reviewed: the guard pins approved
// changes itself. A nil t is an error.
func (l *Lock) PinTool(t *Tool) error {
	if t == nil {
		return errors.New("agentguard: pin: nil tool")
	}
	fp := t.Fingerprint()
	l.commit.Lock()
	defer l.commit.Unlock()
	l.setTool(toolKey{t.Toolset, t.Name}, fp)
	return nil
}

// PinPrompt trusts text as the prompt of that name, replacing any pin.
func (l *Lock) PinPrompt(name, text string) {
	d := promptDigest(text)
	l.commit.Lock()
	defer l.commit.Unlock()
	l.setPrompt(name, d)
}

// setTool and setPrompt set a pin; they cannot fail.
func (l *Lock) setTool(k toolKey, fp string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tools == nil {
		l.tools = map[toolKey]string{}
	}
	l.tools[k] = fp
}

func (l *Lock) setPrompt(name, digest string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.prompts == nil {
		l.prompts = map[string]string{}
	}
	l.prompts[name] = digest
}

// swapTool pins fp for the tool if its pin is still previous (if it is not
// pinned, when previous is ""), and fails with ErrPinChanged otherwise, so
// that a review that ends late never puts back an older definition. record,
// if not nil, writes the audit record of the change once the pin is known
// to match: the pin is set only if it succeeds, and then cannot fail.
func (l *Lock) swapTool(toolset, name, previous, fp string, record func() error) error {
	k := toolKey{toolset, name}
	return l.swap(previous, record, func() string { cur, _ := l.Tool(toolset, name); return cur }, func() { l.setTool(k, fp) })
}

// swapPrompt is swapTool for a prompt's digest.
func (l *Lock) swapPrompt(name, previous, digest string, record func() error) error {
	return l.swap(previous, record, func() string { cur, _ := l.Prompt(name); return cur }, func() { l.setPrompt(name, digest) })
}

func (l *Lock) swap(previous string, record func() error, current func() string, set func()) error {
	l.commit.Lock()
	defer l.commit.Unlock()
	if cur := current(); cur != previous {
		return fmt.Errorf("%w: %s when the review began, %s now", ErrPinChanged, orNone(previous), orNone(cur))
	}
	if record != nil {
		if err := record(); err != nil {
			return err
		}
	}
	set()
	return nil
}

func orNone(pin string) string { return cmp.Or(pin, "none") }

// Tools returns the tool pins, sorted by toolset and name.
func (l *Lock) Tools() []ToolPin {
	l.mu.RLock()
	out := make([]ToolPin, 0, len(l.tools))
	for k, fp := range l.tools {
		out = append(out, ToolPin{Toolset: k.toolset, Name: k.name, Fingerprint: fp})
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b ToolPin) int {
		return cmp.Or(strings.Compare(a.Toolset, b.Toolset), strings.Compare(a.Name, b.Name))
	})
	return out
}

// Prompts returns the prompt pins, sorted by name.
func (l *Lock) Prompts() []PromptPin {
	l.mu.RLock()
	out := make([]PromptPin, 0, len(l.prompts))
	for n, d := range l.prompts {
		out = append(out, PromptPin{Name: n, Digest: d})
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b PromptPin) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Verify returns an error unless t's definition is pinned as it is: it is
// new (not pinned) or changed (pinned with another fingerprint), or t is
// nil or not a valid definition. As the guard's Integrity, the error
// denies the call with ErrIntegrity. A nil Lock trusts nothing.
func (l *Lock) Verify(_ context.Context, t *Tool) error {
	if l == nil {
		return errors.New("agentguard: verify: nil lock")
	}
	if err := t.validate(false); err != nil {
		return err
	}
	return l.check(t.Toolset, t.Name, t.Fingerprint())
}

func (l *Lock) check(toolset, name, fp string) error {
	pin, ok := l.Tool(toolset, name)
	switch {
	case !ok:
		return fmt.Errorf("tool %q of toolset %q is new: no fingerprint is pinned for it; review the change", name, toolset)
	case pin != fp:
		return fmt.Errorf("tool %q of toolset %q changed: pinned %s, now %s; review the change", name, toolset, pin, fp)
	}
	return nil
}

func promptDigest(text string) string { return canonical.Digest([]byte(text)) }

// lockHeader opens every lock file written.
const lockHeader = `# AgentGuard lock file: the tool definitions and prompts this agent trusts.
# Review every change to it as you review code; the guard blocks what is not pinned here.
`

// Bytes returns the lock file: the header, then one line per pin, tools and
// then prompts, sorted. The same pins always give the same bytes.
func (l *Lock) Bytes() []byte {
	var b bytes.Buffer
	b.WriteString(lockHeader)
	for _, p := range l.Tools() {
		fmt.Fprintf(&b, "tool %s %s %s\n", lockField(p.Toolset), lockField(p.Name), p.Fingerprint)
	}
	for _, p := range l.Prompts() {
		fmt.Fprintf(&b, "prompt %s %s\n", lockField(p.Name), p.Digest)
	}
	return b.Bytes()
}

// WriteTo writes the lock file (Bytes) to w.
func (l *Lock) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(l.Bytes())
	return int64(n), err
}

// WriteFile writes the lock file to path atomically: to a temporary file
// in the same directory, renamed over path, so that a reader never sees
// half a file. An existing file keeps its permissions; a new one is 0644.
func (l *Lock) WriteFile(path string) (err error) {
	perm := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("agentguard: write lock file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("agentguard: write lock file: %w", err)
		}
	}()
	if _, err = l.WriteTo(f); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// LoadLock reads the lock file at path. An error names the file and line.
func LoadLock(path string) (*Lock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("agentguard: load lock file: %w", err)
	}
	defer f.Close()
	return readLock(path, f)
}

// ParseLock parses a lock file. Blank lines and lines starting with # are
// ignored; a malformed line, a bad digest or a second pin of the same tool
// or prompt is an error naming its line.
func ParseLock(data []byte) (*Lock, error) { return readLock("lock", bytes.NewReader(data)) }

// ReadLock reads a lock file from r, as ParseLock.
func ReadLock(r io.Reader) (*Lock, error) { return readLock("lock", r) }

func readLock(file string, r io.Reader) (*Lock, error) {
	l := NewLock()
	toolLine := map[toolKey]int{}
	promptLine := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fail := func(format string, a ...any) error {
			return fmt.Errorf("agentguard: %s:%d: %s", file, n, fmt.Sprintf(format, a...))
		}
		f, err := lockFields(line)
		if err != nil {
			return nil, fail("%v", err)
		}
		switch {
		case f[0] == "tool" && len(f) == 4:
			k := toolKey{f[1], f[2]}
			if !validDigest(f[3]) {
				return nil, fail("bad fingerprint %q: want sha256:<64 lowercase hex>", f[3])
			}
			if first, dup := toolLine[k]; dup {
				return nil, fail("tool %q of toolset %q pinned again (first on line %d)", k.name, k.toolset, first)
			}
			toolLine[k] = n
			l.setTool(k, f[3])
		case f[0] == "prompt" && len(f) == 3:
			if !validDigest(f[2]) {
				return nil, fail("bad digest %q: want sha256:<64 lowercase hex>", f[2])
			}
			if first, dup := promptLine[f[1]]; dup {
				return nil, fail("prompt %q pinned again (first on line %d)", f[1], first)
			}
			promptLine[f[1]] = n
			l.setPrompt(f[1], f[2])
		default:
			return nil, fail("malformed line: want \"tool <toolset> <name> sha256:<hex>\" or \"prompt <name> sha256:<hex>\"")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("agentguard: %s:%d: %w", file, n+1, err)
	}
	return l, nil
}

// lockField writes s as one field of a lock file line.
func lockField(s string) string {
	if needsQuote(s) {
		return strconv.Quote(s)
	}
	return s
}

// needsQuote reports whether s must be quoted: it is empty or has anything
// but printable ASCII other than the quotes, # and \.
func needsQuote(s string) bool {
	return s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune("#\"'`\\", r)
	})
}

// lockFields splits a line into fields separated by spaces or tabs; a field
// starting with " is Go-quoted, any other is taken as it is and must not
// need quoting.
func lockFields(line string) ([]string, error) {
	var out []string
	for {
		line = strings.TrimLeft(line, " \t")
		if line == "" {
			return out, nil
		}
		var field string
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, fmt.Errorf("bad quoted field %s", line)
			}
			field, _ = strconv.Unquote(q)
			line = line[len(q):]
			if line != "" && line[0] != ' ' && line[0] != '\t' {
				return nil, fmt.Errorf("no space after quoted field %s", q)
			}
		} else {
			i := strings.IndexAny(line, " \t")
			if i < 0 {
				i = len(line)
			}
			field, line = line[:i], line[i:]
			if needsQuote(field) {
				return nil, fmt.Errorf("field %q must be quoted", field)
			}
		}
		out = append(out, field)
	}
}

// validDigest reports whether d is "sha256:" and 64 lowercase hex digits.
func validDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	return ok && len(hex) == 64 && !strings.ContainsFunc(hex, func(r rune) bool {
		return (r < '0' || r > '9') && (r < 'a' || r > 'f')
	})
}

// pinning is the lock a guard checks tools and prompts against. tofu is set
// when the guard made the lock itself (no WithLock): it then trusts on
// first use, in the places Guard.Lock documents.
type pinning struct {
	lock *Lock
	tofu bool

	// fps caches Tool.Fingerprint by the fields it covers, for tools called
	// outside a registry: hashing the canonical definition costs more than
	// the rest of the check. It is cleared when it reaches maxFingerprints,
	// so that a stream of new definitions cannot grow it without bound.
	mu  sync.Mutex
	fps map[fpKey]string
	// held are the names of the tools a Registry.Sync added or changed:
	// never pinned on first use, under any toolset, whichever way they are
	// called.
	held map[string]bool
}

// hold keeps tools of that name from being pinned on first use.
func (p *pinning) hold(name string) {
	p.mu.Lock()
	if p.held == nil {
		p.held = map[string]bool{}
	}
	p.held[name] = true
	p.mu.Unlock()
}

func (p *pinning) isHeld(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[name]
}

// reasonFirstUse is the reason of the audit record of a pin trusted on
// first use.
const reasonFirstUse = "trusted on first use"

// firstUseTool pins fp for the tool when the guard trusts on first use,
// nothing is pinned for it yet and no Sync holds its name, and records
// that it did (audit.KindToolsetChange) as the agent id (zero: unknown).
// It returns the error of a record that could not be written in strict
// audit mode: the tool is then not pinned.
func (g *Guard) firstUseTool(ctx context.Context, id identity.Identity, toolset, name, fp string) error {
	p := g.pins()
	if !p.tofu || p.isHeld(name) {
		return nil
	}
	if _, ok := p.lock.Tool(toolset, name); ok {
		return nil
	}
	c := audit.Change{Action: ApproveToolChange, Name: name, Toolset: toolset, Fingerprint: fp}
	return g.firstUse(ctx, id, c, func(record func() error) error {
		return p.lock.swapTool(toolset, name, "", fp, record)
	})
}

// firstUse pins c, new, with swap, and records it as the agent id.
func (g *Guard) firstUse(ctx context.Context, id identity.Identity, c audit.Change, swap func(record func() error) error) error {
	ev := audit.Event{Kind: audit.KindToolsetChange, Tool: c.Name, Toolset: c.Toolset, Change: &c,
		Decision: audit.Allow, Reason: reasonFirstUse, Outcome: audit.OutcomeOK}
	if c.Action == ApprovePromptChange {
		ev.Kind, ev.Tool = audit.KindPromptChange, ""
	}
	if !id.ID.IsZero() {
		ev.Agent, ev.Chain = id.ID.String(), id.ChainStrings()
	}
	if task, ok := TaskFromContext(ctx); ok && task.g == g {
		ev.Task, ev.OnBehalfOf = task.spec.ID, task.spec.OnBehalfOf
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		ev.TraceID, ev.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	err := swap(func() error {
		ev.Time = g.cfg.now() // a sink that panics has not written it: writeAudit fails
		return g.writeAudit(ctx, ev)
	})
	if errors.Is(err, ErrPinChanged) {
		return nil // pinned by another first use meanwhile: checked as any pin
	}
	if err != nil {
		return fmt.Errorf("agentguard: %s %q trusted on first use, but not recorded, so not pinned: %w", what(c.Action), c.Name, err)
	}
	return nil
}

func what(action string) string {
	if action == ApprovePromptChange {
		return "prompt"
	}
	return "tool"
}

type fpKey struct {
	name, title, description, schema, output string
	annotations                              Annotations
}

const maxFingerprints = 1024

// fingerprint returns t.Fingerprint(), cached.
func (p *pinning) fingerprint(t *Tool) string {
	k := fpKey{t.Name, t.Title, t.Description, string(t.InputSchema), string(t.OutputSchema), t.Annotations}
	p.mu.Lock()
	fp, ok := p.fps[k]
	p.mu.Unlock()
	if ok {
		return fp
	}
	fp = t.Fingerprint()
	p.mu.Lock()
	if p.fps == nil || len(p.fps) >= maxFingerprints {
		p.fps = make(map[fpKey]string)
	}
	p.fps[k] = fp
	p.mu.Unlock()
	return fp
}

// Lock returns the lock in use: the one given to WithLock, or the guard's
// own. Without WithLock the guard starts with an empty lock and trusts on
// first use: Registry.Register pins the tools it registers, Guard.Invoke,
// Guard.Wrap and Guard.Middleware pin a tool at its first call, and
// Guard.Prompt pins a prompt the first time; a definition or prompt that
// differs from its pin is blocked all the same, and no tool of a name that
// Registry.Sync added or changed is pinned unreviewed, whatever its
// toolset. Each pin on first use is audited (audit.KindToolsetChange or
// audit.KindPromptChange, decision allow, reason "trusted on first use");
// in strict audit mode a pin whose record cannot be written is not made.
// With WithLock nothing is pinned without review. Write the lock out
// (WriteFile) to keep what was approved.
//
// Trust on first use is for the agent's own tools and prompts. Take the
// tools of a tool server (MCP) through Registry.Sync, or pin them in a
// reviewed lock given to WithLock: a tool first seen through Invoke or
// Middleware is trusted as it comes.
func (g *Guard) Lock() *Lock { return g.pins().lock }

// pins returns the guard's pinning: WithLock's, or its own (New).
func (g *Guard) pins() *pinning { return g.cfg.pins }

// registryTool marks the context of a call through a registry with the
// registry's entry for the tool called, so that the integrity check uses
// the fingerprint computed at registration and never pins on first use.
type registryTool struct{}

// verifyTool returns an error when t's definition is not trusted: it is not
// pinned as it is, or the WithIntegrity check refuses it. A tool called
// outside a registry that is not pinned yet is pinned now when the guard
// trusts on first use.
func (g *Guard) verifyTool(ctx context.Context, t *Tool) error {
	return g.verifyToolAs(ctx, identity.Identity{}, t)
}

// verifyToolAs is verifyTool for a call by the agent id, which the record
// of a pin on first use names.
func (g *Guard) verifyToolAs(ctx context.Context, id identity.Identity, t *Tool) error {
	p := g.pins()
	if e, ok := ctx.Value(registryTool{}).(*entry); ok && e.tool == t {
		return g.trusted(ctx, p.lock, t, e.fp)
	}
	fp := p.fingerprint(t)
	if err := g.firstUseTool(ctx, id, t.Toolset, t.Name, fp); err != nil {
		return err
	}
	return g.trusted(ctx, p.lock, t, fp)
}

// trusted checks t, whose fingerprint is fp, against l and the
// WithIntegrity check.
func (g *Guard) trusted(ctx context.Context, l *Lock, t *Tool, fp string) error {
	if err := l.check(t.Toolset, t.Name, fp); err != nil {
		return err
	}
	if g.cfg.integrity != nil {
		return g.cfg.integrity.Verify(ctx, t)
	}
	return nil
}
