package approval_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/agentguard/approval"
	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/audit/audittest"
	"github.com/agentguard/go-sdk/identity"
	"github.com/agentguard/go-sdk/policy/policytest"
)

// exampleGuard returns a guard whose policy permits refunds subject to a
// manager's approval, asking approver.
func exampleGuard(approver agentguard.Approver) (*agentguard.Guard, *audittest.Recorder) {
	rec := audittest.NewRecorder()
	g, err := agentguard.New(
		agentguard.WithIdentity(identity.NewStaticSource(identity.MustParse("spiffe://example.org/agent/support"))),
		agentguard.WithPolicy(policytest.NewRules(policytest.Rule{ID: "refund-approval", Tool: "refund", Approval: "manager"})),
		agentguard.WithAudit(rec),
		agentguard.WithApprover(approver),
	)
	if err != nil {
		panic(err)
	}
	return g, rec
}

var refundTool = &agentguard.Tool{
	Name: "refund",
	Handler: func(_ context.Context, args json.RawMessage) (*agentguard.Result, error) {
		return &agentguard.Result{Output: "refunded " + string(args)}, nil
	},
}

// A scripted approver takes each request from the queue with Next and
// decides it: here, refunds up to 100 are granted, larger ones refused.
func ExampleQueue_Next() {
	q := approval.NewQueue()
	defer q.Close()
	g, rec := exampleGuard(q)
	defer g.Close(context.Background())

	go func() {
		for {
			req, err := q.Next(context.Background())
			if err != nil {
				return // the queue was closed
			}
			var args struct{ Amount int }
			_ = json.Unmarshal(req.Args, &args)
			fmt.Println("asked:", req.Tool, string(req.Args), "kind", req.Kind)
			if args.Amount <= 100 {
				_ = q.Grant(req.ID, "refund-bot", "small refund")
			} else {
				_ = q.Refuse(req.ID, "refund-bot", "over 100")
			}
		}
	}()

	refund, _ := g.Wrap(refundTool)
	res, err := refund(context.Background(), json.RawMessage(`{"amount": 40}`))
	fmt.Println(res.Output, err)
	_, err = refund(context.Background(), json.RawMessage(`{"amount": 4000}`))
	fmt.Println(errors.Is(err, agentguard.ErrApprovalRequired))

	for _, e := range rec.Kind(audit.KindToolCall) {
		fmt.Println(e.Outcome, e.Approval.Status, e.Approval.Approvers, e.Approval.Reason)
	}
	// Output:
	// asked: refund {"amount":40} kind manager
	// refunded {"amount":40} <nil>
	// asked: refund {"amount":4000} kind manager
	// true
	// ok granted [refund-bot] small refund
	// denied refused [refund-bot] over 100
}

// People decide through the queue's HTTP API. The approver's name comes
// from their bearer token, never from what they post: a body naming an
// approver is refused.
func ExampleQueue_Handler() {
	q := approval.NewQueue()
	defer q.Close()
	g, rec := exampleGuard(q)
	defer g.Close(context.Background())
	srv := httptest.NewServer(http.StripPrefix("/approvals", q.Handler(approval.Tokens(map[string]string{
		"token-of-alice": "alice",
	}))))
	defer srv.Close()

	done := make(chan error)
	go func() {
		_, err := g.Invoke(context.Background(), refundTool, agentguard.Call{Args: json.RawMessage(`{"amount": 40}`)})
		done <- err
	}()
	req, _ := q.Next(context.Background()) // wait until the request is queued

	call := func(method, path, body string) string {
		r, _ := http.NewRequest(method, srv.URL+"/approvals/"+path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer token-of-alice")
		r.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + string(b)
	}
	var pending []struct{ Tool, Kind string }
	list := call("GET", "", "")
	_ = json.Unmarshal([]byte(list[strings.Index(list, "["):]), &pending)
	fmt.Println("pending:", pending)
	answer := call("POST", req.ID, `{"decision": "grant", "reason": "looks right"}`)
	fmt.Println(strings.TrimSpace(strings.Replace(answer, req.ID, "<id>", 1)))
	fmt.Println("call:", <-done)
	e, _ := rec.Last()
	fmt.Println(e.Approval.Status, e.Approval.Approvers, e.Approval.Reason)
	// Output:
	// pending: [{refund manager}]
	// 200 OK {"id":"<id>","status":"granted","approvers":["alice"],"needed":1}
	// call: <nil>
	// granted [alice] looks right
}

// A Webhook asks another service. NewWebhookHandler is that service's side
// in Go; the package documentation gives the wire format for any other
// language. Both sides hold the same key.
func ExampleNewWebhook() {
	key := []byte("example key: use 32+ random bytes, kept secret")
	receiver, _ := approval.NewWebhookHandler(key, func(_ context.Context, req *agentguard.ApprovalRequest) (agentguard.Approval, error) {
		var args struct{ Amount int }
		if err := json.Unmarshal(req.Args, &args); err != nil {
			return agentguard.Approval{}, err
		}
		if args.Amount <= 100 {
			return req.Grant("alice"), nil // bound to this request
		}
		return req.Refuse("too much", "alice"), nil
	})
	srv := httptest.NewServer(receiver)
	defer srv.Close()

	hook, _ := approval.NewWebhook(srv.URL, key)
	g, rec := exampleGuard(hook)
	defer g.Close(context.Background())
	refund, _ := g.Wrap(refundTool)

	res, err := refund(context.Background(), json.RawMessage(`{"amount": 40}`))
	fmt.Println(res.Output, err)
	_, err = refund(context.Background(), json.RawMessage(`{"amount": 4000}`))
	fmt.Println(err)
	for _, e := range rec.Kind(audit.KindToolCall) {
		fmt.Println(e.Approval.Status, e.Approval.Approvers)
	}
	// Output:
	// refunded {"amount":40} <nil>
	// agentguard: call to tool "refund" denied at approve: approval refused by alice: too much (policies: refund-approval): agentguard: approval required
	// granted [alice]
	// refused [alice]
}
