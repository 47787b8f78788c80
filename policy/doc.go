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
//     integers Long, other numbers decimal, or with a schema the types it
//     declares; see below), task {id, purpose, sensitivity
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
// # Schema
//
// [NewSchema] writes the model above as a Cedar schema for a concrete set of
// tools: entity types Agent, AgentGroup, TrustDomain, Tool and Toolset;
// Action::"call_tool"; the governance actions change_toolset (resource the
// Tool added or changed), change_prompt (resource the agent itself) and
// delegate (resource the Agent handed the task); and for each tool
// an action in call_tool whose context.args is typed from the tool's input
// JSON Schema. [BaseSchema] is the schema with no tools. With [WithSchema],
// the engine validates every policy against the schema when it is built and
// on every reload, so that a misspelled attribute (context.args.ammount), an
// unknown action or entity type, or a comparison of the wrong types is a
// load error naming the policy, file and position (a [*ValidationError]),
// not a call denied at run time. [Set.Validate] does the same on its own,
// for tests and CI.
//
// Validation is Cedar's strict mode. An optional attribute must be tested
// with `has` before it is read. A policy whose action is not constrained
// applies to every action, so it may only read what every action has: scope
// policies with `action == Action::"…"` or `action in Action::"call_tool"`,
// or guard them (`context.args has amount && context.args.amount > 100`,
// `resource is Tool && resource.read_only`). A number argument is a decimal:
// compare it with decimal's methods, as in
// `context.args.amount.greaterThan(decimal("100.0"))`.
//
// JSON Schema maps to Cedar types this way:
//
//	object (properties)          record; a property in "required" is a
//	                             required attribute, any other is optional
//	                             (name?: T), as is one that allows null
//	string, string enum, const   String (format is ignored: a date-time is a
//	                             String)
//	integer                      Long
//	number                       decimal
//	boolean                      Bool
//	array (items)                Set of the items' type
//	$ref "#/$defs/…", "#/definitions/…" or another pointer into the same
//	                             schema: the referenced schema's type
//	"type": [T, "null"], anyOf/oneOf of T and {"type":"null"},
//	"nullable": true             T, optional
//	anyOf/oneOf whose alternatives all have one type: that type
//	allOf                        the parts' type; the attributes of object
//	                             parts are merged
//	enum or const without type   String, Long, decimal or Bool, by the values
//
// Cedar has no union types, no null, no lists and no recursive types, so
// some schemas do not map: unions of different types (several types in
// "type", anyOf, oneOf or allOf whose alternatives differ, enums of mixed
// types), "null" alone, tuples (prefixItems, or items given as an array),
// arrays whose items have no type or different types, recursive $refs,
// $refs to other documents or anchors, and schemas that allow any value ({}
// or true). A property that does not map is left out of the record type and
// named by [Schema.Warnings] (and in the comment that heads
// [Schema.MarshalCedar]): a policy that reads it fails validation, rather
// than reading a value of a type it did not expect. Properties matched by
// additionalProperties or patternProperties are not typed either (also a
// warning). Property names that are not Cedar identifiers are quoted in
// the schema ("my-field"?: String) and read in policies as
// context.args["my-field"]. An input schema that is not JSON, or whose top
// level is not an object schema, is an error; a tool without one has
// context.args {}.
//
// With a schema, a call's arguments are converted to the declared types
// rather than as described above: a number property given 5 is decimal 5.0,
// an integer property given 5.0 is Long 5, and an argument of the wrong JSON
// type, a required argument that is missing or null, or a number the type
// cannot hold exactly is an error that names the argument's path (such as
// items[2].price): the engine cannot decide, and the call is denied.
// Properties the type does not declare, including those left out as
// unmappable, are kept and converted as without a schema: the tool gets
// them, so `context.args has extra` is true (a forbid that tests for an
// undeclared argument still applies, though the validator types the test
// false), but a validated policy cannot read their values. A property whose
// name differs from a declared one only in case ("PATH" for "path") denies
// the call, since a Go tool decoding with encoding/json would take it for
// the declared one. Policy sees only what the caller sent: a default in the input
// schema is not applied, so a property with a default is still optional. A
// tool the schema does not know (registered after it was made) has its
// arguments converted without it; its action is not in the schema, so no
// validated policy names it.
//
// MarshalCedar writes the schema in Cedar's human-readable format, sorted
// by name so that it can be reviewed and diffed; descriptions (the first
// line of a tool's or property's description) become @doc annotations.
// [ParseSchema] reads such a file back, perhaps edited by hand: arguments are
// then converted to the types it declares, including datetime, duration and
// ipaddr from strings, and Warnings names where it departs from what the
// engine builds at run time.
//
// # Evaluation cost: the scope index
//
// cedar-go evaluates every policy of a set on every request. A [Set]
// indexes its policies by their scope (principal ==, in, is; action ==, in;
// resource ==, in, is), and the engine evaluates only the policies whose
// scope can match the request's entities and their ancestors. That decides
// exactly as evaluating the whole set would (the same decision, deciding
// policies and errors), and keeps a decision's cost nearly flat however many
// tenants and policies share a set. Policies with an unconstrained scope
// (permit (principal, action, resource) when {...}) are evaluated on every
// request: constrain the scope where you can. Agent and tool entities are
// built once per agent and tool; only the context is built per call.
//
// # Changing policies safely
//
// [CedarEngine.Swap] replaces the enforced set atomically after validating
// it; each decision is made wholly by one set and carries its digest
// (Decision.Revision). A [Watcher] ([WatchDir], [NewWatcher]) polls a tree
// of .cedar files and swaps in each new version that parses and validates;
// a version that does not is refused, the last good set stays in force, and
// both outcomes are logged and audited (policy_load, policy_reject) with the
// old and new digests. An empty tree is refused too, so that deleting the
// files cannot silently deny everything.
//
// To try policies on real traffic before enforcing them, give the engine a
// shadow set ([WithShadow], [CedarEngine.SetShadow]), or annotate single
// policies @log_only. Neither is ever enforced. Where either would decide a
// call differently (allow or deny, or the obligations), Decision.Shadow
// records what it would have decided (mode "shadow" or "log_only"); the
// guard writes that to the audit record and the span. Listings ignore both.
//
// # Obligations
//
// An annotation of a deciding permit policy whose name the engine knows as
// an obligation becomes a [Obligation] on the decision: @approval("kind")
// always (the guard asks its Approver), and the names given to
// [WithObligations]. The guard fulfils each before the tool runs, with the
// function registered for it (agentguard.WithObligation), and denies the
// call when it has none or the function fails. @id, @reason, @description
// and @log_only are never obligations; other annotations are informational
// unless named.
//
// Package policytest has fake engines for agent authors' unit tests, and
// runs scenario files that test a set of policies like code.
package policy
