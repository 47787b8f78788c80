// Package credentials gives tools just-in-time credentials: short-lived,
// scoped to one task and to the audience and scopes the tool declared, and
// revoked when the task ends.
//
// A tool declares what it needs with a [Requirement]. For each call the guard
// asks a [Broker] for a [Credential]; the broker caches leases per task and
// requirement, gets new ones from a [Provider], and revokes every lease of a
// task when the task ends. The tool finds its credential with [FromContext]:
// credentials travel in the context, never in arguments, environment
// variables, logs, spans or audit records.
//
// A credential's value is a [Secret]. Every way of printing or encoding a
// Secret redacts it; the value is reachable only through [Secret.Reveal].
package credentials
