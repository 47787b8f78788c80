package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// Bound what a task may do: calls in all, of each tool, per minute. Policy
// sees the same counts, here to refuse a third search.
func ExampleBudget() {
	engine, _ := policy.NewCedarEngine(policy.MustParseSet("support.cedar", `
@id("support") permit (principal, action, resource);
@id("two-searches") forbid (principal, action == Action::"search", resource) when { context.task.tool_calls >= 2 };
`))
	g, _ := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/support"))),
		agentguard.WithPolicy(engine),
		agentguard.WithAudit(audittest.NewRecorder()),
		// Every task: at most 20 calls, 30 a minute, one email.
		agentguard.WithBudget(agentguard.Budget{Calls: 20, PerMinute: 30, Tools: map[string]int{"send_email": 1}}),
	)
	defer g.Close(context.Background())

	// This task may make 3 calls; a task cannot loosen the guard's budget.
	ctx, task, _ := g.StartTask(context.Background(), agentguard.TaskSpec{ID: "ticket-42", Budget: &agentguard.Budget{Calls: 3}})
	defer task.End(ctx)
	fmt.Printf("%+v\n", task.Budget())

	ok := func(context.Context, json.RawMessage) (*agentguard.Result, error) {
		return &agentguard.Result{Output: "ok"}, nil
	}
	search := &agentguard.Tool{Name: "search", Handler: ok}
	email := &agentguard.Tool{Name: "send_email", Handler: ok}
	for _, tool := range []*agentguard.Tool{email, email, search, search, search} {
		_, err := g.Invoke(ctx, tool, agentguard.Call{Args: json.RawMessage(`{}`)})
		fmt.Println(tool.Name, err == nil, errors.Is(err, agentguard.ErrBudget))
		if err != nil {
			fmt.Println("  ", err)
		}
	}
	// Output:
	// {Calls:3 PerTool:0 Tools:map[send_email:1] PerMinute:30}
	// send_email true false
	// send_email false true
	//    agentguard: call to tool "send_email" denied at budget: task budget exhausted: agentguard: task budget exhausted: task "ticket-42": 1 calls of tool "send_email", limit 1
	// search true false
	// search true false
	// search false true
	//    agentguard: call to tool "search" denied at budget: task budget exhausted: agentguard: task budget exhausted: task "ticket-42": 3 calls, limit 3
}

// The kill switch: suspending an agent denies its next call at once, ends
// the tasks it worked in (revoking their credentials) and is audited.
func ExampleGuard_Suspend() {
	engine, _ := policy.NewCedarEngine(policy.MustParseSet("all.cedar", `@id("all") permit (principal, action, resource);`))
	rec := audittest.NewRecorder()
	agent := identity.MustParse("spiffe://example.org/agent/support")
	g, _ := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(agent)),
		agentguard.WithPolicy(engine),
		agentguard.WithAudit(rec),
		agentguard.WithClock(func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }),
	)
	defer g.Close(context.Background())
	search := &agentguard.Tool{Name: "search", Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
		return &agentguard.Result{Output: "ok"}, nil
	}}

	ctx, task, _ := g.StartTask(context.Background(), agentguard.TaskSpec{ID: "ticket-42"})
	_, err := g.Invoke(ctx, search, agentguard.Call{Args: json.RawMessage(`{}`)})
	fmt.Println("before:", err)

	// An operator, or a detector, pulls the switch. A SPIFFE ID with no
	// path, such as spiffeid.RequireTrustDomainFromString("example.org").ID(),
	// would suspend the whole trust domain.
	_ = g.Suspend(context.Background(), agent.ID, "prompt injection suspected")
	<-task.Done() // ended, its credentials revoked

	_, err = g.Invoke(context.Background(), search, agentguard.Call{Args: json.RawMessage(`{}`)})
	fmt.Println("suspended:", errors.Is(err, agentguard.ErrSuspended))
	fmt.Println(err)
	for _, s := range g.Suspended() {
		fmt.Println("in force:", s.Target, s.Reason)
	}

	_ = g.Resume(context.Background(), agent.ID)
	_, err = g.Invoke(context.Background(), search, agentguard.Call{Args: json.RawMessage(`{}`)})
	fmt.Println("resumed:", err)

	for _, e := range rec.Events() {
		switch e.Kind {
		case audit.KindSuspend:
			fmt.Printf("%s %s %q tasks %v\n", e.Kind, e.Target, e.Reason, e.Tasks)
		case audit.KindResume:
			fmt.Println(e.Kind, e.Target)
		case audit.KindTaskEnd:
			fmt.Printf("%s %s %q\n", e.Kind, e.Task, e.Reason)
		case audit.KindToolCall:
			fmt.Printf("%s %s %s %q\n", e.Kind, e.Tool, e.Decision, e.Step)
		}
	}
	// Output:
	// before: <nil>
	// suspended: true
	// agentguard: call to tool "search" denied at suspend: agent suspended: agentguard: agent suspended: agent spiffe://example.org/agent/support is suspended since 2026-03-01T12:00:00Z: prompt injection suspected
	// in force: spiffe://example.org/agent/support prompt injection suspected
	// resumed: <nil>
	// tool_call search allow ""
	// suspend spiffe://example.org/agent/support "prompt injection suspected" tasks [ticket-42]
	// task_end ticket-42 "agent suspended: prompt injection suspected"
	// tool_call search deny "suspend"
	// resume spiffe://example.org/agent/support
	// tool_call search allow ""
}
