package local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/agentguard/go-sdk/credentials"
)

func TestCredentialNeverPrintsItsToken(t *testing.T) {
	i, _ := newIssuer(t)
	b := credentials.NewBroker(credentials.WithProvider("local", i))
	c, err := b.Lease(context.Background(), request())
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Secret.Reveal()
	if len(tok) < 100 {
		t.Fatalf("token is %d bytes, want a JWT", len(tok))
	}
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		outputs["pointer "+verb] = fmt.Sprintf(verb, c)
		outputs["value "+verb] = fmt.Sprintf(verb, *c)
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs["JSON"] = string(j)
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		l := slog.New(h)
		l.Info("leased", "cred", c)
		l.Info("leased", "cred", *c)
		l.Info("leased", slog.Any("secret", c.Secret))
	}
	outputs["slog"] = logs.String()
	for what, out := range outputs {
		assertNoLeak(t, what, out, tok)
	}
	if !bytes.Contains(logs.Bytes(), []byte(c.LeaseID)) {
		t.Error("the log does not name the lease")
	}
}
