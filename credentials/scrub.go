package credentials

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
)

// minScrubLen is the shortest value Scrub removes: shorter ones would
// mangle ordinary text and are no credentials worth the name.
const minScrubLen = 4

// Scrub returns s with the values of creds replaced by Redacted, in the
// forms a value usually takes in error text: as is, URL query and path
// escaped, JSON escaped and base64 encoded. It is a second line of defence
// for messages the SDK did not write, such as a tool's error; values shorter
// than four bytes are left alone.
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
