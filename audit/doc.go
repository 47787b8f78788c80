// Package audit records every tool call, credential use and policy decision.
//
// The guard writes one [Event] to a [Sink] per tool call (allowed or
// denied), task start (or refusal) and end, credential issue, refresh,
// failure and revocation, reviewed tool or prompt change, delegation,
// suspension and resumption, refused tool listing, and change of the
// agent's identity (acquired, lost, regained, SVID rotated). Policy
// reloads (loaded or rejected) are written by the policy watcher given the
// same sink (policy.WatchAudit). Records of decisions name the policy set's digest, the
// deciding policies, and the trace and span of the decision. Events hold a
// SHA-256 digest of the canonical arguments, and the arguments themselves
// only for tools that ask for it, with declared fields redacted; never a
// credential value: leases are named by their lease IDs.
//
// [SlogSink] writes events to a log/slog logger. [audittest.Recorder] keeps
// them in memory for tests.
//
// otelaudit.Sink (package github.com/agentguard/go-sdk/audit/otelaudit, a
// module of its own) emits each event as an OpenTelemetry log record (event name
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
// it returns once queued, a full queue making callers wait, never dropping
// (but a crash loses what is queued, and a later failure cannot deny calls
// already made). An event too large for a record (16 MiB) is cut down,
// never refused: Event.Truncated names what was cut. [Verify] and
// [VerifyDir] check a log and locate the first broken record
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
// A checkpoint is {"reason","time","chain","key","signed_through",
// "adopted","torn","sig"}, encoded as json.Marshal does with empty fields
// left out; a verifier accepts only that exact encoding. Reasons: "open"
// (the first record of a chain, and the first after a clean close when
// the log is reopened), "periodic" (every 1000 events or 10 seconds by
// default), "rotate" (the last record of a full file), "close" (written by
// Shutdown) and "recover" (see below). chain is a random ID fixed when the
// chain is created; key is [KeyID] of the signing key; sig is the base64
// Ed25519 signature over these lines joined by newlines:
// "agentguard-audit-checkpoint/v1", chain, seq, prev, reason, time (as
// written), key, and, on a recover checkpoint or one that names torn
// tails, signed_through, adopted, the number of torn tails and each one's
// file, offset, length and sha256. As prev commits to every earlier
// record, a valid signature seals the whole log up to the checkpoint, so
// rewriting the log with recomputed hashes fails at the first checkpoint
// after the change.
//
// # Crashes and recovery
//
// A crash can leave the end of the last file torn: part of a record, or
// NUL bytes where a power loss left blocks unwritten. The torn tail runs
// from the first line without a newline or with a NUL byte to the end of
// the file ([Torn]); it stays untouched, as evidence. When a sink starts
// on a log that does not end with a close checkpoint, it writes a
// "recover" checkpoint, in a new file if the last one ends torn, else
// after the last record. The recover checkpoint states, under its
// signature, signed_through: the last checkpoint before it, whose
// signature verified; adopted: how many records after that one it took in
// (0 when the log ended with that checkpoint); and torn: the torn tails it
// found, by file base name, offset, length and SHA-256 (so renaming the
// files of a recovered log breaks its verification). A crash while the
// first record of a file was written leaves a file with no complete
// record: its bytes are a torn tail too, and the next checkpoint names
// them all.
//
// The adopted records were sealed by no signature when the sink restarted.
// A crash leaves such records (those written since the last checkpoint),
// but so does anyone who could write the files while the agent was
// stopped: they could have rewritten or appended those records, and the
// recover checkpoint seals what it found. [Report].Recoveries lists every
// recovery, and agentguard-audit warns about adopted records and fails
// unless told to accept them.
//
// # What a log cannot show about itself
//
// A log cut back to an earlier checkpoint verifies on its own: every
// restart of the agent leaves a close checkpoint, and an open (crashed)
// log may end at any checkpoint. So does a log whose newest files were
// deleted, and a directory wiped and refilled with a new chain (a sink
// that finds no chain starts one). Only what is kept elsewhere detects
// this: anchors, the checkpoints [WithCheckpointFunc] hands over as they
// are written, given back as [VerifyOptions].Anchors (a log cut back past
// an anchor fails); and the chain ID ([VerifyOptions].Chain). Keep them
// where whoever can write the log cannot: append json.Marshal of each
// [Checkpoint] to a file elsewhere ([ParseAnchors] and agentguard-audit
// -anchors read it back), or ship them with [CheckpointEvent] through an
// otelaudit.Sink to a collector.
package audit
