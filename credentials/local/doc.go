// Package local is the local issuer: the SDK's embedded default credential
// provider, FOR DEVELOPMENT AND TESTS.
//
// An [Issuer] signs short-lived JWT access tokens (RFC 9068) for one task,
// one agent, one audience and a set of scopes, with an ephemeral ECDSA P-256
// key. It publishes its public keys as a JWKS and its revoked leases as a
// revocation list ([Issuer.Handler]), and a [Verifier] checks its tokens,
// either in the same process ([Issuer.Verifier]) or from another one over
// HTTP ([NewRemoteVerifier]). [Verifier.Middleware] guards an HTTP handler
// with it, so a test server or a tool under development can demand the
// token the broker leased.
//
// NOT FOR PRODUCTION. Keys are made at start-up and live only in this
// process's memory. Its tokens are trusted only by verifiers pointed at this
// issuer: no real service accepts them. A restart forgets every revocation,
// which is harmless because it forgets the keys too: after a restart no
// verifier accepts a token signed before it, revoked or not (a remote
// verifier learns of the restart when it next fetches the revocation list,
// within WithRevocationMaxAge, and then refuses those tokens). In production,
// credentials come from a real authorization server through a
// [credentials.Provider] that speaks to it.
package local
