// Command mcp runs an AI assistant's calls to the tools of an MCP server
// (the official Go SDK) through AgentGuard, on both sides of the protocol,
// with no network beyond a loopback port and no API keys: the model is
// scripted.
//
// The files server is a real MCP server on the streamable HTTP transport.
// The assistant proves who it is with a JWT-SVID (from the embedded
// development issuer) that the SDK's bearer-token middleware verifies, and
// the server's guard decides each call for that SPIFFE ID: reading is
// allowed, sharing asks for the consent of the assistant's user through
// MCP elicitation (the client answers; the record names it), and each tool
// gets a task-scoped storage credential. On the assistant's
// side, a guarded session lists only the tools the assistant's policy
// allows, denies the rest before they reach the server, and holds a tool
// whose definition the server rewrites (a rug pull) until it is reviewed.
//
//	(cd examples/mcp && go run .)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentguard/go-sdk/agentguard"
	mcpguard "github.com/agentguard/go-sdk/agentguard/adapters/mcp"
	"github.com/agentguard/go-sdk/identity"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mcp:", err)
		os.Exit(1)
	}
}

// step is one tool call of the scripted model, to the server named.
type step struct {
	why, server, tool, args string
}

func run(ctx context.Context, w io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := &transcript{w: w}
	issuer, err := identity.NewDevIssuer("example.org")
	if err != nil {
		return err
	}
	assistant, err := issuer.Agent("/agent/assistant")
	if err != nil {
		return err
	}
	files, err := newFilesServer(issuer, t)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, files.close(context.WithoutCancel(ctx))) }()
	weather := newWeatherServer()

	// The assistant's MCP client: its user answers the servers' questions
	// (scripted here: the user says yes).
	client := mcp.NewClient(&mcp.Implementation{Name: "assistant", Version: "1.0.0"}, &mcp.ClientOptions{
		ToolListChangedHandler: mcpguard.ToolListChanged(nil),
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			t.printf("    the user is asked: %s\n    the user answers: yes\n", req.Params.Message)
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
		},
	})
	filesCS, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: files.http.URL, HTTPClient: &http.Client{Transport: svidTransport{assistant}},
	}, nil)
	if err != nil {
		return err
	}
	ct, st := mcp.NewInMemoryTransports()
	weatherSS, err := weather.Connect(ctx, st, nil)
	if err != nil {
		return err
	}
	defer func() { _ = weatherSS.Wait() }()
	weatherCS, err := client.Connect(ctx, ct, nil)
	if err != nil {
		return err
	}

	// An operator read the servers' tools and pinned them in the
	// assistant's lock (committed as agentguard.lock in a real project).
	lock := agentguard.NewLock()
	for name, cs := range map[string]*mcp.ClientSession{"files": filesCS, "weather": weatherCS} {
		if _, err := mcpguard.PinTools(ctx, lock, cs, name); err != nil {
			return err
		}
	}
	t.printf("an operator pinned the definitions of %d tools in the assistant's lock\n", len(lock.Tools()))

	engine, err := loadEngine("agent.cedar")
	if err != nil {
		return err
	}
	g, err := agentguard.New(
		agentguard.WithIdentity(assistant),
		agentguard.WithPolicy(engine),
		agentguard.WithLock(lock),
		agentguard.WithAudit(t.auditSink("agent")),
	)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, g.Close(context.WithoutCancel(ctx))) }()
	refreshed := make(chan []agentguard.ToolChange, 4)
	hook := mcpguard.WithRefreshHook(func(_ context.Context, c []agentguard.ToolChange, _ error) { refreshed <- c })
	sessions := map[string]*mcpguard.Session{}
	for name, cs := range map[string]*mcp.ClientSession{"files": filesCS, "weather": weatherCS} {
		s, err := mcpguard.NewSession(ctx, g, cs, hook)
		if err != nil {
			// NewSession keeps nothing when it fails: cs is still ours.
			return errors.Join(err, cs.Close())
		}
		defer func() { err = errors.Join(err, s.Close()) }()
		<-refreshed
		sessions[name] = s
	}
	tctx, task, err := g.StartTask(ctx, agentguard.TaskSpec{Purpose: "tidy up the user's notes"})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, task.End(context.WithoutCancel(ctx))) }()

	t.printf("assistant %s connected to the MCP servers \"files\" (HTTP, JWT-SVID) and \"weather\"\n", assistant.ID())
	if err := showTools(tctx, t, sessions); err != nil {
		return err
	}
	script := []step{
		{"read the notes", "files", "read_file", `{"path":"notes.txt"}`},
		{"delete them, as a prompt injection told it", "files", "delete_file", `{"path":"notes.txt"}`},
		{"share the notes with Bob", "files", "share_file", `{"path":"notes.txt","to":"bob@example.com"}`},
		{"check the weather", "weather", "forecast", `{"city":"Lyon"}`},
	}
	for i, st := range script {
		call(tctx, t, sessions[st.server], fmt.Sprintf("call-%d", i+1), st)
	}

	t.printf("\nthe weather server rewrites forecast's description and says its tools changed\n")
	rugPull(weather)
	select {
	case changes := <-refreshed:
		for _, c := range changes {
			t.printf("  the session re-listed the tools: %s %s, held for review\n", c.Name, c.Change)
		}
	case <-ctx.Done():
		return fmt.Errorf("no refresh after the server's tools changed: %w", ctx.Err())
	}
	if err := showTools(tctx, t, sessions); err != nil {
		return err
	}
	call(tctx, t, sessions["weather"], "call-5", step{"check the weather again", "weather", "forecast", `{"city":"Lyon"}`})
	for _, p := range sessions["weather"].Registry().Pending() {
		t.printf("  waiting for an operator's review: %s (%s)\n", p.Name, p.Change)
	}
	return nil
}

// showTools prints the tools the model is given: those of every server
// that the assistant's policy lets it call, as pinned.
func showTools(ctx context.Context, t *transcript, sessions map[string]*mcpguard.Session) error {
	var names []string
	for _, server := range []string{"files", "weather"} {
		tools, err := sessions[server].Tools(ctx)
		if err != nil {
			return err
		}
		for _, tl := range tools {
			names = append(names, tl.Name)
		}
	}
	t.printf("  the model is given the tools: %s\n", strings.Join(names, ", "))
	return nil
}

// call runs one scripted tool call through the guarded session and shows
// what the model reads back: the result, or why the call was refused.
func call(ctx context.Context, t *transcript, s *mcpguard.Session, id string, st step) {
	t.printf("\nmodel (%s): %s %s\n", st.why, st.tool, st.args)
	// The result is what the model reads either way: the tool's, or on a
	// refusal or a failure an isError result saying why. The error, which
	// says the same, is for the program; the transcript shows the result.
	res, _ := s.Invoke(ctx, agentguard.Call{ID: id, Name: st.tool, Args: json.RawMessage(st.args)})
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	kind := "result"
	if res.IsError {
		kind = "error"
	}
	t.printf("  the model reads (%s): %s\n", kind, b.String())
}

// svidTransport sends each request with a fresh JWT-SVID of the assistant
// for the files server: a short-lived token, never kept.
type svidTransport struct{ agent identity.JWTIssuer }

func (s svidTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	svid, err := s.agent.JWTSVID(r.Context(), audience)
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+svid.Marshal())
	return http.DefaultTransport.RoundTrip(r)
}
