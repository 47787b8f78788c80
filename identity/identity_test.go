package identity_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/agentguard/go-sdk/identity"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		id        string
		chain     []string
		wantTD    string
		wantPath  string
		wantDepth int
		wantStr   string
	}{
		{
			name:     "no chain",
			id:       "spiffe://example.org/agents/billing",
			wantTD:   "example.org",
			wantPath: "/agents/billing",
			wantStr:  "spiffe://example.org/agents/billing",
		},
		{
			name:     "trust domain only",
			id:       "spiffe://example.org",
			wantTD:   "example.org",
			wantPath: "",
			wantStr:  "spiffe://example.org",
		},
		{
			name:      "one delegation",
			id:        "spiffe://example.org/sub",
			chain:     []string{"spiffe://example.org/root"},
			wantTD:    "example.org",
			wantPath:  "/sub",
			wantDepth: 1,
			wantStr:   "spiffe://example.org/root > spiffe://example.org/sub",
		},
		{
			name:      "two delegations across trust domains",
			id:        "spiffe://b.example/leaf",
			chain:     []string{"spiffe://a.example/root", "spiffe://a.example/mid"},
			wantTD:    "b.example",
			wantPath:  "/leaf",
			wantDepth: 2,
			wantStr:   "spiffe://a.example/root > spiffe://a.example/mid > spiffe://b.example/leaf",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := identity.Parse(tc.id, tc.chain...)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if id.IsZero() {
				t.Error("IsZero = true for a parsed identity")
			}
			if got := id.ID.TrustDomain().Name(); got != tc.wantTD {
				t.Errorf("trust domain = %q, want %q", got, tc.wantTD)
			}
			if got := id.ID.Path(); got != tc.wantPath {
				t.Errorf("path = %q, want %q", got, tc.wantPath)
			}
			if got := id.Depth(); got != tc.wantDepth {
				t.Errorf("Depth = %d, want %d", got, tc.wantDepth)
			}
			if len(id.Chain) != len(tc.chain) {
				t.Fatalf("Chain has %d entries, want %d", len(id.Chain), len(tc.chain))
			}
			for i, c := range tc.chain {
				if id.Chain[i].String() != c {
					t.Errorf("Chain[%d] = %s, want %s", i, id.Chain[i], c)
				}
			}
			if got := id.ChainStrings(); len(tc.chain) == 0 && got != nil {
				t.Errorf("ChainStrings = %q, want nil", got)
			} else if len(tc.chain) > 0 && !reflect.DeepEqual(got, tc.chain) {
				t.Errorf("ChainStrings = %q, want %q", got, tc.chain)
			}
			if got := id.String(); got != tc.wantStr {
				t.Errorf("String = %q, want %q", got, tc.wantStr)
			}
			// MustParse agrees with Parse.
			if m := identity.MustParse(tc.id, tc.chain...); m.String() != id.String() || m.ID != id.ID {
				t.Errorf("MustParse = %v, Parse = %v", m, id)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		chain   []string
		wantMsg string
	}{
		{name: "empty", id: "", wantMsg: `identity: ""`},
		{name: "not a URI", id: "billing-agent", wantMsg: `identity: "billing-agent"`},
		{name: "wrong scheme", id: "https://example.org/agent", wantMsg: `identity: "https://example.org/agent"`},
		{name: "no trust domain", id: "spiffe:///agent"},
		{name: "upper case trust domain", id: "spiffe://Example.org/agent"},
		{name: "query", id: "spiffe://example.org/agent?x=1"},
		{name: "trailing slash", id: "spiffe://example.org/agent/"},
		{name: "bad chain entry", id: "spiffe://example.org/sub", chain: []string{"spiffe://example.org/root", "nope"}, wantMsg: `identity: chain "nope"`},
		{name: "empty chain entry", id: "spiffe://example.org/sub", chain: []string{""}, wantMsg: `identity: chain ""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := identity.Parse(tc.id, tc.chain...)
			if err == nil {
				t.Fatalf("Parse(%q, %q) = %v, want error", tc.id, tc.chain, id)
			}
			if !id.IsZero() || id.Chain != nil {
				t.Errorf("Parse returned non-zero identity %v with error", id)
			}
			if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tc.wantMsg)
			}
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("MustParse(%q, %q) did not panic", tc.id, tc.chain)
					}
				}()
				identity.MustParse(tc.id, tc.chain...)
			}()
		})
	}
}

func TestZeroIdentity(t *testing.T) {
	var z identity.Identity
	if !z.IsZero() {
		t.Error("zero Identity: IsZero = false")
	}
	if z.Depth() != 0 {
		t.Errorf("zero Identity: Depth = %d", z.Depth())
	}
	if z.ChainStrings() != nil {
		t.Errorf("zero Identity: ChainStrings = %q", z.ChainStrings())
	}
}

func TestStringDoesNotModifyChain(t *testing.T) {
	id := identity.MustParse("spiffe://example.org/c", "spiffe://example.org/a", "spiffe://example.org/b")
	// Give Chain spare capacity so an append in String would write into it.
	id.Chain = append(id.Chain[:2:2], id.Chain...)[:2]
	_ = id.String()
	if got := id.ChainStrings(); !reflect.DeepEqual(got, []string{"spiffe://example.org/a", "spiffe://example.org/b"}) {
		t.Errorf("chain after String = %q", got)
	}
	if got, want := id.String(), "spiffe://example.org/a > spiffe://example.org/b > spiffe://example.org/c"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestStaticSource(t *testing.T) {
	agent := identity.MustParse("spiffe://example.org/agent", "spiffe://example.org/root")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		src     *identity.StaticSource
		ctx     context.Context
		want    identity.Identity
		wantErr error
	}{
		{name: "returns identity", src: identity.NewStaticSource(agent), ctx: context.Background(), want: agent},
		{name: "zero identity", src: identity.NewStaticSource(identity.Identity{}), ctx: context.Background(), wantErr: identity.ErrNoIdentity},
		{name: "nil source", src: nil, ctx: context.Background(), wantErr: identity.ErrNoIdentity},
		{name: "cancelled ctx", src: identity.NewStaticSource(agent), ctx: cancelled, wantErr: context.Canceled},
		{name: "cancelled ctx wins over zero identity", src: identity.NewStaticSource(identity.Identity{}), ctx: cancelled, wantErr: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var src identity.Source = tc.src
			got, err := src.Identity(tc.ctx)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if !got.IsZero() {
					t.Errorf("identity %v returned with error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want.String() || got.ID != tc.want.ID {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSourceFunc(t *testing.T) {
	want := identity.MustParse("spiffe://example.org/f")
	sentinel := errors.New("boom")
	var calls int
	var src identity.Source = identity.SourceFunc(func(ctx context.Context) (identity.Identity, error) {
		calls++
		if ctx.Value(struct{}{}) != nil {
			return identity.Identity{}, sentinel
		}
		return want, nil
	})
	got, err := src.Identity(context.Background())
	if err != nil || got.ID != want.ID {
		t.Errorf("SourceFunc = %v, %v; want %v", got, err, want)
	}
	if _, err := src.Identity(context.WithValue(context.Background(), struct{}{}, 1)); !errors.Is(err, sentinel) {
		t.Errorf("SourceFunc error = %v, want %v", err, sentinel)
	}
	if calls != 2 {
		t.Errorf("function called %d times, want 2", calls)
	}
}
