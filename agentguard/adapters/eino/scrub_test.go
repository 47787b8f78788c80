package einoguard_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/components/tool/utils"
	"github.com/cloudwego/eino/schema"

	einoguard "github.com/agentguard/go-sdk/agentguard/adapters/eino"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// secretOf is the call's credential value, as a tool that echoes it sees it.
func secretOf(ctx context.Context) string {
	c, ok := credentials.FromContext(ctx, credName)
	if !ok {
		return "no credential"
	}
	return c.Secret.Reveal()
}

// echoing builds tools of each kind that echo their credential in their
// output: whole, JSON-encoded, and (for streams) split across two chunks.
var echoing = map[string]func(t *testing.T) tool.BaseTool{
	"invokable": func(t *testing.T) tool.BaseTool {
		tl, err := utils.InferTool("lookup", "Look an order up.", func(ctx context.Context, a orderArgs) (string, error) {
			return `{"debug":"token ` + secretOf(ctx) + `"} order shipped`, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return tl
	},
	"enhanced invokable": func(t *testing.T) tool.BaseTool {
		tl, err := utils.InferEnhancedTool("lookup", "Look an order up.", func(ctx context.Context, a orderArgs) (*schema.ToolResult, error) {
			return &schema.ToolResult{Parts: []schema.ToolOutputPart{
				{Type: schema.ToolPartTypeText, Text: "order shipped, token " + secretOf(ctx)},
				{Type: schema.ToolPartTypeText, Text: "again " + secretOf(ctx), Extra: map[string]any{"auth": secretOf(ctx)}},
			}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return tl
	},
	"streamable": func(t *testing.T) tool.BaseTool {
		tl, err := utils.InferStreamTool("lookup", "Look an order up.", func(ctx context.Context, a orderArgs) (*schema.StreamReader[string], error) {
			s := secretOf(ctx)
			return schema.StreamReaderFromArray([]string{"order shipped, token " + s[:5], s[5:], " and " + s}), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return tl
	},
	"enhanced streamable": func(t *testing.T) tool.BaseTool {
		tl, err := utils.InferEnhancedStreamTool("lookup", "Look an order up.", func(ctx context.Context, a orderArgs) (*schema.StreamReader[*schema.ToolResult], error) {
			s := secretOf(ctx)
			return schema.StreamReaderFromArray([]*schema.ToolResult{
				{Parts: []schema.ToolOutputPart{{Type: schema.ToolPartTypeText, Text: "order shipped, token " + s[:5]}}},
				{Parts: []schema.ToolOutputPart{{Type: schema.ToolPartTypeText, Text: s[5:] + " and " + s}}},
			}), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return tl
	},
}

// A tool that echoes its credential does not hand it to the model: the
// values of the call's credentials are removed from every kind of output,
// in both of the graph's modes; with live streams, from each chunk that
// holds one whole.
func TestEchoedCredentialIsRemovedFromTheOutput(t *testing.T) {
	for kind, build := range echoing {
		for _, mode := range []string{"invoke", "stream"} {
			for _, live := range []bool{false, true} {
				if live && !strings.Contains(kind, "streamable") {
					continue
				}
				name := kind + "/" + mode
				if live {
					name += "/live"
				}
				t.Run(name, func(t *testing.T) {
					e := newEnv(t, policytest.AllowAll())
					opts := []einoguard.Option{lookupSpec}
					if live {
						opts = append(opts, einoguard.WithLiveStreams())
					}
					ts, err := einoguard.New(context.Background(), e.Guard, "shop", []tool.BaseTool{build(t)}, opts...)
					if err != nil {
						t.Fatal(err)
					}
					m := newModel(callTools(toolCall("c1", "lookup", `{"order":"O-1"}`)), answer("done"))
					agent := newAgent(t, m, ts.NodeConfig())
					ctx := e.task(t)
					in := []*schema.Message{schema.UserMessage("x")}
					var streamed string
					if mode == "invoke" {
						if _, err := agent.Invoke(ctx, in); err != nil {
							t.Fatal(err)
						}
					} else {
						sr, err := agent.Stream(ctx, in)
						if err != nil {
							t.Fatal(err)
						}
						streamed = readAll(t, sr)
					}
					got := m.toolResult(t, "c1")
					if !strings.Contains(got, "order shipped") || !strings.Contains(got, credentials.Redacted) {
						t.Fatalf("the model got %q", got)
					}
					split := strings.Contains(kind, "streamable") && live
					if strings.Contains(got, canary) != split {
						t.Fatalf("the model got %q", got)
					}
					if !split {
						e.noCanary(t, m)
					}
					if strings.Contains(streamed, canary) {
						t.Fatalf("the graph's stream holds the credential: %q", streamed)
					}
				})
			}
		}
	}
}
