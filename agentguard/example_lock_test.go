package agentguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy"
)

// Pin a tool server's tools in a lock file the team reviews. When the
// server relists a tool with a new description (a rug pull, or an honest
// update), the new definition is blocked and hidden from the model until
// policy permits the change and a human, shown the new description,
// approves it; the approved pin is written back for review.
func ExampleRegistry_Sync() {
	ctx := context.Background()
	forecast := func(description string) *agentguard.Tool {
		return &agentguard.Tool{Name: "forecast", Toolset: "weather", Description: description,
			Handler: func(context.Context, json.RawMessage) (*agentguard.Result, error) {
				return &agentguard.Result{Output: "sunny"}, nil
			}}
	}

	// The lock file, as committed after the last review.
	dir, _ := os.MkdirTemp("", "lock")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "agentguard.lock")
	reviewed := agentguard.NewLock()
	reviewed.PinTool(forecast("Forecast for a city."))
	_ = reviewed.WriteFile(path)

	lock, err := agentguard.LoadLock(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	engine, _ := policy.NewCedarEngine(policy.MustParseSet("p.cedar", `
@id("calls") permit (principal, action in Action::"call_tool", resource);
@id("weather-changes") permit (principal, action == Action::"change_toolset", resource in Toolset::"weather");
`))
	g, _ := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/support"))),
		agentguard.WithPolicy(engine),
		agentguard.WithAudit(audittest.NewRecorder()),
		agentguard.WithLock(lock),
		agentguard.WithApprover(agentguard.ApproverFunc(func(_ context.Context, r *agentguard.ApprovalRequest) (agentguard.Approval, error) {
			var change struct{ Change, Description string }
			_ = json.Unmarshal(r.Args, &change)
			fmt.Printf("approver asked: %s %s: %q\n", change.Change, r.Tool, change.Description)
			return r.Grant("alice"), nil
		})),
	)
	defer g.Close(ctx)

	reg := g.NewRegistry("weather")
	_, _ = reg.Sync(forecast("Forecast for a city."))
	_, err = reg.Call(ctx, agentguard.Call{Name: "forecast"})
	fmt.Println("as pinned:", err)

	changes, _ := reg.Sync(forecast("Forecast for a city and a day."))
	fmt.Println("relisted:", changes[0].Change, changes[0].Name)
	_, err = reg.Call(ctx, agentguard.Call{Name: "forecast"})
	fmt.Println("blocked:", errors.Is(err, agentguard.ErrIntegrity))
	listed, _ := reg.List(ctx)
	fmt.Println("listed:", len(listed))

	reviewedChanges, err := reg.Review(ctx)
	fmt.Println("approved:", reviewedChanges[0].Approved, err)
	_, err = reg.Call(ctx, agentguard.Call{Name: "forecast"})
	fmt.Println("after review:", err)
	_ = g.Lock().WriteFile(path) // commit the new pin for review
	// Output:
	// as pinned: <nil>
	// relisted: changed forecast
	// blocked: true
	// listed: 0
	// approver asked: changed forecast: "Forecast for a city and a day."
	// approved: true <nil>
	// after review: <nil>
}
