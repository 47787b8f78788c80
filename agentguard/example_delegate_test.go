package agentguard_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// A planner hands a task to a researcher. The handoff is a policy decision,
// and every call the researcher makes on the task must be allowed for the
// researcher and for the planner.
func ExampleGuard_Delegate() {
	policies := policy.MustParseSet("agents.cedar", `
@id("planner-to-researcher")
permit (principal == Agent::"spiffe://example.org/agent/planner", action == Action::"delegate",
        resource == Agent::"spiffe://example.org/agent/researcher");
@id("anyone-searches") permit (principal, action == Action::"search", resource);
@id("researcher-deletes") permit (principal == Agent::"spiffe://example.org/agent/researcher", action == Action::"delete", resource);
`)
	engine, _ := policy.NewCedarEngine(policies)
	dev, _ := identity.NewDevIssuer("example.org") // development only
	plannerID, _ := dev.Agent("/agent/planner")
	researcherID, _ := dev.Agent("/agent/researcher")
	planner, _ := agentguard.New(agentguard.WithIdentity(plannerID), agentguard.WithPolicy(engine), agentguard.WithAudit(audittest.NewRecorder()))
	defer planner.Close(context.Background())
	researcher, _ := agentguard.New(agentguard.WithIdentity(researcherID), agentguard.WithPolicy(engine), agentguard.WithAudit(audittest.NewRecorder()))
	defer researcher.Close(context.Background())

	ctx, task, _ := planner.StartTask(context.Background(), agentguard.TaskSpec{OnBehalfOf: "alice"})
	defer task.End(ctx)
	sub, err := planner.Delegate(ctx, researcherID.ID())
	fmt.Println("delegated:", err == nil)

	sub, subTask, _ := researcher.StartTask(sub, agentguard.TaskSpec{Purpose: "find the report"})
	defer subTask.End(sub)
	fmt.Println("on behalf of:", subTask.Spec().OnBehalfOf)
	for _, name := range []string{"search", "delete"} {
		tool := &agentguard.Tool{Name: name, Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
			return &agentguard.Result{Output: "done"}, nil
		}}
		_, err := researcher.Invoke(sub, tool, agentguard.Call{Args: json.RawMessage(`{}`)})
		fmt.Println(name, err == nil)
	}
	// Output:
	// delegated: true
	// on behalf of: alice
	// search true
	// delete false
}
