// Package audit records every tool call, credential use and policy decision.
//
// The guard writes one [Event] per tool call (allowed or denied), one per task
// start and end, and one per credential revocation, to a [Sink]. Events hold
// a SHA-256 digest of the canonical arguments, not the arguments, and never a
// credential value: leases are named by their lease IDs.
//
// [SlogSink] writes events to a log/slog logger. [audittest.Recorder] keeps
// them in memory for tests.
//
// A Sink that fails makes the guarded call fail when the guard is in strict
// mode (the default): no unaudited access.
package audit
