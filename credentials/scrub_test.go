package credentials_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/agentguard/go-sdk/credentials"
)

func TestScrub(t *testing.T) {
	const v = "tok+en/with=special&chars\"\\"
	c := &credentials.Credential{Secret: credentials.NewSecret(v)}
	for _, form := range []string{
		v,
		url.QueryEscape(v),
		url.PathEscape(v),
		`tok+en/with=special&chars\"\\`,
		base64.StdEncoding.EncodeToString([]byte(v)),
		base64.RawURLEncoding.EncodeToString([]byte(v)),
	} {
		got := credentials.Scrub("before "+form+" after", c)
		if strings.Contains(got, form) || got != "before "+credentials.Redacted+" after" {
			t.Errorf("Scrub(%q) = %q", form, got)
		}
	}
	short := &credentials.Credential{Secret: credentials.NewSecret("ab")}
	if got := credentials.Scrub("ab cab", short, nil); got != "ab cab" {
		t.Errorf("short secret scrubbed: %q", got)
	}
}

// TestScrubber: a Scrubber removes every form Scrub removes, of every
// credential, in one pass; Contains says whether it would; nil, none and
// short values scrub nothing.
func TestScrubber(t *testing.T) {
	const v1, v2 = "tok+en/with=special&chars\"\\<é>", "second-value"
	creds := []*credentials.Credential{
		{Secret: credentials.NewSecret(v1)}, nil, {Secret: credentials.NewSecret(v2)}, {Secret: credentials.NewSecret("ab")},
	}
	sc := credentials.NewScrubber(creds...)
	for _, v := range []string{v1, v2} {
		for _, form := range []string{
			v,
			url.QueryEscape(v),
			url.PathEscape(v),
			base64.StdEncoding.EncodeToString([]byte(v)),
			base64.RawStdEncoding.EncodeToString([]byte(v)),
			base64.URLEncoding.EncodeToString([]byte(v)),
			base64.RawURLEncoding.EncodeToString([]byte(v)),
		} {
			text := "before " + form + " after"
			if got, want := sc.Scrub(text), credentials.Scrub(text, creds...); got != want || got != "before "+credentials.Redacted+" after" {
				t.Errorf("Scrub(%q) = %q; Scrub of the package %q", text, got, want)
			}
			if !sc.Contains(text) {
				t.Errorf("Contains(%q) = false", text)
			}
		}
	}
	// Both values, twice, and JSON-escaped (as in JSON text).
	j, _ := json.Marshal(v1 + " " + v2)
	for _, text := range []string{v1 + v2 + v1 + "x" + v2, string(j)} {
		if got := sc.Scrub(text); strings.Contains(got, v2) || strings.Contains(got, "special") {
			t.Errorf("Scrub(%q) = %q", text, got)
		}
	}
	for _, text := range []string{"", "nothing here", "ab cab", "second-valu", credentials.Redacted} {
		if sc.Contains(text) || sc.Scrub(text) != text {
			t.Errorf("%q: Contains = %v, Scrub = %q", text, sc.Contains(text), sc.Scrub(text))
		}
	}
	var none *credentials.Scrubber
	for _, s := range []*credentials.Scrubber{none, credentials.NewScrubber(), credentials.NewScrubber(creds[3])} {
		if s.Contains(v1) || s.Scrub(v1) != v1 {
			t.Errorf("an empty scrubber changed %q", v1)
		}
	}
}

// TestScrubberOverlap: where one value holds another, the longer is
// replaced whole.
func TestScrubberOverlap(t *testing.T) {
	sc := credentials.NewScrubber(&credentials.Credential{Secret: credentials.NewSecret("abcd")},
		&credentials.Credential{Secret: credentials.NewSecret("abcdefgh")})
	if got := sc.Scrub("x abcdefgh y abcd z"); got != "x [REDACTED] y [REDACTED] z" {
		t.Errorf("Scrub = %q", got)
	}
}

// BenchmarkScrubber scrubs 1,000 strings of the values of 32 credentials:
// with Scrub, which works out every form of every value for each string,
// and with one Scrubber.
func BenchmarkScrubber(b *testing.B) {
	creds := make([]*credentials.Credential, 32)
	for i := range creds {
		creds[i] = &credentials.Credential{Secret: credentials.NewSecret(fmt.Sprintf("secret-value-%02d-%s", i, strings.Repeat("x", 20)))}
	}
	texts := make([]string, 1000)
	for i := range texts {
		texts[i] = fmt.Sprintf("an ordinary argument string number %d", i)
	}
	b.Run("Scrub", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, s := range texts {
				_ = credentials.Scrub(s, creds...)
			}
		}
	})
	b.Run("Scrubber", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sc := credentials.NewScrubber(creds...)
			for _, s := range texts {
				_ = sc.Scrub(s)
			}
		}
	})
	b.Run("Scrubber.Contains", func(b *testing.B) {
		b.ReportAllocs()
		sc := credentials.NewScrubber(creds...)
		for b.Loop() {
			for _, s := range texts {
				_ = sc.Contains(s)
			}
		}
	})
}
