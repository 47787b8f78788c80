package credentials_test

import (
	"encoding/base64"
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
