// Package audit records every tool call, credential use and policy decision.
//
// The guard writes one [Event] to a [Sink] per tool call (allowed or
// denied), task start (or refusal) and end, credential issue, refresh,
// failure and revocation, policy reload, reviewed tool or prompt change,
// delegation, suspension and resumption, refused tool listing, and change
// of the agent's identity (acquired, changed, lost, regained, SVID
// rotated). Records of decisions name the policy set's digest, the
// deciding policies, and the trace and span of the decision. Events hold a
// SHA-256 digest of the canonical arguments, and the arguments themselves
// only for tools that ask for it, with declared fields redacted; never a
// credential value: leases are named by their lease IDs.
//
// [SlogSink] writes events to a log/slog logger. [audittest.Recorder] keeps
// them in memory for tests.
//
// [OTelSink] emits each event as an OpenTelemetry log record (event name
// "agentguard.audit.<kind>", the event's fields as agentguard.* attributes,
// plus gen_ai.agent.id, gen_ai.tool.name and gen_ai.tool.call.id), so that
// audit ships through a collector with the spans. The OpenTelemetry SDK
// delivers it and may drop records under pressure; [Tee] pairs it with a
// sink that keeps the durable, verifiable copy, and fails the write when
// either fails.
//
// A Sink that fails makes the guarded call fail when the guard is in strict
// mode (the default): no unaudited access.
//
// # The chained file
//
// [FileSink] keeps the durable copy: files that cannot be edited unnoticed.
// In durable mode (the default) Write returns once the record is fsynced,
// concurrent writers sharing each fsync (group commit); with [WithBuffered]
// it returns once queued, a full queue making callers wait, never dropping.
// [Verify] and [VerifyDir] check a log and locate the first broken record
// ([ChainError]).
//
// The files are <prefix>-000001.jsonl, -000002 and so on, mode 0600. Each
// line is one record:
//
//	{"seq":N,"prev":"<64 hex>","event":<Event JSON>,"hash":"<64 hex>"}
//	{"seq":N,"prev":"<64 hex>","checkpoint":<checkpoint JSON>,"hash":"<64 hex>"}
//
// seq starts at 1 and grows by one across files; prev is the previous
// record's hash (64 zeros for seq 1); hash is the hex SHA-256 of the line's
// bytes before its last 75 bytes (,"hash":"…"}), as written: a verifier
// hashes the bytes, it does not re-encode them. Editing, removing, adding or
// moving a record breaks the chain there.
//
// A checkpoint is {"reason","time","chain","key","sig"} and, on a recover
// checkpoint, "torn": {"file","offset","length","sha256"}. Reasons: "open"
// (the first record of a chain, and the first after a clean close when the
// log is reopened), "periodic" (every 1000 events or 10 seconds by default),
// "rotate" (the last record of a full file), "close" (written by Shutdown),
// "recover" (the first record after the log ended without a close, naming
// the torn bytes a crash left, which stay untouched at the end of their
// file; the chain then goes on in a new file). chain is a random ID fixed
// when the chain is created; key is [KeyID] of the signing key; sig is the
// base64 Ed25519 signature over these lines joined by newlines:
// "agentguard-audit-checkpoint/v1", chain, seq, prev, reason, time (as
// written), key, and the torn file, offset, length and sha256 if any. As prev
// commits to every earlier record, a valid signature seals the whole log up
// to the checkpoint, so rewriting the log with recomputed hashes fails at
// the first checkpoint after the change. [WithCheckpointFunc] hands each
// checkpoint to the operator, who may keep it elsewhere as an anchor
// ([VerifyOptions].Anchors): a log cut back past an anchor fails too.
package audit
