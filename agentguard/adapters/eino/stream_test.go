package einoguard_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/components/tool/utils"
	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"

	"github.com/agentguard/go-sdk/agentguard"
	einoguard "github.com/agentguard/go-sdk/agentguard/adapters/eino"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/credentials"
	"github.com/agentguard/go-sdk/policy"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// kindTool builds a lookup tool of one of eino's four kinds, counting its
// runs in c.
type kindTool func(t *testing.T, c *counter) tool.BaseTool

var kinds = map[string]kindTool{
	"invokable": func(t *testing.T, c *counter) tool.BaseTool {
		tl, err := utils.InferTool("lookup", "Look an order up.", func(ctx context.Context, a orderArgs) (string, error) {
			if err := c.ran(ctx); err != nil {
				return "", err
			}
			return "order " + a.Order + ": shipped", nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return tl
	},
	"streamable": func(t *testing.T, c *counter) tool.BaseTool {
		tl, err := utils.InferStreamTool("lookup", "Look an order up.", func(ctx context.Context, a orderArgs) (*schema.StreamReader[string], error) {
			if err := c.ran(ctx); err != nil {
				return nil, err
			}
			return schema.StreamReaderFromArray([]string{"order ", a.Order, ": shipped"}), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return tl
	},
	"enhanced invokable": func(t *testing.T, c *counter) tool.BaseTool {
		tl, err := utils.InferEnhancedTool("lookup", "Look an order up.", func(ctx context.Context, a orderArgs) (*schema.ToolResult, error) {
			if err := c.ran(ctx); err != nil {
				return nil, err
			}
			return &schema.ToolResult{Parts: []schema.ToolOutputPart{{Type: schema.ToolPartTypeText, Text: "order " + a.Order + ": shipped"}}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return tl
	},
	"enhanced streamable": func(t *testing.T, c *counter) tool.BaseTool {
		tl, err := utils.InferEnhancedStreamTool("lookup", "Look an order up.", func(ctx context.Context, a orderArgs) (*schema.StreamReader[*schema.ToolResult], error) {
			if err := c.ran(ctx); err != nil {
				return nil, err
			}
			return schema.StreamReaderFromArray([]*schema.ToolResult{
				{Parts: []schema.ToolOutputPart{{Type: schema.ToolPartTypeText, Text: "order " + a.Order}}},
				{Parts: []schema.ToolOutputPart{{Type: schema.ToolPartTypeText, Text: ": shipped"}}},
			}), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return tl
	},
}

// lookupRules allow lookups, except of order O-666.
func lookupRules() *policytest.Rules {
	return policytest.NewRules(
		policytest.Rule{ID: "lookups", Effect: policytest.Allow, Tool: "lookup"},
		policytest.Rule{ID: "cursed-order", Effect: policytest.Deny, Tool: "lookup", Reason: "that order is under investigation",
			When: func(r *policy.Request) bool { return strings.Contains(string(r.Args), "O-666") }},
	)
}

var lookupSpec = einoguard.WithSpec("lookup", einoguard.Spec{Credentials: shopCredential()})

// Every kind of eino tool, run by the graph's Invoke and by its Stream,
// is guarded once per call: the allowed call runs with the credential,
// the denied one never runs and its denial reaches the model as the
// tool's result.
func TestEveryToolKindInBothModes(t *testing.T) {
	for kind, build := range kinds {
		for _, mode := range []string{"invoke", "stream"} {
			t.Run(kind+"/"+mode, func(t *testing.T) {
				e := newEnv(t, lookupRules())
				var c counter
				ts, err := einoguard.New(context.Background(), e.Guard, "shop", []tool.BaseTool{build(t, &c)}, lookupSpec)
				if err != nil {
					t.Fatal(err)
				}
				// One call per turn: eino v0.7.36's ToolsNode.Stream races
				// when it converts the streams of two enhanced tool calls
				// of one message (they share an error variable).
				m := newModel(
					callTools(toolCall("call-ok", "lookup", `{"order":"O-1"}`)),
					callTools(toolCall("call-no", "lookup", `{"order":"O-666"}`)),
					answer("done"))
				ctx := e.task(t)
				agent := newAgent(t, m, ts.NodeConfig())
				in := []*schema.Message{schema.UserMessage("where are my orders?")}
				var final string
				if mode == "invoke" {
					out, err := agent.Invoke(ctx, in)
					if err != nil {
						t.Fatal(err)
					}
					final = out.Content
				} else {
					sr, err := agent.Stream(ctx, in)
					if err != nil {
						t.Fatal(err)
					}
					final = readAll(t, sr)
				}
				if final != "done" {
					t.Fatalf("answer %q", final)
				}
				if n := c.runs.Load(); n != 1 {
					t.Fatalf("the tool ran %d times, want 1", n)
				}
				c.sawCanary(t)
				if got := m.toolResult(t, "call-ok"); got != "order O-1: shipped" {
					t.Fatalf("the model got %q for the allowed call", got)
				}
				if got := m.toolResult(t, "call-no"); !strings.Contains(got, "under investigation") {
					t.Fatalf("the model got %q for the denied call", got)
				}
				audittest.ExpectCount(t, e.calls(), audittest.Want{CallID: "call-ok", Decision: audit.Allow, Outcome: audit.OutcomeOK}, 1)
				audittest.ExpectCount(t, e.calls(), audittest.Want{CallID: "call-no", Decision: audit.Deny, Outcome: audit.OutcomeDenied}, 1)
				if n := len(e.calls()); n != 2 {
					t.Fatalf("%d tool-call records, want 2", n)
				}
				if n := len(e.toolSpans()); n != 2 {
					t.Fatalf("%d spans, want 2", n)
				}
				e.noCanary(t, m)
			})
		}
	}
}

func readAll(t *testing.T, sr *schema.StreamReader[*schema.Message]) string {
	t.Helper()
	defer sr.Close()
	var b strings.Builder
	for {
		msg, err := sr.Recv()
		if errors.Is(err, io.EOF) {
			return b.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(msg.Content)
	}
}

// A stream that fails part way is recorded as failed when it fails, and
// its reader gets the guard's scrubbed error.
func TestStreamFailureIsRecordedWhenItHappens(t *testing.T) {
	e := newEnv(t, lookupRules())
	var c counter
	failing, err := utils.InferStreamTool("lookup", "Look an order up.", func(ctx context.Context, a orderArgs) (*schema.StreamReader[string], error) {
		_ = c.ran(ctx)
		cred, _ := credentials.FromContext(ctx, credName)
		sr, w := schema.Pipe[string](2)
		w.Send("order "+a.Order, nil)
		w.Send("", errors.New("backend dropped token "+cred.Secret.Reveal()))
		w.Close()
		return sr, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := einoguard.New(context.Background(), e.Guard, "shop", []tool.BaseTool{failing}, lookupSpec)
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(callTools(toolCall("call-1", "lookup", `{"order":"O-1"}`)), answer("unreachable"))
	ctx := e.task(t)
	_, err = newAgent(t, m, ts.NodeConfig()).Invoke(ctx, []*schema.Message{schema.UserMessage("x")})
	var te *agentguard.ToolError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want an *agentguard.ToolError", err)
	}
	if strings.Contains(err.Error(), canary) {
		t.Fatalf("the error holds the credential: %v", err)
	}
	audittest.ExpectCount(t, e.calls(), audittest.Want{CallID: "call-1", Decision: audit.Allow, Outcome: audit.OutcomeError}, 1)
	if n := len(e.toolSpans()); n != 1 {
		t.Fatalf("%d spans", n)
	}
	e.noCanary(t, m)
}

// A stream its reader closes early is recorded then, as closed early; the
// ToolsNode is eino's own, run in stream mode.
func TestStreamClosedEarlyIsRecorded(t *testing.T) {
	e := newEnv(t, lookupRules())
	var c counter
	ts, err := einoguard.New(context.Background(), e.Guard, "shop", []tool.BaseTool{kinds["streamable"](t, &c)}, lookupSpec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := e.task(t)
	node, err := compose.NewToolNode(ctx, ts.NodeConfig())
	if err != nil {
		t.Fatal(err)
	}
	sr, err := node.Stream(ctx, &schema.Message{Role: schema.Assistant, ToolCalls: []schema.ToolCall{toolCall("call-1", "lookup", `{"order":"O-1"}`)}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := sr.Recv()
	if err != nil || len(first) != 1 || first[0].Content != "order " {
		t.Fatalf("first chunk %v, %v", first, err)
	}
	sr.Close()
	ev := e.waitCall(t, "call-1")
	if ev.Outcome != audit.OutcomeError || !strings.Contains(ev.Error, "closed before its end") {
		t.Fatalf("record: outcome %q, error %q", ev.Outcome, ev.Error)
	}
	if n := c.runs.Load(); n != 1 {
		t.Fatalf("the tool ran %d times", n)
	}
}
