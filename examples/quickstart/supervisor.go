package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
)

// supervisor is the quickstart's scripted human. The guard puts each
// approval request in a queue (in production a person decides it through
// Queue.Handler, or a webhook reaches them); here a goroutine reads each
// request and decides: it grants refunds and refuses a tool whose new
// description sends mail outside the company.
type supervisor struct {
	queue *approval.Queue
	stop  context.CancelFunc
	done  sync.WaitGroup
}

const supervisorName = "supervisor@example.com"

func startSupervisor(ctx context.Context, out io.Writer) *supervisor {
	ctx, cancel := context.WithCancel(ctx)
	s := &supervisor{queue: approval.NewQueue(), stop: cancel}
	s.done.Go(func() {
		for {
			req, err := s.queue.Next(ctx)
			if err != nil {
				return // stopped
			}
			s.decide(out, req)
		}
	})
	return s
}

func (s *supervisor) decide(out io.Writer, req *agentguard.ApprovalRequest) {
	fmt.Fprintf(out, "  approval asked of %s: %s %s: %q, digest %s…, expires in %s\n",
		supervisorName, req.Action, req.Tool, req.Reason, req.Digest[:19], req.ExpiresAt.Sub(req.RequestedAt))
	var err error
	switch {
	case req.Action == agentguard.ApproveCall && req.Tool == "issue_refund":
		fmt.Fprintf(out, "  %s grants it, for exactly these arguments: %s\n", supervisorName, req.Args)
		err = s.queue.Grant(req.ID, supervisorName, "regular customer")
	case req.Action == agentguard.ApproveToolChange && strings.Contains(string(req.Args), "BCC"):
		fmt.Fprintf(out, "  %s refuses it: the new description sends mail outside the company\n", supervisorName)
		err = s.queue.Refuse(req.ID, supervisorName, "the new description copies mail outside the company")
	default:
		err = s.queue.Refuse(req.ID, supervisorName, "not expected")
	}
	if err != nil {
		fmt.Fprintf(out, "  supervisor: %v\n", err)
	}
}

// close stops the supervisor; requests still pending are refused.
func (s *supervisor) close() {
	s.stop()
	s.done.Wait()
	s.queue.Close()
}
