// Package identity says which agent is calling a tool.
//
// An [Identity] is a SPIFFE ID, the proof of what a workload is, plus the
// chain of agents that delegated the current task to it (root first). The
// guard gets it from a [Source] on every call; it never trusts a name the
// agent asserts about itself.
//
// This first cut ships [StaticSource], a source that returns a fixed identity
// and verifies nothing: use it in tests and local development only. Sources
// backed by SPIRE's Workload API verify X.509-SVIDs against the trust bundle.
package identity
