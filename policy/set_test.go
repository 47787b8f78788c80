package policy_test

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/agentguard/go-sdk/policy"
)

const (
	permitA = "@id(\"a\")\npermit(principal, action, resource);\n"
	permitB = "@id(\"b\")\npermit(principal, action, resource);\n"
	forbidC = "@id(\"c\")\n@reason(\"no\")\nforbid(principal, action, resource);\n"
)

func TestNewSetErrors(t *testing.T) {
	tests := []struct {
		name string
		docs []policy.Document
		// every substring must be in the error
		want []string
	}{
		{
			name: "missing id",
			docs: []policy.Document{{Name: "p.cedar", Text: []byte(permitA + "\n  permit(principal, action, resource);\n")}},
			want: []string{"p.cedar:4:3", "no @id"},
		},
		{
			name: "missing id in first policy",
			docs: []policy.Document{{Name: "first.cedar", Text: []byte("permit(principal, action, resource);")}},
			want: []string{"first.cedar:1:1", "no @id"},
		},
		{
			name: "blank id",
			docs: []policy.Document{{Name: "blank.cedar", Text: []byte("\n@id(\"  \") permit(principal, action, resource);")}},
			want: []string{"blank.cedar:2:1", "no @id"},
		},
		{
			name: "empty id",
			docs: []policy.Document{{Name: "empty.cedar", Text: []byte("@id(\"\") permit(principal, action, resource);")}},
			want: []string{"empty.cedar:1:1", "no @id"},
		},
		{
			name: "missing id without document name",
			docs: []policy.Document{{Text: []byte("permit(principal, action, resource);")}},
			want: []string{"<input>:1:1", "no @id"},
		},
		{
			name: "duplicate id in one document",
			docs: []policy.Document{{Name: "one.cedar", Text: []byte(permitA + "\n" + permitA)}},
			want: []string{`duplicate @id "a"`, "one.cedar:4:1", "first at one.cedar:1:1"},
		},
		{
			name: "duplicate id across documents",
			docs: []policy.Document{
				{Name: "a.cedar", Text: []byte(permitA)},
				{Name: "b.cedar", Text: []byte("\n\n   @id(\"a\") forbid(principal, action, resource);")},
			},
			want: []string{`duplicate @id "a"`, "b.cedar:3:4", "first at a.cedar:1:1"},
		},
		{
			name: "syntax error names document",
			docs: []policy.Document{
				{Name: "good.cedar", Text: []byte(permitA)},
				{Name: "bad.cedar", Text: []byte("@id(\"x\") permit(principal, action, resource")},
			},
			want: []string{"policy: bad.cedar:"},
		},
		{
			name: "unknown keyword",
			docs: []policy.Document{{Name: "kw.cedar", Text: []byte("@id(\"x\") allow(principal, action, resource);")}},
			want: []string{"policy: kw.cedar:"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := policy.NewSet(tc.docs...)
			if err == nil {
				t.Fatalf("NewSet succeeded with IDs %q, want error", s.IDs())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestNewSetOK(t *testing.T) {
	tests := []struct {
		name string
		docs []policy.Document
		ids  []string
	}{
		{name: "no documents", docs: nil, ids: nil},
		{name: "empty document", docs: []policy.Document{{Name: "e.cedar"}}, ids: nil},
		{name: "comment only", docs: []policy.Document{{Name: "c.cedar", Text: []byte("// nothing\n")}}, ids: nil},
		{name: "one", docs: []policy.Document{{Name: "a", Text: []byte(permitA)}}, ids: []string{"a"}},
		{
			name: "sorted across documents",
			docs: []policy.Document{
				{Name: "2", Text: []byte(forbidC + permitB)},
				{Name: "1", Text: []byte("@id(\"Z\") permit(principal, action, resource);" + permitA)},
			},
			ids: []string{"Z", "a", "b", "c"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := policy.NewSet(tc.docs...)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.IDs(); !reflect.DeepEqual(got, tc.ids) {
				t.Errorf("IDs = %q, want %q", got, tc.ids)
			}
			if s.Len() != len(tc.ids) {
				t.Errorf("Len = %d, want %d", s.Len(), len(tc.ids))
			}
			if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(s.Digest()) {
				t.Errorf("Digest = %q", s.Digest())
			}
		})
	}
}

func TestIDsReturnsCopy(t *testing.T) {
	s := policy.MustParseSet("x", permitA+permitB)
	ids := s.IDs()
	ids[0] = "mutated"
	if got := s.IDs(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("IDs after mutating a previous result = %q", got)
	}
}

func TestParseSetAndMustParseSet(t *testing.T) {
	s, err := policy.ParseSet("doc.cedar", permitA)
	if err != nil {
		t.Fatal(err)
	}
	if m := policy.MustParseSet("other.cedar", permitA); m.Digest() != s.Digest() {
		t.Errorf("MustParseSet digest %s != ParseSet digest %s", m.Digest(), s.Digest())
	}
	if _, err := policy.ParseSet("doc.cedar", "permit(principal, action, resource);"); err == nil {
		t.Error("ParseSet without @id succeeded")
	}
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("MustParseSet of an invalid document did not panic")
		}
		if err, ok := r.(error); !ok || !strings.Contains(err.Error(), "bad.cedar") {
			t.Errorf("panic value %v does not name the document", r)
		}
	}()
	policy.MustParseSet("bad.cedar", "@id(\"x\") permit(")
}

func TestDigest(t *testing.T) {
	base, err := policy.NewSet(
		policy.Document{Name: "a.cedar", Text: []byte(permitA)},
		policy.Document{Name: "b.cedar", Text: []byte(permitB + forbidC)},
	)
	if err != nil {
		t.Fatal(err)
	}
	same := []struct {
		name string
		docs []policy.Document
	}{
		{name: "documents reversed", docs: []policy.Document{
			{Name: "b.cedar", Text: []byte(permitB + forbidC)},
			{Name: "a.cedar", Text: []byte(permitA)},
		}},
		{name: "different file names", docs: []policy.Document{
			{Name: "x/1.cedar", Text: []byte(permitA)},
			{Name: "y/2.cedar", Text: []byte(permitB + forbidC)},
		}},
		{name: "policies regrouped", docs: []policy.Document{
			{Name: "all.cedar", Text: []byte(forbidC + permitB + permitA)},
		}},
		{name: "one policy per document", docs: []policy.Document{
			{Name: "c", Text: []byte(forbidC)},
			{Name: "a", Text: []byte(permitA)},
			{Name: "b", Text: []byte(permitB)},
		}},
	}
	for _, tc := range same {
		t.Run("same/"+tc.name, func(t *testing.T) {
			s, err := policy.NewSet(tc.docs...)
			if err != nil {
				t.Fatal(err)
			}
			if s.Digest() != base.Digest() {
				t.Errorf("Digest = %s, want %s", s.Digest(), base.Digest())
			}
		})
	}
	differ := []struct {
		name string
		text string
	}{
		{name: "condition added", text: permitA + permitB + "@id(\"c\")\n@reason(\"no\")\nforbid(principal, action, resource) when { context.task.calls > 3 };"},
		{name: "effect changed", text: permitA + permitB + "@id(\"c\")\n@reason(\"no\")\npermit(principal, action, resource);"},
		{name: "reason changed", text: permitA + permitB + "@id(\"c\")\n@reason(\"never\")\nforbid(principal, action, resource);"},
		{name: "id changed", text: permitA + permitB + "@id(\"d\")\n@reason(\"no\")\nforbid(principal, action, resource);"},
		{name: "scope changed", text: permitA + permitB + "@id(\"c\")\n@reason(\"no\")\nforbid(principal, action == Action::\"x\", resource);"},
		{name: "policy removed", text: permitA + permitB},
		{name: "policy added", text: permitA + permitB + forbidC + "@id(\"e\") permit(principal, action, resource);"},
		{name: "ids swapped", text: "@id(\"a\")\n@reason(\"no\")\nforbid(principal, action, resource);\n" + permitB + "@id(\"c\")\npermit(principal, action, resource);"},
	}
	seen := map[string]string{base.Digest(): "base"}
	for _, tc := range differ {
		t.Run("differ/"+tc.name, func(t *testing.T) {
			s, err := policy.ParseSet("p.cedar", tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if prev, dup := seen[s.Digest()]; dup {
				t.Errorf("Digest %s equals that of %q", s.Digest(), prev)
			}
			seen[s.Digest()] = tc.name
		})
	}
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.cedar", permitA)
	b := write("b.cedar", permitB+forbidC)
	noID := write("noid.cedar", permitA+"\npermit(principal, action, resource);")
	dupe := write("dupe.cedar", "\n"+permitA)
	bad := write("bad.cedar", "@id(\"x\") permit(")
	notCedarExt := write("policy.txt", "@id(\"t\") permit(principal, action, resource);")

	want, err := policy.NewSet(
		policy.Document{Name: "a", Text: []byte(permitA)},
		policy.Document{Name: "b", Text: []byte(permitB + forbidC)},
	)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		paths   []string
		ids     []string
		digest  string
		wantErr []string
	}{
		{name: "two files", paths: []string{a, b}, ids: []string{"a", "b", "c"}, digest: want.Digest()},
		{name: "reverse order", paths: []string{b, a}, ids: []string{"a", "b", "c"}, digest: want.Digest()},
		{name: "any extension", paths: []string{notCedarExt}, ids: []string{"t"}},
		{name: "no paths", paths: nil, ids: nil},
		{name: "missing file", paths: []string{a, filepath.Join(dir, "missing.cedar")}, wantErr: []string{"missing.cedar"}},
		{name: "missing id names file and position", paths: []string{noID}, wantErr: []string{noID + ":4:1", "no @id"}},
		{name: "duplicate names both files", paths: []string{a, dupe}, wantErr: []string{dupe + ":2:1", "first at " + a + ":1:1"}},
		{name: "syntax error names file", paths: []string{a, bad}, wantErr: []string{bad}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := policy.LoadFiles(tc.paths...)
			checkLoaded(t, "LoadFiles", s, err, tc.wantErr, tc.ids)
			if tc.digest != "" && s.Digest() != tc.digest {
				t.Errorf("Digest = %s, want %s", s.Digest(), tc.digest)
			}
		})
	}
}

func TestLoadFS(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		ids     []string
		wantErr []string
	}{
		{
			name: "nested directories",
			fsys: fstest.MapFS{
				"a.cedar":               file(permitA),
				"team/b.cedar":          file(permitB),
				"team/deep/er/c.cedar":  file(forbidC),
				"team/README.md":        file("not policy"),
				"team/deep/notes.txt":   file("@id(\"n\") permit(principal, action, resource);"),
				"team/deep/x.cedar.bak": file("garbage"),
				"cedar":                 file("garbage, no extension"),
			},
			ids: []string{"a", "b", "c"},
		},
		{
			name: "non-cedar files with syntax errors ignored",
			fsys: fstest.MapFS{
				"p.cedar":   file(permitA),
				"p.json":    file("{ this is not cedar"),
				"p.cedarx":  file("{ this is not cedar"),
				"CEDAR.txt": file("{ this is not cedar"),
			},
			ids: []string{"a"},
		},
		{
			name:    "no cedar files",
			fsys:    fstest.MapFS{"README.md": file("x"), "sub/p.txt": file(permitA)},
			wantErr: []string{"no .cedar files"},
		},
		{
			name:    "empty fs",
			fsys:    fstest.MapFS{},
			wantErr: []string{"no .cedar files"},
		},
		{
			name:    "only directories",
			fsys:    fstest.MapFS{"dir/sub": &fstest.MapFile{Mode: 0o755 | os.ModeDir}},
			wantErr: []string{"no .cedar files"},
		},
		{
			name: "duplicate across nested files",
			fsys: fstest.MapFS{
				"a/one.cedar": file(permitA),
				"b/two.cedar": file("\n" + permitA),
			},
			wantErr: []string{"b/two.cedar:2:1", "first at a/one.cedar:1:1"},
		},
		{
			name: "missing id names path",
			fsys: fstest.MapFS{
				"x/y.cedar": file("permit(principal, action, resource);"),
			},
			wantErr: []string{"x/y.cedar:1:1", "no @id"},
		},
		{
			name: "syntax error names path",
			fsys: fstest.MapFS{
				"ok.cedar":      file(permitA),
				"dir/bad.cedar": file("@id(\"x\") permit("),
			},
			wantErr: []string{"dir/bad.cedar"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := policy.LoadFS(tc.fsys)
			checkLoaded(t, "LoadFS", s, err, tc.wantErr, tc.ids)
		})
	}
}

func TestLoadFSMatchesLoadFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"a.cedar": permitA, "sub/b.cedar": permitB + forbidC, "sub/ignored.md": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fromFS, err := policy.LoadFS(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	fromFiles, err := policy.LoadFiles(filepath.Join(dir, "sub", "b.cedar"), filepath.Join(dir, "a.cedar"))
	if err != nil {
		t.Fatal(err)
	}
	if fromFS.Digest() != fromFiles.Digest() {
		t.Errorf("LoadFS digest %s != LoadFiles digest %s", fromFS.Digest(), fromFiles.Digest())
	}
	if _, err := policy.LoadFS(os.DirFS(filepath.Join(dir, "does-not-exist"))); err == nil {
		t.Error("LoadFS of a missing directory succeeded")
	}
}

// checkLoaded asserts the outcome of a load: an error containing every
// string of wantErr, or else a set with exactly ids.
func checkLoaded(t *testing.T, what string, s *policy.Set, err error, wantErr, ids []string) {
	t.Helper()
	if wantErr != nil {
		if err == nil {
			t.Fatalf("%s succeeded with %q, want error", what, s.IDs())
		}
		for _, w := range wantErr {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not contain %q", err, w)
			}
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := s.IDs(); !reflect.DeepEqual(got, ids) {
		t.Errorf("IDs = %q, want %q", got, ids)
	}
}
