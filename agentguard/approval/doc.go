// Package approval provides the built-in [agentguard.Approver]s: a [Queue]
// that people or programs decide, and a [Webhook] that asks another
// service over signed HTTP.
//
// # When the guard asks
//
// The guard asks its Approver (agentguard.WithApprover) when the permits
// that allow a call carry an @approval obligation, when a tool's risk
// requires it (agentguard.WithRiskApproval), and before a changed tool
// definition or prompt takes effect. The [agentguard.ApprovalRequest]
// shows what would happen: the action, the agent and its delegation chain,
// the task, the tool, the canonical arguments, the kind of approval asked
// for ("two-person", "risk-high", ...), the policies that asked and why,
// and when the request expires. The call waits, denied if no grant comes
// before ExpiresAt.
//
// # Binding
//
// Every request has a fresh ID and a Digest over the exact call: action,
// tool (its name, toolset and fingerprint), canonical arguments, task and
// agent with its chain. An answer counts only for the request it names, by
// both: the guard refuses a grant for another ID or digest, so a grant for
// one call cannot be replayed for other arguments, another task, another
// agent, another tool of the same name, or the same call made again. Both approvers here answer with req.Grant and req.Refuse, which
// bind the answer, and the webhook carries ID and digest across the wire
// under a signature.
//
// # Queue: people and scripts decide
//
// A Queue holds each request until it is decided. A person decides through
// [Queue.Handler], an HTTP API whose approver's name comes from an
// [Authenticator] (such as [Tokens], bearer tokens) and never from the
// request body, so nobody can decide in someone else's name:
//
//	q := approval.NewQueue(approval.WithQuorum("two-person", 2))
//	defer q.Close()
//	g, _ := agentguard.New(..., agentguard.WithApprover(q))
//	mux.Handle("/approvals/", http.StripPrefix("/approvals",
//		q.Handler(approval.Tokens(map[string]string{aliceToken: "alice", bobToken: "bob"}))))
//
//	GET  /approvals/      the pending requests, oldest first
//	POST /approvals/{id}  {"decision": "grant", "reason": "checked the invoice"}
//
// A POST must say Content-Type: application/json and hold no other
// fields; a browser cannot send such a request to another origin without
// a CORS preflight, so an Authenticator that trusts a cookie is safe from
// cross-site forms. The listing's entries have the fields of the webhook
// request below (without "version"), plus "granted_by" and "needed".
//
// A program decides with [Queue.Next], which hands out each request once,
// then [Queue.Grant] or [Queue.Refuse]. [Queue.Pending] lists what waits.
// [WithQuorum] makes a kind of request need several distinct approvers;
// one refusal refuses. Kinds match without regard to case, and approver
// names are compared without regard to case or surrounding spaces, so
// "alice" and "Alice " count once toward a quorum; [Tokens] refuses a
// token whose name has surrounding spaces or is empty. [WithTimeout]
// refuses a request left undecided. Whatever the outcome, the request
// leaves the queue when the guard's call returns. The zero Queue is ready
// to use.
//
// # Deferred: the framework pauses the run
//
// Agent frameworks with a human-in-the-loop of their own (eino's
// interrupts, genkit's tool interrupts, ADK's tool confirmations) stop a
// run, show a question to a person and resume the run with the answer,
// perhaps much later. A Deferred never waits: a call that needs approval
// is denied at once with an error matching agentguard.ErrApprovalPending
// (audit status "pending"), from which [PendingRequest] takes the request.
// The framework's adapter pauses the run with it; when the person has
// answered, the adapter calls Decide with the request's ID and the answer,
// and the framework runs the call again:
//
//	d := approval.NewDeferred(approval.WithDeferredQuorum("two-person", 2))
//	g, _ := agentguard.New(..., agentguard.WithApprover(d))
//	_, err := g.Invoke(ctx, refund, call) // in the adapter
//	if req, ok := approval.PendingRequest(err); ok {
//		// pause the run, show req to a person
//	}
//	// on resume:
//	_ = d.Decide(req.ID, approval.Decision{Granted: true, Approvers: []string{"alice"}})
//	_, err = g.Invoke(ctx, refund, call) // runs, once
//
// The decision counts for one call with the same digest as the request
// (the same tool and definition, arguments, task and agent), once. The task
// must therefore be the same before and after the pause: start a task
// around the run and resume it in the task's context. A call made outside
// any task gets a new task each time, and can never be approved this way.
// An adapter that gives up on a request (the run was abandoned) takes it
// back with Withdraw, and a decision its call never used with Discard.
//
// # Webhook: another service decides
//
// A Webhook posts each request to a URL and waits for the answer in the
// HTTP response; [NewWebhookHandler] is the receiving side in Go. Both
// hold the same key of at least 32 random bytes, which signs every message
// in both directions. The key never appears in errors, logs or fmt output.
//
// The URL must be https: the request shows the call's arguments, and the
// status and error text of an answer other than 200 are not signed. Plain
// http is accepted only for a loopback host (localhost, 127.0.0.1, ::1),
// or anywhere with [WithInsecureHTTP]. Of an unsigned error body, the
// call's error and audit record keep at most 128 bytes, control and
// format characters removed ([StatusError]).
//
// The wire format, for writing the receiving side in any language:
//
// The request is a POST with a JSON body:
//
//	{"version": 1, "id": "approval-…", "action": "call_tool",
//	 "agent": "spiffe://example.org/agent/support", "chain": [],
//	 "task": "task-…", "purpose": "resolve ticket T-1", "on_behalf_of": "user:alice",
//	 "sensitivity": 1, "tool": "refund", "toolset": "billing",
//	 "fingerprint": "sha256:…", "call_id": "call-…",
//	 "args": {"amount": 40}, "args_digest": "sha256:…", "digest": "sha256:…",
//	 "kind": "manager", "reason": "refunds need a manager",
//	 "policies": ["refund-approval"], "requested_at": "2025-01-01T12:00:00Z",
//	 "expires_at": "2025-01-01T12:05:00Z"}
//
// "chain" lists the agents that delegated the task, root first; "toolset"
// is the registry or server of the tool and "fingerprint" its definition's
// fingerprint (both "" when unknown), so that the approver knows which of
// two tools of the same name would run; "args" is the call's canonical
// JSON (null when it has none), sent byte for byte, with <, > and &
// unescaped, so that "args_digest" is "sha256:" and the hex SHA-256 of
// exactly the bytes of "args" as received; "sensitivity" is the task's, 0
// (public) to 3 (restricted); "purpose" and "on_behalf_of" are left out
// when empty; times are RFC 3339. The digest covers action, tool, toolset,
// fingerprint, args, task, agent and chain. It carries two headers:
//
//	AgentGuard-Timestamp: <Unix seconds, decimal>
//	AgentGuard-Signature: v1=<hex HMAC-SHA256(key, "agentguard-approval-request\n" + timestamp + "\n" + body)>
//
// The receiver must verify the signature over the exact bytes received
// (comparing in constant time), refuse a timestamp more than a few minutes
// from its clock, refuse an expired request, and refuse a request ID it
// has seen before (remembering IDs until they expire), so that a captured
// request cannot be sent again.
//
// The answer is status 200 with a JSON body and the same two headers:
//
//	{"request_id": "approval-…", "digest": "sha256:…", "granted": true,
//	 "approvers": ["alice"], "reason": "checked the invoice"}
//
//	AgentGuard-Timestamp: <Unix seconds>
//	AgentGuard-Signature: v1=<hex HMAC-SHA256(key, "agentguard-approval-answer\n" + timestamp + "\n" + request_id + "\n" + body)>
//
// request_id and digest are copied from the request. The different first
// lines stop a signed request from being reflected back as an answer, and
// request_id in the signed text ties the answer to its request. The
// Webhook accepts nothing else: another status, a missing or wrong
// signature ([ErrBadSignature], which is also what an answer to another
// request replayed gives), a timestamp outside the skew ([ErrStaleAnswer]),
// another request's ID or digest ([ErrWrongRequest]), a malformed answer
// or a grant naming no approver ([ErrBadAnswer]). The call is then denied.
// If no answer comes before the request expires, or the receiver answers
// 504 Gateway Timeout because nobody decided in time, the error wraps
// agentguard.ErrApprovalTimeout. Any other status is an error; status and
// error bodies need no signature, since they can only deny.
//
// SignatureHeader may hold several comma-separated signatures; those not
// starting with "v1=" are skipped, and one valid v1 signature suffices.
package approval
