// Package identity says which agent is calling a tool.
//
// An [Identity] is a SPIFFE ID, the proof of what a workload is, plus the
// chain of agents that delegated the current task to it (root first). The
// guard gets it from a [Source] on every call; it never trusts a name the
// agent asserts about itself.
//
// # In production: SPIRE's Workload API
//
// [NewSPIFFESource] connects to the SPIFFE Workload API (a SPIRE agent) at
// SPIFFE_ENDPOINT_SOCKET, waits a bounded time for the workload's
// X.509-SVIDs, verifies each against its trust bundle and follows their
// rotation. Each agent of the process binds its own SVID with
// [SPIFFESource.Agent], by SPIFFE ID or by the registration entry's hint;
// the [SPIFFEAgent] it returns is the agent's [Source] and mints its
// JWT-SVIDs ([JWTIssuer]) for presenting itself to others.
//
// # Delegation across processes
//
// A [Handoff] carries one JWT-SVID per delegation hop, each addressed to the
// next agent, so the agent receiving a task can verify the whole chain
// against the SPIFFE bundles ([Handoff.Verify]). The guard's Handoff and
// AcceptHandoff use it.
//
// # In development and tests
//
// [DevIssuer] is an in-memory certificate authority that mints real
// X.509-SVIDs and JWT-SVIDs for named agents of a trust domain. It is NOT
// FOR PRODUCTION: it attests nothing. Package identitytest serves its SVIDs
// through a fake Workload API, for tests of code that uses [SPIFFESource].
// [StaticSource] returns a fixed identity and verifies nothing.
package identity
