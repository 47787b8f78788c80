package agentguard

import (
	"time"

	"github.com/agentguard/go-sdk/identity"
)

// checkSuspended returns an error wrapping ErrSuspended when id, an agent
// of its chain, or their trust domain is suspended.
func (g *Guard) checkSuspended(id identity.Identity) error {
	return nil
}

// noteAgent records that id acted in the task, so that suspending it ends
// the task.
func (t *Task) noteAgent(id identity.Identity) {}

// checkBudget returns an error wrapping ErrBudget when one more call of
// tool at now would exceed one of the task's budgets. It takes nothing.
func (t *Task) checkBudget(tool string, now time.Time) error {
	return nil
}

// admit takes one call of tool at now from the task's budgets, or returns
// an error wrapping ErrBudget (and takes nothing) when that would exceed
// one.
func (t *Task) admit(tool string, now time.Time) error {
	return nil
}
