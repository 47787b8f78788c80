package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go"
)

// Document is one Cedar policy document and the name (usually a file name)
// that positions in errors refer to.
type Document struct {
	Name string
	Text []byte
}

// Set is a parsed set of Cedar policies, each named by its @id annotation.
// A Set is immutable and safe for concurrent use.
type Set struct {
	ps     *cedar.PolicySet
	index  *index // over every policy
	ids    []string
	digest string

	// logOnly names the policies annotated @log_only, sorted; live indexes
	// the others, the policies that are enforced. Without log-only
	// policies, live is index.
	logOnly []string
	live    *index
	livePS  *cedar.PolicySet
}

// AnnotationLogOnly marks a policy that is evaluated and recorded but never
// enforced: @log_only, or @log_only("why"). See CedarEngine.Decide.
const AnnotationLogOnly = "log_only"

// NewSet parses documents into one set. Every policy must have a unique,
// non-empty @id annotation; a missing or repeated ID, or a syntax error, is an
// error that names the document and position.
func NewSet(docs ...Document) (*Set, error) {
	ps := cedar.NewPolicySet()
	where := map[cedar.PolicyID]cedar.Position{}
	for _, d := range docs {
		list, err := cedar.NewPolicyListFromBytes(d.Name, d.Text)
		if err != nil {
			return nil, &parseError{name: d.Name, err: err}
		}
		for _, p := range list {
			pos := p.Position()
			id, ok := p.Annotations()["id"]
			if !ok || strings.TrimSpace(string(id)) == "" {
				return nil, fmt.Errorf("policy: %s: policy has no @id annotation", posString(pos))
			}
			pid := cedar.PolicyID(id)
			if prev, dup := where[pid]; dup {
				return nil, fmt.Errorf("policy: %s: duplicate @id %q, first at %s", posString(pos), id, posString(prev))
			}
			where[pid] = pos
			ps.Add(pid, p)
		}
	}
	s := &Set{ps: ps, index: newIndex(ps)}
	enforced := cedar.NewPolicySet()
	for id, p := range ps.All() {
		if _, ok := p.Annotations()[AnnotationLogOnly]; ok {
			s.logOnly = append(s.logOnly, string(id))
			continue
		}
		enforced.Add(id, p)
	}
	slices.Sort(s.logOnly)
	s.live, s.livePS = s.index, ps
	if len(s.logOnly) > 0 {
		s.live, s.livePS = newIndex(enforced), enforced
	}
	h := sha256.New()
	for id := range ps.Map() {
		s.ids = append(s.ids, string(id))
	}
	slices.Sort(s.ids)
	for _, id := range s.ids {
		fmt.Fprintf(h, "%d:%s\n", len(id), id)
		text := ps.Get(cedar.PolicyID(id)).MarshalCedar()
		fmt.Fprintf(h, "%d:%s\n", len(text), text)
	}
	s.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// ParseSet parses one document given as a string.
func ParseSet(name, text string) (*Set, error) {
	return NewSet(Document{Name: name, Text: []byte(text)})
}

// MustParseSet is like ParseSet but panics on error. It is for tests,
// examples and policies embedded in a program.
func MustParseSet(name, text string) *Set {
	s, err := ParseSet(name, text)
	if err != nil {
		panic(err)
	}
	return s
}

// LoadFiles parses the named files into one set.
func LoadFiles(paths ...string) (*Set, error) {
	docs := make([]Document, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		docs = append(docs, Document{Name: p, Text: b})
	}
	return NewSet(docs...)
}

// LoadFS parses every file of fsys whose name ends in ".cedar", walking the
// whole tree in lexical order and skipping hidden entries (names starting
// with "."), into one set. A tree with no such file is an
// error, so that a wrong path cannot silently load an empty (deny-all) set.
func LoadFS(fsys fs.FS) (*Set, error) {
	docs, err := readTree(fsys, "")
	if err != nil {
		return nil, err
	}
	return NewSet(docs...)
}

// LoadDir is LoadFS over the directory dir; errors name files by their
// path under dir.
func LoadDir(dir string) (*Set, error) {
	docs, err := readTree(os.DirFS(dir), dir)
	if err != nil {
		return nil, err
	}
	return NewSet(docs...)
}

// readTree reads every .cedar file of fsys, naming each prefix/path.
func readTree(fsys fs.FS, prefix string) ([]Document, error) {
	var docs []Document
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// Hidden entries are skipped: editors' temporary files, and the
		// "..data" and "..<timestamp>" directories of a Kubernetes
		// ConfigMap volume, whose files are also linked at the top.
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || path.Ext(p) != ".cedar" {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := p
		if prefix != "" {
			name = filepath.Join(prefix, filepath.FromSlash(p))
		}
		docs = append(docs, Document{Name: name, Text: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("policy: no .cedar files found")
	}
	return docs, nil
}

// IDs returns the policy IDs, sorted.
func (s *Set) IDs() []string { return slices.Clone(s.ids) }

// LogOnly returns the IDs of the policies annotated @log_only, sorted.
func (s *Set) LogOnly() []string { return slices.Clone(s.logOnly) }

// Len is the number of policies.
func (s *Set) Len() int { return len(s.ids) }

// Digest identifies the set's content: "sha256:<hex>" over the policies in ID
// order, independent of file names and order.
func (s *Set) Digest() string { return s.digest }

// parseError is a syntax error in a document. cedar-go names the position
// "<input>:line:col" whatever the document; the message names the document.
type parseError struct {
	name string
	err  error
}

func (e *parseError) Error() string {
	msg := e.err.Error()
	if m := cedarParsePos.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("policy: %s:%s:%s: syntax error: %s", e.name, m[1], m[2], m[3])
	}
	return "policy: " + e.name + ": " + msg
}

var cedarParsePos = regexp.MustCompile(`^parser error: parse error at <input>:(\d+):(\d+) (.*)$`)

func (e *parseError) Unwrap() error { return e.err }

func posString(p cedar.Position) string {
	name := p.Filename
	if name == "" {
		name = "<input>"
	}
	return fmt.Sprintf("%s:%d:%d", name, p.Line, p.Column)
}
