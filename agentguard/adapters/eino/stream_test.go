package einoguard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/components/tool/utils"
	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"

	"github.com/agentguard/go-sdk/agentguard"
	einoguard "github.com/agentguard/go-sdk/agentguard/adapters/eino"
	"github.com/agentguard/go-sdk/agentguard/agentguardtest"
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

// A stream its reader closes early: with WithLiveStreams the call is
// recorded then, as closed early; by default the tool's whole stream was
// read, and recorded, before its first chunk was passed on. The ToolsNode
// is eino's own, run in stream mode.
func TestStreamClosedEarly(t *testing.T) {
	for name, c := range map[string]struct {
		opts    []einoguard.Option
		outcome string
	}{
		"live":     {[]einoguard.Option{lookupSpec, einoguard.WithLiveStreams()}, audit.OutcomeError},
		"buffered": {[]einoguard.Option{lookupSpec}, audit.OutcomeOK},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, lookupRules())
			var runs counter
			ts, err := einoguard.New(context.Background(), e.Guard, "shop", []tool.BaseTool{kinds["streamable"](t, &runs)}, c.opts...)
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
			if ev.Outcome != c.outcome {
				t.Fatalf("record: outcome %q, error %q; want %q", ev.Outcome, ev.Error, c.outcome)
			}
			if c.outcome == audit.OutcomeError && !strings.Contains(ev.Error, "closed before its end") {
				t.Fatalf("record: error %q", ev.Error)
			}
			if n := runs.runs.Load(); n != 1 {
				t.Fatalf("the tool ran %d times", n)
			}
		})
	}
}

// countCall counts the records of callID.
func countCall(recs []audit.Event, callID string) int {
	n := 0
	for _, r := range recs {
		if r.CallID == callID {
			n++
		}
	}
	return n
}

// followers returns the stacks of the goroutines that pass a guarded
// stream on.
func followers() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "adapters/eino.followLive") || strings.Contains(g, "adapters/eino.followBuffered") {
			out = append(out, g)
		}
	}
	return out
}

// In stream mode, when one call of a message fails, eino v0.7.36's
// ToolsNode.Stream returns the failure and drops the streams of the
// message's other calls unread and unclosed. A streaming call the guard
// allowed is recorded all the same, and the goroutine that followed its
// stream ends: the stream it gave eino closes itself once unreachable.
func TestOrphanedStreamIsRecordedAndItsGoroutineEnds(t *testing.T) {
	for name, opts := range map[string][]einoguard.Option{
		"live":     {lookupSpec, einoguard.WithLiveStreams()},
		"buffered": {lookupSpec},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, policytest.AllowAll())
			var c counter
			broken, err := utils.InferTool("broken", "Fails.", func(context.Context, orderArgs) (string, error) {
				return "", errors.New("backend down")
			})
			if err != nil {
				t.Fatal(err)
			}
			ts, err := einoguard.New(context.Background(), e.Guard, "shop", []tool.BaseTool{kinds["streamable"](t, &c), broken}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			m := newModel(callTools(toolCall("c-stream", "lookup", `{"order":"O-1"}`), toolCall("c-broken", "broken", `{"order":"O-1"}`)), answer("done"))
			ctx := e.task(t)
			if _, err := newAgent(t, m, ts.NodeConfig()).Stream(ctx, []*schema.Message{schema.UserMessage("x")}); err == nil || !strings.Contains(err.Error(), "backend down") {
				t.Fatalf("run error %v, want the failing tool's", err)
			}
			if c.runs.Load() != 1 {
				t.Fatalf("the streaming tool ran %d times", c.runs.Load())
			}
			// Until the dropped stream is collected, the live follower
			// is blocked sending its first chunk.
			deadline := time.Now().Add(10 * time.Second)
			for len(followers()) > 0 || countCall(e.calls(), "c-stream") == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("after GC: %d followers left, records:\n%s", len(followers()), audittest.List(e.calls()))
				}
				runtime.GC()
				runtime.Gosched()
			}
			audittest.ExpectCount(t, e.calls(), audittest.Want{CallID: "c-stream", Decision: audit.Allow}, 1)
		})
	}
}

// A streaming tool runs with the canonical arguments policy saw, as an
// invokable tool does, not with the model's text.
func TestStreamingToolGetsCanonicalArguments(t *testing.T) {
	for _, enhanced := range []bool{false, true} {
		e := newEnv(t, lookupRules())
		raw := &rawStream{name: "lookup", enhanced: enhanced}
		ts, err := einoguard.New(context.Background(), e.Guard, "shop", []tool.BaseTool{raw.tool()})
		if err != nil {
			t.Fatal(err)
		}
		ctx := e.task(t)
		node, err := compose.NewToolNode(ctx, ts.NodeConfig())
		if err != nil {
			t.Fatal(err)
		}
		sr, err := node.Stream(ctx, &schema.Message{Role: schema.Assistant, ToolCalls: []schema.ToolCall{
			toolCall("call-1", "lookup", "{ \"order\" : \"O-1\",\n \"amount\": 5 }")}})
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := sr.Recv(); err != nil {
				break
			}
		}
		sr.Close()
		if got := raw.got(); got != `{"amount":5,"order":"O-1"}` {
			t.Fatalf("enhanced %v: the tool got %q", enhanced, got)
		}
	}
}

// rawStream is a streaming tool that keeps the arguments it was given.
type rawStream struct {
	name     string
	enhanced bool
	mu       sync.Mutex
	args     string
}

func (r *rawStream) got() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.args
}

func (r *rawStream) Info(context.Context) (*schema.ToolInfo, error) {
	return &schema.ToolInfo{Name: r.name, Desc: "Look an order up."}, nil
}

func (r *rawStream) tool() tool.BaseTool {
	if r.enhanced {
		return rawEnhancedStream{r}
	}
	return rawPlainStream{r}
}

type rawPlainStream struct{ *rawStream }

func (r rawPlainStream) StreamableRun(_ context.Context, args string, _ ...tool.Option) (*schema.StreamReader[string], error) {
	r.mu.Lock()
	r.args = args
	r.mu.Unlock()
	return schema.StreamReaderFromArray([]string{"ok"}), nil
}

type rawEnhancedStream struct{ *rawStream }

func (r rawEnhancedStream) StreamableRun(_ context.Context, args *schema.ToolArgument, _ ...tool.Option) (*schema.StreamReader[*schema.ToolResult], error) {
	r.mu.Lock()
	r.args = args.Text
	r.mu.Unlock()
	return schema.StreamReaderFromArray([]*schema.ToolResult{{Parts: []schema.ToolOutputPart{{Type: schema.ToolPartTypeText, Text: "ok"}}}}), nil
}

// failToolCalls is an audit sink that cannot write tool-call records.
type failToolCalls struct{}

func (failToolCalls) Write(_ context.Context, ev audit.Event) error {
	if ev.Kind == audit.KindToolCall {
		return errors.New("disk full")
	}
	return nil
}

// In strict audit mode, a call whose record cannot be written has its
// result withheld, for every kind of tool in both of the graph's modes
// alike: the model reads that the result was withheld and the run goes
// on. A buffered stream's chunks reach neither the model nor the graph's
// stream; a live stream's have, and the explanation follows them.
func TestStrictAuditWithholdsEveryKindOfResult(t *testing.T) {
	for kind, build := range kinds {
		for _, mode := range []string{"invoke", "stream"} {
			for _, live := range []bool{false, true} {
				if live && !strings.Contains(kind, "streamable") {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/live=%v", kind, mode, live), func(t *testing.T) {
					e := agentguardtest.New(t, lookupRules(), canary, agentguard.WithAudit(failToolCalls{}))
					var c counter
					opts := []einoguard.Option{lookupSpec}
					if live {
						opts = append(opts, einoguard.WithLiveStreams())
					}
					ts, err := einoguard.New(context.Background(), e.Guard, "shop", []tool.BaseTool{build(t, &c)}, opts...)
					if err != nil {
						t.Fatal(err)
					}
					m := newModel(callTools(toolCall("c1", "lookup", `{"order":"O-1"}`)), answer("done"))
					agent := newAgent(t, m, ts.NodeConfig())
					ctx, task, err := e.Guard.StartTask(context.Background(), agentguard.TaskSpec{})
					if err != nil {
						t.Fatal(err)
					}
					defer task.End(context.Background())
					in := []*schema.Message{schema.UserMessage("x")}
					var final string
					if mode == "invoke" {
						out, err := agent.Invoke(ctx, in)
						if err != nil {
							t.Fatalf("the run ended: %v", err)
						}
						final = out.Content
					} else {
						sr, err := agent.Stream(ctx, in)
						if err != nil {
							t.Fatalf("the run ended: %v", err)
						}
						final = readAll(t, sr)
					}
					if final != "done" || c.runs.Load() != 1 {
						t.Fatalf("answer %q, %d runs", final, c.runs.Load())
					}
					got := m.toolResult(t, "c1")
					if !strings.Contains(got, "withheld") {
						t.Fatalf("the model got %q", got)
					}
					if shipped := strings.Contains(got, "shipped"); shipped != live {
						t.Fatalf("the model got %q: the result reached it: %v", got, shipped)
					}
				})
			}
		}
	}
}
