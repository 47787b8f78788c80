package credentials

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
)

// minScrubLen is the shortest value Scrub removes: shorter ones would
// mangle ordinary text and are no credentials worth the name.
const minScrubLen = 4

// Scrub returns s with the values of creds replaced by Redacted, in the
// forms a value usually takes in error text: as is, URL query and path
// escaped, JSON escaped and base64 encoded. It is a second line of defence
// for messages the SDK did not write, such as a tool's error; values shorter
// than four bytes are left alone. To scrub many strings, or long ones, of
// the same credentials, use a Scrubber.
func Scrub(s string, creds ...*Credential) string {
	for _, c := range creds {
		if c == nil {
			continue
		}
		v := c.Secret.Reveal()
		if len(v) < minScrubLen {
			continue
		}
		for _, form := range forms(v) {
			if form != "" {
				s = strings.ReplaceAll(s, form, Redacted)
			}
		}
	}
	return s
}

func forms(v string) []string {
	j, _ := json.Marshal(v) // escapes <, > and & too
	var plain strings.Builder
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	p := strings.TrimSuffix(plain.String(), "\n")
	return []string{
		v,
		url.QueryEscape(v),
		url.PathEscape(v),
		string(j[1 : len(j)-1]),
		p[1 : len(p)-1],
		base64.StdEncoding.EncodeToString([]byte(v)),
		base64.RawStdEncoding.EncodeToString([]byte(v)),
		base64.URLEncoding.EncodeToString([]byte(v)),
		base64.RawURLEncoding.EncodeToString([]byte(v)),
	}
}

// Scrubber removes the values of a fixed set of credentials from text, in
// the forms Scrub looks for. It works those forms out once, and finds all
// of them in one pass over the text, so scrubbing costs time in proportion
// to the length of the text, whatever the number of credentials: use it
// for text of any size that others choose, such as a call's arguments.
//
// Where two values overlap in the text, the one that starts first is
// replaced, and of two that start at the same place the longer. A
// Scrubber is safe for concurrent use; nil scrubs nothing.
type Scrubber struct {
	// r replaces every form of every value; nil when there is none.
	r *strings.Replacer
}

// NewScrubber returns a Scrubber of the values of creds; nil entries and
// values shorter than four bytes are left out, as Scrub leaves them.
func NewScrubber(creds ...*Credential) *Scrubber {
	seen := map[string]bool{}
	var all []string
	for _, c := range creds {
		if c == nil {
			continue
		}
		v := c.Secret.Reveal()
		if len(v) < minScrubLen {
			continue
		}
		for _, f := range forms(v) {
			if f != "" && !seen[f] {
				seen[f] = true
				all = append(all, f)
			}
		}
	}
	if len(all) == 0 {
		return &Scrubber{}
	}
	// A strings.Replacer prefers, at one place, the pair given first:
	// longest first, so a form that holds another is replaced whole.
	slices.SortStableFunc(all, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	pairs := make([]string, 0, 2*len(all))
	for _, f := range all {
		pairs = append(pairs, f, Redacted)
	}
	return &Scrubber{r: strings.NewReplacer(pairs...)}
}

// Scrub returns text with the values replaced by Redacted.
func (s *Scrubber) Scrub(text string) string {
	if s == nil || s.r == nil {
		return text
	}
	return s.r.Replace(text)
}

// Contains reports whether text holds a value in one of its forms: whether
// Scrub would change it. It copies nothing.
func (s *Scrubber) Contains(text string) bool {
	if s == nil || s.r == nil {
		return false
	}
	w := sameWriter{want: text}
	_, err := s.r.WriteString(&w, text)
	return err != nil || len(w.want) > 0
}

// errDiffers stops a Replacer writing to a sameWriter at the first
// replacement.
var errDiffers = errors.New("credentials: scrubbed text differs")

// sameWriter checks that what is written to it is want, in order: it
// consumes want as it goes, and fails at the first difference.
type sameWriter struct{ want string }

func (w *sameWriter) Write(p []byte) (int, error) { return w.WriteString(string(p)) }

func (w *sameWriter) WriteString(p string) (int, error) {
	if !strings.HasPrefix(w.want, p) {
		return 0, errDiffers
	}
	w.want = w.want[len(p):]
	return len(p), nil
}

// ScrubError returns err with the values of creds scrubbed from its text,
// as Scrub does; errors.Is and errors.As still see err. Nil stays nil.
func ScrubError(err error, creds ...*Credential) error {
	if err == nil {
		return nil
	}
	return &scrubbed{msg: Scrub(err.Error(), creds...), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
