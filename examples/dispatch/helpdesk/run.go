package helpdesk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

// Ask is what the user asks the agent.
const Ask = "Order O-1 arrived broken; please refund it."

// Run runs one conversation of the example, printing its transcript to
// out. It builds the help desk, serves script on a loopback port, starts
// the task "task-O-1" and calls converse with the task's context and the
// scripted model's base URL. Once converse returns, it checks that no
// request sent to the model holds a credential a tool received.
func Run(ctx context.Context, out io.Writer, script Script, converse func(ctx context.Context, h *Helpdesk, baseURL string) error) (err error) {
	h, err := New(out)
	if err != nil {
		return fmt.Errorf("helpdesk: %w", err)
	}
	defer func() { err = errors.Join(err, h.Guard.Close(context.Background())) }()
	model := startModel(script)
	defer model.close()

	fmt.Fprintf(out, "agent %s (X.509-SVID from the development issuer)\n", h.Agent)
	ctx, task, err := h.Guard.StartTask(ctx, agentguard.TaskSpec{ID: "task-O-1", Purpose: "refund order O-1"})
	if err != nil {
		return fmt.Errorf("helpdesk: %w", err)
	}
	defer func() { err = errors.Join(err, task.End(context.Background())) }()

	if err := converse(ctx, h, model.srv.URL); err != nil {
		return err
	}

	// The model saw each tool's result, never a credential.
	for i, body := range model.sent() {
		if h.sawToken(body) {
			return fmt.Errorf("helpdesk: request %d to the model holds a credential", i)
		}
	}
	fmt.Fprintf(out, "\nthe model was sent %d requests; none holds a credential the tools used\n", len(model.sent()))
	return nil
}

// ShowTools prints the names of the tools the model is shown, then the
// user's request (Ask).
func ShowTools(out io.Writer, names []string) {
	fmt.Fprintf(out, "tools the model is shown: %s (export_customers is hidden: only the data team may call it)\n\n", strings.Join(names, ", "))
	fmt.Fprintf(out, "user: %s\n", Ask)
}

// Waiter is a guarded call of a model turn that may wait for a human's
// approval, as anthropicguard.Call and openaiguard.Call do.
type Waiter interface {
	// Pending returns the approval request the call waits for, if any.
	Pending() (*agentguard.ApprovalRequest, bool)
	// Text is the call's result as the model reads it.
	Text() string
}

// Approve shows each call that waits for approval to a supervisor
// (scripted: alice grants it), records the decision with h.Deferred and,
// if any call waited, calls resume (the turn's Resume) with ctx, the
// task's context, so that the model gets the refund's result.
func Approve[C Waiter](ctx context.Context, out io.Writer, h *Helpdesk, calls []C, resume func(context.Context)) error {
	var pending []*agentguard.ApprovalRequest
	for _, c := range calls {
		if req, ok := c.Pending(); ok {
			fmt.Fprintf(out, "  waiting (not sent to the model): %s\n", c.Text())
			pending = append(pending, req)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	for _, req := range pending {
		fmt.Fprintf(out, "  supervisor asked: %s %s, kind %s: %q\n", req.Tool, req.Args, req.Kind, req.Reason)
		// The approver's name comes from who signed in, never the model.
		if err := h.Deferred.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"alice@example.com"}, Reason: "photos of the damage checked"}); err != nil {
			return fmt.Errorf("helpdesk: %w", err)
		}
		fmt.Fprintln(out, "  alice@example.com grants it; the turn resumes")
	}
	resume(ctx)
	return nil
}

// shared are the lines of the transcript both programs print.
var shared = []string{
	"agent spiffe://example.org/agent/support",
	"tools the model is shown: lookup_order, issue_refund (export_customers is hidden",
	`supervisor asked: issue_refund {"amount":250,"order":"O-1"}, kind supervisor: "refunds over 100 need a supervisor"`,
	"model: Refunded 250 on order O-1.",
	"the model was sent 4 requests; none holds a credential",
}

// Check runs a program's run function and returns its transcript, with
// an error that names each line the transcript lacks (of want and of the
// lines both programs print), and says whether it holds one audit line
// per guarded call: five, for four calls one of which is made twice
// (waiting, then approved).
func Check(run func(context.Context, io.Writer) error, want []string) (string, error) {
	var out strings.Builder
	if err := run(context.Background(), &out); err != nil {
		return out.String(), fmt.Errorf("helpdesk: run: %w", err)
	}
	transcript := out.String()
	var errs []error
	for _, w := range append(shared[:len(shared):len(shared)], want...) {
		if !strings.Contains(transcript, w) {
			errs = append(errs, fmt.Errorf("helpdesk: transcript lacks %q", w))
		}
	}
	if n := strings.Count(transcript, "audit: "); n != 5 {
		errs = append(errs, fmt.Errorf("helpdesk: %d audit lines, want 5", n))
	}
	return transcript, errors.Join(errs...)
}
