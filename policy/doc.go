// Package policy decides, at request time, whether one exact tool call is
// allowed.
//
// An [Engine] takes a [Request] (the agent, the tool, the canonical
// arguments, the task's state, the delegation chain and any approval) and
// returns a [Decision]: allow or deny, the deciding policy IDs, evaluation
// errors and obligations. A denial is a decision, not an error; an error
// means the engine could not decide, and the guard denies the call.
//
// [CedarEngine] evaluates Cedar policies with cedar-go. Its model:
//
//   - principal Agent::"<SPIFFE ID>", in AgentGroup::"<group>" (from
//     configuration) and TrustDomain::"<trust domain>", with attributes
//     trust_domain, path and name;
//   - action Action::"<tool name>", in Action::"call_tool";
//   - resource Tool::"<tool name>", in Toolset::"<toolset>", with attributes
//     read_only, destructive, idempotent, open_world, risk (Long 0-3) and
//     labels (Set of String);
//   - context args (the arguments: objects are records, arrays sets,
//     integers Long, other numbers decimal; see below), task {id, purpose, sensitivity
//     (Long 0 public to 3 restricted), labels, calls, tools_used, taint},
//     delegation {depth, chain, on_behalf_of}, approval {granted, approvers}
//     and request {time, call_id}.
//
// Every policy needs a unique @id annotation, which names it in decisions and
// audit records. @reason("...") on a forbid policy becomes the denial's
// reason. Annotations of the deciding permit policies that name a known
// obligation (by default only @approval) become the decision's obligations.
//
// Any evaluation error denies the call: a policy that could not be evaluated
// might have been a forbid.
//
// Arguments map to Cedar as faithfully as Cedar allows. Cedar has no lists,
// so an array becomes a set: order and repeats are lost, and a policy cannot
// tell ["mv","a","b"] from ["mv","b","a"]; keep order-sensitive values in
// strings or objects. A null member is left out (Cedar has no null). A
// number that is neither a Long nor a decimal with at most four fractional
// digits is an error, so the call is denied rather than judged on a rounded
// value.
//
// For a listing (Request.Listing), the engine asks whether some arguments
// could allow the call: a when or unless clause that reads context.args or
// context.approval is dropped from a permit and drops a forbid. Put conditions
// on the task in clauses of their own so that they still hide tools.
//
// Package policytest has fake engines for agent authors' unit tests.
package policy
