// Package credentials gives tools just-in-time credentials: short-lived,
// scoped to one task and to the audience, resources and scopes the tool
// declared, and revoked when the task ends.
//
// A tool declares what it needs with a [Requirement]. For each call the guard
// asks a [Broker] for a [Credential]. The broker caches one lease per task
// and requirement, issues it once however many calls ask at the same time,
// replaces it before it expires, never hands out one that outlives the task,
// retries temporary failures ([ErrUnavailable]) a bounded number of times
// within the caller's deadline, and revokes every lease of a task,
// concurrently and with retries, when the task ends. What happens to each
// lease is reported as an [Event] to observers ([WithObserver],
// [WithObserverContext]); the guard audits them.
//
// Providers:
//
//   - credentials/oauth: an OAuth 2.0 authorization server (client
//     credentials, RFC 8693 token exchange with the agent's JWT-SVID, RFC
//     7009 revocation).
//   - [SVIDProvider]: the agent's JWT-SVID itself, for services that trust
//     the SPIFFE bundle.
//   - credentials/local: the local issuer, which signs JWT access tokens
//     with an ephemeral key and verifies them. For development.
//   - [StaticProvider] and credentials/credentialstest: for tests.
//
// The tool finds its credential with [FromContext], and sends it with
// [HTTPClient] or [Credential.Transport], which attach it only to the
// credential's own resource URLs. Credentials travel in the context, never
// in arguments, environment variables, logs, spans or audit records.
//
// A credential's value is a [Secret]. Every way of printing or encoding a
// Secret redacts it; the value is reachable only through [Secret.Reveal].
package credentials
