package oauth_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/credentials/oauth"
)

// printed returns v in every fmt form, and as JSON and slog text.
func printed(v any) []string {
	out := []string{fmt.Sprintf("%v", v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v), fmt.Sprintf("%s", v), fmt.Sprintf("%q", v), fmt.Sprint(v)}
	if b, err := json.Marshal(v); err == nil {
		out = append(out, string(b))
	}
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("x", "v", v)
	return append(out, sb.String())
}

// TestCanaryNotPrinted: providers (after issuing, with leases remembered),
// their Config and ClientAuth, requests and credentials print no secret.
func TestCanaryNotPrinted(t *testing.T) {
	_, a, _ := devAgents(t)
	as := newAS(t, okToken(accessToken, 300, "read"), nil)
	for _, au := range auths {
		cfg := oauth.Config{TokenURL: as.tokenURL(), RevocationURL: as.revokeURL(), Auth: au.auth}
		cc, err := oauth.NewClientCredentials(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ab, err := oauth.NewTokenExchange(cfg, oauth.AsAgent)
		if err != nil {
			t.Fatal(err)
		}
		obo, err := oauth.NewTokenExchange(cfg, oauth.OnBehalfOfUser)
		if err != nil {
			t.Fatal(err)
		}
		req := newReq(a)
		var creds []*credentials.Credential
		for _, p := range []credentials.Provider{cc, ab, obo} {
			c, err := p.Issue(bg(t), req)
			if err != nil {
				t.Fatalf("%s: Issue: %v", au.name, err)
			}
			creds = append(creds, c)
		}
		// Leased through a broker too: full metadata.
		b := newBroker(cc)
		lc, err := b.Lease(bg(t), req)
		if err != nil {
			t.Fatal(err)
		}
		creds = append(creds, lc)

		things := []any{cc, ab, obo, cfg, &cfg, au.auth, &au.auth, req, &req}
		for _, c := range creds {
			things = append(things, c, *c, c.Secret)
		}
		for i, v := range things {
			noCanary(t, fmt.Sprintf("%s: printing value %d (%T)", au.name, i, v), printed(v), clientSecret, userToken, accessToken)
		}
		if s := au.auth.String(); strings.Contains(s, canary) {
			t.Errorf("ClientAuth.String() = %q", s)
		}
	}
}
