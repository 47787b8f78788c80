package langchainguard

import (
	"context"
	"maps"
	"strings"
	"sync"

	"github.com/tmc/langchaingo/callbacks"
	"github.com/tmc/langchaingo/schema"

	"github.com/agentguard/go-sdk/agentguard"
)

// Bounds of what a CallIDs holds: actions whose tool is never called (the
// model named a tool the agent does not have) must not pile up.
const (
	maxPendingKeys = 256
	maxPendingIDs  = 16
)

// CallIDs is a langchaingo callbacks handler that hands the model's
// tool-call IDs to the guard, so that audit records and spans carry the
// ID the model gave (schema.AgentAction.ToolID) rather than one the guard
// made up. langchaingo's executor passes a tool only its input, but calls
// the handler's HandleAgentAction with the whole action just before it
// calls the tool; CallIDs keeps the action's ID until the tool of that
// name is called with that input. Agents whose model gives IDs (the
// OpenAI functions agent) have them; the one-shot and conversational
// agents parse text and have none, so the guard makes one up.
//
// Use Toolset.Callbacks, which the toolset's tools read from. IDs are
// kept by task (agentguard.TaskFromContext), so runs in different tasks
// never mix them; runs sharing a task, or made outside any task, that call
// the same tool with the same input at the same time may swap them (they
// only label records). It is safe for concurrent use.
type CallIDs struct {
	callbacks.SimpleHandler

	mu      sync.Mutex
	pending map[callKey][]string
}

var _ callbacks.Handler = (*CallIDs)(nil)

// callKey is how langchaingo's executor matches an action to a tool call
// (the tool's name without regard to case, and the input it passes), in
// the task of the run.
type callKey struct{ task, tool, input string }

func keyOf(ctx context.Context, tool, input string) callKey {
	var task string
	if t, ok := agentguard.TaskFromContext(ctx); ok {
		task = t.ID()
	}
	return callKey{task, strings.ToUpper(tool), strings.TrimSuffix(input, "\nObservation:")}
}

// newCallIDs returns a CallIDs holding no ID.
func newCallIDs() *CallIDs { return &CallIDs{pending: map[callKey][]string{}} }

// HandleAgentAction keeps the action's tool-call ID, if it has one, for
// the call of its tool.
func (c *CallIDs) HandleAgentAction(ctx context.Context, a schema.AgentAction) {
	if a.ToolID == "" {
		return
	}
	k := keyOf(ctx, a.Tool, a.ToolInput)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[k]; !ok && len(c.pending) >= maxPendingKeys {
		clear(c.pending)
	}
	ids := append(c.pending[k], a.ToolID)
	if len(ids) > maxPendingIDs {
		ids = ids[len(ids)-maxPendingIDs:]
	}
	c.pending[k] = ids
}

// HandleAgentFinish forgets the IDs of the run's actions whose tools were
// not called (the model named a tool the agent does not have).
func (c *CallIDs) HandleAgentFinish(ctx context.Context, _ schema.AgentFinish) {
	task := keyOf(ctx, "", "").task
	c.mu.Lock()
	defer c.mu.Unlock()
	maps.DeleteFunc(c.pending, func(k callKey, _ []string) bool { return k.task == task })
}

// take returns the ID kept for a call of tool with input, or "".
func (c *CallIDs) take(ctx context.Context, tool, input string) string {
	k := keyOf(ctx, tool, input)
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := c.pending[k]
	if len(ids) == 0 {
		return ""
	}
	if len(ids) == 1 {
		delete(c.pending, k)
	} else {
		c.pending[k] = ids[1:]
	}
	return ids[0]
}
