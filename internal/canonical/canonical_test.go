package canonical

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantMsg string // substring of the error, if any
	}{
		{name: "repeated key", in: `{"a":1,"a":2}`, wantMsg: `repeated object key "a"`},
		{name: "repeated key same value", in: `{"a":1,"a":1}`, wantMsg: `repeated object key "a"`},
		{name: "repeated key via escape", in: `{"a":1,"\u0061":2}`, wantMsg: `repeated object key "a"`},
		{name: "repeated key nested object", in: `{"outer":{"b":true,"b":false}}`, wantMsg: `repeated object key "b"`},
		{name: "repeated key in object in array", in: `{"list":[{"c":1},{"c":1,"c":2}]}`, wantMsg: `repeated object key "c"`},
		{name: "repeated key deep", in: `[[[{"x":{"y":{"z":1,"z":2}}}]]]`, wantMsg: `repeated object key "z"`},
		{name: "trailing value", in: `{} {}`, wantMsg: "trailing data"},
		{name: "trailing scalar", in: `1 2`, wantMsg: "trailing data"},
		{name: "trailing garbage", in: `{"a":1}x`},
		{name: "trailing close brace", in: `{"a":1}}`},
		{name: "unterminated object", in: `{"a":1`},
		{name: "unterminated array", in: `[1,2`},
		{name: "missing value", in: `{"a":}`},
		{name: "missing colon", in: `{"a" 1}`},
		{name: "trailing comma", in: `[1,2,]`},
		{name: "single quotes", in: `{'a':1}`},
		{name: "bare word", in: `hello`},
		{name: "non-string key", in: `{1:2}`},
		{name: "lone close", in: `]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse(%s) = %#v, want error", tc.in, v)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%s) error %v is not ErrInvalid", tc.in, err)
			}
			if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Parse(%s) error %q does not contain %q", tc.in, err, tc.wantMsg)
			}
			if v != nil {
				t.Errorf("Parse(%s) returned value %#v with an error", tc.in, v)
			}
			// JSON must refuse the same input.
			if _, _, err := JSON([]byte(tc.in)); !errors.Is(err, ErrInvalid) {
				t.Errorf("JSON(%s) error = %v, want ErrInvalid", tc.in, err)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{name: "nil input", in: "", want: map[string]any{}},
		{name: "white space only", in: " \n\t\r ", want: map[string]any{}},
		{name: "empty object", in: `{}`, want: map[string]any{}},
		{name: "empty array", in: `[]`, want: []any{}},
		{name: "string", in: `"s"`, want: "s"},
		{name: "null", in: `null`, want: nil},
		{name: "number stays json.Number", in: `1.50`, want: json.Number("1.50")},
		{name: "big integer", in: `12345678901234567890`, want: json.Number("12345678901234567890")},
		{
			name: "nested",
			in:   ` {"a": [1, "x", true, null, {"b": {}}], "c": {"d": false}} `,
			want: map[string]any{
				"a": []any{json.Number("1"), "x", true, nil, map[string]any{"b": map[string]any{}}},
				"c": map[string]any{"d": false},
			},
		},
		{name: "same key in sibling objects is fine", in: `[{"a":1},{"a":2}]`, want: []any{map[string]any{"a": json.Number("1")}, map[string]any{"a": json.Number("2")}}},
		{name: "same key at different depths is fine", in: `{"a":{"a":1}}`, want: map[string]any{"a": map[string]any{"a": json.Number("1")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var raw []byte
			if tc.in != "" {
				raw = []byte(tc.in)
			}
			got, err := Parse(raw)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
		})
	}
}

func TestJSONCanonicalForm(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty input", in: "", want: `{}`},
		{name: "white space input", in: "  \n ", want: `{}`},
		{name: "sorted keys", in: `{"b":1,"a":2,"c":3}`, want: `{"a":2,"b":1,"c":3}`},
		{name: "sorted nested keys", in: `{"z":{"y":1,"x":2},"a":[{"d":1,"c":2}]}`, want: `{"a":[{"c":2,"d":1}],"z":{"x":2,"y":1}}`},
		{name: "white space removed", in: "{ \"a\" :\n [ 1 , 2 ] ,\t\"b\" : { } }", want: `{"a":[1,2],"b":{}}`},
		{name: "no HTML escaping", in: `{"h":"<a href=\"x\">&amp;</a>"}`, want: `{"h":"<a href=\"x\">&amp;</a>"}`},
		{name: "escaped HTML unescaped", in: `{"h":"\u003cb\u003e \u0026"}`, want: `{"h":"<b> &"}`},
		{name: "decimal trailing zero kept", in: `{"n":1.50}`, want: `{"n":1.50}`},
		{name: "big integer kept", in: `{"n":12345678901234567890}`, want: `{"n":12345678901234567890}`},
		{name: "exponent kept", in: `{"n":1e400}`, want: `{"n":1e400}`},
		{name: "negative zero kept", in: `{"n":-0.0}`, want: `{"n":-0.0}`},
		{name: "many digits kept", in: `[0.1000000000000000055511151231257827]`, want: `[0.1000000000000000055511151231257827]`},
		{name: "literals", in: `[true,false,null]`, want: `[true,false,null]`},
		{name: "unicode unescaped", in: `"\u00e9t\u00e9"`, want: `"été"`},
		{name: "keys sorted bytewise", in: `{"b":0,"C":0,"a":0,"_":0}`, want: `{"C":0,"_":0,"a":0,"b":0}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, v, err := JSON([]byte(tc.in))
			if err != nil {
				t.Fatalf("JSON(%q): %v", tc.in, err)
			}
			if string(got) != tc.want {
				t.Errorf("JSON(%q) = %s, want %s", tc.in, got, tc.want)
			}
			pv, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(v, pv) {
				t.Errorf("JSON value %#v differs from Parse value %#v", v, pv)
			}
			// Canonical form is a fixed point.
			again, _, err := JSON(got)
			if err != nil {
				t.Fatalf("JSON(canonical %s): %v", got, err)
			}
			if string(again) != string(got) {
				t.Errorf("canonical form not stable: %s then %s", got, again)
			}
		})
	}
}

func TestJSONSameDigestForEquivalentEncodings(t *testing.T) {
	a, _, err := JSON([]byte(`{"b": [1, 2], "a": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := JSON([]byte("{\n  \"a\":\"x\",\n  \"b\":[1,2]\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if Digest(a) != Digest(b) {
		t.Errorf("equivalent documents have digests %s and %s", Digest(a), Digest(b))
	}
	c, _, err := JSON([]byte(`{"a":"x","b":[2,1]}`))
	if err != nil {
		t.Fatal(err)
	}
	if Digest(a) == Digest(c) {
		t.Errorf("different documents share digest %s", Digest(a))
	}
}

func TestMarshal(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{name: "map sorted", in: map[string]any{"b": 1, "a": "<&>"}, want: `{"a":"<&>","b":1}`},
		{name: "json.Number", in: []any{json.Number("1.50")}, want: `[1.50]`},
		{name: "struct", in: struct {
			X string `json:"x"`
		}{X: "&"}, want: `{"x":"&"}`},
		{name: "no trailing newline", in: "s", want: `"s"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("Marshal = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := Marshal(map[string]any{"f": func() {}}); err == nil {
		t.Error("Marshal of a func succeeded, want error")
	}
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func TestDigest(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{in: "", want: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{in: "abc", want: "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{in: "{}", want: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
	}
	for _, tc := range tests {
		got := Digest([]byte(tc.in))
		if got != tc.want {
			t.Errorf("Digest(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if !digestRE.MatchString(got) {
			t.Errorf("Digest(%q) = %s, not sha256:<64 hex>", tc.in, got)
		}
	}
	if Digest([]byte("a")) == Digest([]byte("b")) {
		t.Error("different inputs share a digest")
	}
}

func TestSortedSet(t *testing.T) {
	tests := []struct {
		name  string
		lists [][]string
		want  []string
	}{
		{name: "no lists", lists: nil, want: nil},
		{name: "empty lists", lists: [][]string{{}, nil}, want: nil},
		{name: "only blanks", lists: [][]string{{"", " ", "\t\n"}}, want: nil},
		{name: "sorts", lists: [][]string{{"c", "a", "b"}}, want: []string{"a", "b", "c"}},
		{name: "dedups", lists: [][]string{{"b", "a", "b", "a"}}, want: []string{"a", "b"}},
		{name: "dedups across lists", lists: [][]string{{"x", "y"}, {"y", "z"}, {"x"}}, want: []string{"x", "y", "z"}},
		{name: "drops blanks", lists: [][]string{{"", "a", "  "}}, want: []string{"a"}},
		{name: "trims before dedup", lists: [][]string{{" a", "a ", "a"}}, want: []string{"a"}},
		{name: "case sensitive", lists: [][]string{{"a", "A"}}, want: []string{"A", "a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SortedSet(tc.lists...)
			if len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
				t.Errorf("SortedSet(%q) = %q, want %q", tc.lists, got, tc.want)
			}
		})
	}
}

func TestSortedSetDoesNotModifyInput(t *testing.T) {
	in := []string{"b", "a", "b"}
	_ = SortedSet(in)
	if !reflect.DeepEqual(in, []string{"b", "a", "b"}) {
		t.Errorf("input modified: %q", in)
	}
}

// corpus holds valid JSON documents without repeated keys, for comparing
// Parse and JSON with encoding/json.
var corpus = []string{
	`{}`,
	`[]`,
	`null`,
	`true`,
	`"plain ascii"`,
	`{"a":1,"b":[true,false,null],"c":{"d":"e"}}`,
	`{ "spaced" : [ 1 , 2 , { "x" : "y" } ] , "t" : "\t" }`,
	`"esc \" \\ \/ \b \f \n \r \t"`,
	`"\u0041\u00e9\u4e2d\ud83d\ude00"`,
	`"lone surrogate \ud800 here"`,
	"\"raw utf-8 \u00e9 \u4e2d \U0001F600\"",
	"\"invalid utf-8 \xff\xfe here\"",
	"{\"k\xff\":\"v\xc3\"}",
	`"line sep \u2028 para sep \u2029"`,
	"\"raw line sep \u2028\"",
	`"control \u0001 \u001f \u007f"`,
	"\"DEL \x7f raw\"",
	`"<script>&amp;</script>"`,
	`"\u003c\u003e\u0026"`,
	`[0,-0,1.5,-1.50,1e10,1E-10,-2.5e+3,123456789012345678901234567890]`,
	`{"":"empty key","\u0000":"nul key"}`,
	`{"nested":{"deeper":{"deepest":[[[{"k":[]}]]]}}}`,
	`[{"a":1},{"a":2},{"a":{"a":3}}]`,
	`{"b":1,"a":2,"C":3,"_":4,"é":5,"e":6,"ab":7,"a b":8}`,
	"\n\t {\"trailing\":\"ws\"} \r\n",
}

func decodeStd(t *testing.T, raw string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return v
}

func TestParseMatchesEncodingJSON(t *testing.T) {
	for _, raw := range corpus {
		got, err := Parse([]byte(raw))
		if err != nil {
			t.Errorf("Parse(%q): %v", raw, err)
			continue
		}
		if want := decodeStd(t, raw); !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q) = %#v, encoding/json gives %#v", raw, got, want)
		}
	}
}

func TestJSONMatchesEncoder(t *testing.T) {
	for _, raw := range corpus {
		got, _, err := JSON([]byte(raw))
		if err != nil {
			t.Errorf("JSON(%q): %v", raw, err)
			continue
		}
		var buf strings.Builder
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(decodeStd(t, raw)); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(buf.String(), "\n")
		if string(got) != want {
			t.Errorf("JSON(%q) = %s, encoding/json (no HTML escaping) gives %s", raw, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("JSON(%q) = %s is not valid JSON", raw, got)
		}
	}
}

func TestParseRepeatedKeyAfterDecoding(t *testing.T) {
	// Keys that are spelled differently but decode to the same string are
	// the same key.
	tests := []string{
		`{"é":1,"\u00e9":2}`,
		`{"a/b":1,"a\/b":2}`,
		`{"\u0041":1,"A":2}`,
		`{"\ud83d\ude00":1,"` + "\U0001F600" + `":2}`,
		"{\"\xff\":1,\"\ufffd\":2}",
		"{\"x\xff\":1,\"x\xfe\":2}",
		`{"\ud800":1,"\udbff":2}`,
	}
	for _, raw := range tests {
		if v, err := Parse([]byte(raw)); !errors.Is(err, ErrInvalid) || !strings.Contains(fmt.Sprint(err), "repeated object key") {
			t.Errorf("Parse(%q) = %#v, %v; want repeated key error", raw, v, err)
		}
	}
}

func TestMarshalOtherValues(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{name: "raw message canonicalized", in: map[string]any{"args": json.RawMessage(`{ "b" : 1, "a" : "<" }`)}, want: `{"args":{"a":"<","b":1}}`},
		{name: "typed map", in: map[string]int{"z": 1, "a": 2}, want: `{"a":2,"z":1}`},
		{name: "string slice", in: []string{"b", "a"}, want: `["b","a"]`},
		{name: "int", in: 42, want: `42`},
		{name: "float", in: 1.5, want: `1.5`},
		{name: "nil", in: nil, want: `null`},
		{name: "nil pointer", in: (*int)(nil), want: `null`},
		{name: "html in nested struct", in: map[string]any{"s": struct{ A string }{A: "a&b<c>"}}, want: `{"s":{"A":"a&b<c>"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("Marshal = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := Marshal(map[string]any{"args": json.RawMessage(`{"a":1,"a":2}`)}); err == nil {
		t.Error("Marshal of raw JSON with a repeated key succeeded")
	}
}

func TestDeepNesting(t *testing.T) {
	const depth = 5000
	raw := strings.Repeat(`{"a":[`, depth) + `1` + strings.Repeat(`]}`, depth)
	got, _, err := JSON([]byte(" " + raw + " "))
	if err != nil {
		t.Fatalf("JSON of deeply nested document: %v", err)
	}
	if string(got) != raw {
		t.Errorf("deeply nested document not preserved (len %d, want %d)", len(got), len(raw))
	}
	dup := strings.Repeat(`[`, depth) + `{"k":1,"k":2}` + strings.Repeat(`]`, depth)
	if _, err := Parse([]byte(dup)); !errors.Is(err, ErrInvalid) {
		t.Errorf("repeated key at depth %d: err = %v", depth, err)
	}
}
