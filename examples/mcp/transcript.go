package main

import (
	"context"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"sync"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/policy"
)

//go:embed policies/*.cedar
var policyFiles embed.FS

// loadEngine returns a Cedar engine over the embedded policy file name.
func loadEngine(name string) (*policy.CedarEngine, error) {
	text, err := fs.ReadFile(policyFiles, "policies/"+name)
	if err != nil {
		return nil, err
	}
	set, err := policy.ParseSet(name, string(text))
	if err != nil {
		return nil, err
	}
	return policy.NewCedarEngine(set)
}

// transcript prints the run, one line at a time, from any goroutine.
type transcript struct {
	mu sync.Mutex
	w  io.Writer
}

// ids are the random IDs (approval requests, tasks) the transcript
// shortens, so that two runs print the same text.
var ids = regexp.MustCompile(`\b(approval|task|mcp-call)-[A-Za-z0-9-]+`)

func (t *transcript) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprint(t.w, ids.ReplaceAllString(fmt.Sprintf(format, args...), "$1-…"))
}

// auditSink prints the tool-call records of the guard on side.
func (t *transcript) auditSink(side string) audit.Sink {
	return auditFunc(func(e audit.Event) {
		if e.Kind != audit.KindToolCall {
			return
		}
		line := fmt.Sprintf("    audit[%s] %s by %s: %s", side, e.Tool, e.Agent, e.Decision)
		if e.Step != "" {
			line += " at " + e.Step
		}
		if e.Approval != nil && e.Approval.Status != "" {
			line += ", approval " + e.Approval.Status
			if len(e.Approval.Approvers) > 0 {
				line += " by " + strings.Join(e.Approval.Approvers, ",")
			}
		}
		if e.Outcome != "" {
			line += ", " + e.Outcome
		}
		t.printf("%s\n", line)
	})
}

type auditFunc func(audit.Event)

func (f auditFunc) Write(_ context.Context, e audit.Event) error {
	f(e)
	return nil
}
