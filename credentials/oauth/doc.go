// Package oauth issues task-scoped credentials from an OAuth 2.0
// authorization server, and revokes them with RFC 7009 when the task ends.
//
// Two providers, both for a credentials.Broker:
//
//   - [ClientCredentials]: the client credentials grant (RFC 6749 §4.4),
//     on golang.org/x/oauth2, with the requirement's scopes, audience and
//     resource indicators (RFC 8707).
//   - [TokenExchange]: RFC 8693 token exchange. Either the agent's
//     JWT-SVID is the subject token (workload identity federation: the
//     agent proves what it is, and needs no static secret), or a user's
//     token is the subject and the agent's JWT-SVID the actor token, for a
//     token that acts on the user's behalf (the server records the agent in
//     the "act" claim).
//
// The agent authenticates to the server with a client secret
// ([ClientSecretBasic], [ClientSecretPost]) or, with no static secret at
// all, with its JWT-SVID as an RFC 7523 client assertion ([SVIDAssertion],
// for a server that trusts the SPIFFE bundle).
//
// Endpoints must be https (plain http only to a loopback address), and
// redirects are never followed: they would resend the request's secrets to
// another origin.
// JWT-SVIDs come from the request's identity.JWTIssuer, which the guard
// fills in from its identity source.
//
// A server answering 5xx or 429, a network error or a timeout is a
// temporary failure (credentials.ErrUnavailable), which the broker retries
// within the call's deadline; a refusal is an [*Error], which it does not.
// No token, secret or assertion ever appears in an error.
package oauth
