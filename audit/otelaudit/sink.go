package otelaudit

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/log/global"

	"github.com/agentguard/go-sdk/audit"
)

// LoggerName is the name of the OpenTelemetry logger a Sink emits
// through: its instrumentation scope.
const LoggerName = "github.com/agentguard/go-sdk/audit/otelaudit"

// EventPrefix starts the event name of every record a Sink emits;
// the event's kind ends it, as in "agentguard.audit.tool_call".
const EventPrefix = "agentguard.audit."

// The OpenTelemetry GenAI names for the acting agent, the tool and the
// call, which a Sink sets beside the agentguard.* keys.
const (
	attrGenAIAgentID    = attribute.Key("gen_ai.agent.id")
	attrGenAIToolName   = attribute.Key("gen_ai.tool.name")
	attrGenAIToolCallID = attribute.Key("gen_ai.tool.call.id")
)

// Sink emits each event as an OpenTelemetry log record, so that audit
// leaves through the same collector as the spans.
//
// A record's event name is "agentguard.audit.<kind>", its timestamp the
// event's Time and its observed timestamp the time of Write. Its severity
// is Info, or Warn for a denial, a failure or a refused policy version. Its
// body is a short summary such as "tool_call deny refund". Its attributes
// are the event's set fields, named as in its JSON form with
// "agentguard." before the top-level key (agentguard.kind,
// agentguard.decision, agentguard.policies, agentguard.policy_revision,
// agentguard.step, agentguard.credential, ...). Lists of strings are string
// slices; the nested parts (approval, shadow, credential, policy_change,
// change, identity) are maps, or slices of maps, whose keys are their JSON
// keys; the duration is an integer of nanoseconds and times inside nested
// parts are RFC 3339 strings. The event's time is the timestamp, not an
// attribute. The recorded arguments, agentguard.args, are one string: the
// canonical JSON exactly as recorded, which agentguard.args_digest can
// check, so that the arguments a model chose neither add attribute keys
// (unbounded fields in backends that flatten maps) nor lose precision
// (numbers beyond 64 bits, null). The GenAI keys gen_ai.agent.id,
// gen_ai.tool.name and gen_ai.tool.call.id repeat the agent, tool and call
// ID. The record carries the trace and span of the context given to Write;
// agentguard.trace_id and agentguard.span_id keep the event's own, since an
// event may be written outside its span.
//
// Delivery is the job of the OpenTelemetry SDK's log processors and
// exporters, which batch, retry and may drop records: the log API reports
// no failure, and no value in an event stops it from becoming a record, so
// Write never fails. Pair it, with audit.Tee, with a sink that keeps a durable and
// verifiable copy, such as the chained file.
//
// An Sink is safe for concurrent use.
type Sink struct {
	logger log.Logger
	now    func() time.Time
}

var _ audit.Sink = (*Sink)(nil)

// Option configures a Sink.
type Option func(*otelConfig)

type otelConfig struct {
	loggerOpts []log.LoggerOption
}

// WithLoggerOptions passes options, such as the instrumentation
// version or scope attributes, to the provider when the sink's logger is
// made.
func WithLoggerOptions(opts ...log.LoggerOption) Option {
	return func(c *otelConfig) { c.loggerOpts = append(c.loggerOpts, opts...) }
}

// NewSink returns a sink that emits events through the logger named
// LoggerName of lp. A nil lp means the global provider, which drops
// records until the program sets one (global.SetLoggerProvider).
func NewSink(lp log.LoggerProvider, opts ...Option) *Sink {
	var cfg otelConfig
	for _, o := range opts {
		o(&cfg)
	}
	if lp == nil {
		lp = global.GetLoggerProvider()
	}
	return &Sink{logger: lp.Logger(LoggerName, cfg.loggerOpts...), now: time.Now}
}

// Write emits e as one log record, unless the logger is not enabled for
// it. It always returns nil: every event can be converted.
func (s *Sink) Write(ctx context.Context, e audit.Event) error {
	if ctx == nil {
		ctx = context.Background()
	}
	name := otelEventName(e.Kind)
	sev, sevText := otelSeverity(&e)
	if !s.logger.Enabled(ctx, log.EnabledParameters{Severity: sev, EventName: name}) {
		return nil
	}
	var r log.Record
	r.SetEventName(name)
	r.SetTimestamp(e.Time)
	r.SetObservedTimestamp(s.now())
	r.SetSeverity(sev)
	r.SetSeverityText(sevText)
	r.SetBody(attribute.StringValue(otelSummary(&e)))
	var buf [otelTypicalAttrs]attribute.KeyValue
	r.AddAttributes(otelAttributes(buf[:0], &e)...)
	s.logger.Emit(ctx, r)
	return nil
}

// otelEventNames are the event names of the known kinds, made once so a
// write does not build its name.
var otelEventNames = func() map[audit.Kind]string {
	m := make(map[audit.Kind]string)
	for _, k := range []audit.Kind{audit.KindToolCall, audit.KindTaskStart, audit.KindTaskEnd, audit.KindCredentialIssue,
		audit.KindCredentialRefresh, audit.KindCredentialFail, audit.KindCredentialRevoke, audit.KindDelegate,
		audit.KindHandoffAccept, audit.KindPolicyLoad, audit.KindPolicyReject, audit.KindToolsetChange, audit.KindPromptChange,
		audit.KindSuspend, audit.KindResume, audit.KindIdentityChange, audit.KindToolList, audit.KindCheckpoint} {
		m[k] = EventPrefix + string(k)
	}
	return m
}()

func otelEventName(k audit.Kind) string {
	if n, ok := otelEventNames[k]; ok {
		return n
	}
	return EventPrefix + string(k)
}

// otelSeverity is Warn for what someone should look at (a denial, a
// failure, a refused policy version), Info otherwise.
func otelSeverity(e *audit.Event) (log.Severity, string) {
	if e.Decision == audit.Deny || e.Outcome == audit.OutcomeDenied || e.Outcome == audit.OutcomeError ||
		e.Error != "" || e.Kind == audit.KindPolicyReject {
		return log.SeverityWarn, "WARN"
	}
	return log.SeverityInfo, "INFO"
}

// otelSummary is the record's body: the kind, the decision (or else the
// outcome) and what the event concerns, such as "tool_call deny refund".
func otelSummary(e *audit.Event) string {
	b := make([]byte, 0, 64)
	b = append(b, e.Kind...)
	switch {
	case e.Decision != "":
		b = append(append(b, ' '), e.Decision...)
	case e.Outcome != "":
		b = append(append(b, ' '), e.Outcome...)
	}
	switch {
	case e.Tool != "":
		b = append(append(b, ' '), e.Tool...)
	case e.Target != "":
		b = append(append(b, ' '), e.Target...)
	case e.Delegatee != "":
		b = append(append(b, ' '), e.Delegatee...)
	}
	return string(b)
}

// The attribute keys of an event's top-level fields: its JSON keys after
// "agentguard.".
const (
	attrKind         = attribute.Key("agentguard.kind")
	attrAgent        = attribute.Key("agentguard.agent")
	attrChain        = attribute.Key("agentguard.chain")
	attrTask         = attribute.Key("agentguard.task")
	attrOnBehalfOf   = attribute.Key("agentguard.on_behalf_of")
	attrDelegatee    = attribute.Key("agentguard.delegatee")
	attrTool         = attribute.Key("agentguard.tool")
	attrToolset      = attribute.Key("agentguard.toolset")
	attrCallID       = attribute.Key("agentguard.call_id")
	attrArgsDigest   = attribute.Key("agentguard.args_digest")
	attrArgs         = attribute.Key("agentguard.args")
	attrDecision     = attribute.Key("agentguard.decision")
	attrPolicies     = attribute.Key("agentguard.policies")
	attrRevision     = attribute.Key("agentguard.policy_revision")
	attrShadow       = attribute.Key("agentguard.shadow")
	attrStep         = attribute.Key("agentguard.step")
	attrReason       = attribute.Key("agentguard.reason")
	attrApproval     = attribute.Key("agentguard.approval")
	attrLeases       = attribute.Key("agentguard.leases")
	attrCredential   = attribute.Key("agentguard.credential")
	attrPolicyChange = attribute.Key("agentguard.policy_change")
	attrChange       = attribute.Key("agentguard.change")
	attrTarget       = attribute.Key("agentguard.target")
	attrTasks        = attribute.Key("agentguard.tasks")
	attrIdentity     = attribute.Key("agentguard.identity")
	attrOutcome      = attribute.Key("agentguard.outcome")
	attrError        = attribute.Key("agentguard.error")
	attrDuration     = attribute.Key("agentguard.duration")
	attrTraceID      = attribute.Key("agentguard.trace_id")
	attrSpanID       = attribute.Key("agentguard.span_id")
	attrTruncated    = attribute.Key("agentguard.truncated")
)

// otelTypicalAttrs is room, on the stack, for the attributes of a typical
// tool call.
const otelTypicalAttrs = 20

// attrs builds a list of attributes, leaving out what the JSON form leaves
// out (omitempty). Its methods return the list, rather than append through
// a pointer, so that a list begun in an array on the stack stays there.
type attrs []attribute.KeyValue

func (a attrs) str(k attribute.Key, v string) attrs {
	if v == "" {
		return a
	}
	return append(a, k.String(v))
}

func (a attrs) strs(k attribute.Key, v []string) attrs {
	if len(v) == 0 {
		return a
	}
	return append(a, k.StringSlice(v))
}

func (a attrs) int(k attribute.Key, v int64) attrs {
	if v == 0 {
		return a
	}
	return append(a, k.Int64(v))
}

func (a attrs) time(k attribute.Key, v time.Time) attrs {
	if v.IsZero() {
		return a
	}
	return append(a, k.String(v.Format(time.RFC3339Nano)))
}

func (a attrs) group(k attribute.Key, v attrs) attrs {
	return append(a, attribute.KeyValue{Key: k, Value: attribute.MapValue(v...)})
}

// otelAttributes appends to buf the attributes of e, from its fields, in
// the order of its JSON form, then the GenAI aliases. A field added to
// audit.Event needs a line here; TestOTelSinkCompleteness fails until it has one.
func otelAttributes(buf []attribute.KeyValue, e *audit.Event) []attribute.KeyValue {
	a := attrs(buf)
	a = append(a, attrKind.String(string(e.Kind)))
	a = a.str(attrAgent, e.Agent)
	a = a.strs(attrChain, e.Chain)
	a = a.str(attrTask, e.Task)
	a = a.str(attrOnBehalfOf, e.OnBehalfOf)
	a = a.str(attrDelegatee, e.Delegatee)
	a = a.str(attrTool, e.Tool)
	a = a.str(attrToolset, e.Toolset)
	a = a.str(attrCallID, e.CallID)
	a = a.str(attrArgsDigest, e.ArgsDigest)
	if len(e.Args) > 0 {
		// A copy: exporters may keep the record after Write returns.
		a = append(a, attrArgs.String(string(e.Args)))
	}
	a = a.str(attrDecision, e.Decision)
	a = a.strs(attrPolicies, e.Policies)
	a = a.str(attrRevision, e.Revision)
	if len(e.Shadow) > 0 {
		vs := make([]attribute.Value, len(e.Shadow))
		for i := range e.Shadow {
			vs[i] = shadowValue(&e.Shadow[i])
		}
		a = append(a, attribute.KeyValue{Key: attrShadow, Value: attribute.SliceValue(vs...)})
	}
	a = a.str(attrStep, e.Step)
	a = a.str(attrReason, e.Reason)
	if ap := e.Approval; ap != nil {
		var g [8]attribute.KeyValue
		m := append(attrs(g[:0]), attribute.Bool("required", ap.Required), attribute.Bool("granted", ap.Granted))
		m = m.str("status", ap.Status)
		m = m.str("kind", ap.Kind)
		m = m.str("request_id", ap.RequestID)
		m = m.str("digest", ap.Digest)
		m = m.strs("approvers", ap.Approvers)
		m = m.str("reason", ap.Reason)
		a = a.group(attrApproval, m)
	}
	a = a.strs(attrLeases, e.Leases)
	if c := e.Credential; c != nil {
		var g [9]attribute.KeyValue
		m := attrs(g[:0])
		m = m.str("name", c.Name)
		m = append(m, attribute.String("provider", c.Provider))
		m = m.str("audience", c.Audience)
		m = m.strs("resources", c.Resources)
		m = m.strs("scopes", c.Scopes)
		m = m.time("expires_at", c.ExpiresAt)
		m = m.str("replaces", c.Replaces)
		m = m.int("attempts", int64(c.Attempts))
		if c.NotRevocable {
			m = append(m, attribute.Bool("not_revocable", true))
		}
		a = a.group(attrCredential, m)
	}
	if pc := e.PolicyChange; pc != nil {
		var g [5]attribute.KeyValue
		m := attrs(g[:0])
		m = m.str("source", pc.Source)
		m = m.str("old_revision", pc.OldRevision)
		m = m.str("new_revision", pc.NewRevision)
		m = m.str("files", pc.Files)
		m = m.int("policies", int64(pc.Policies))
		a = a.group(attrPolicyChange, m)
	}
	if c := e.Change; c != nil {
		var g [5]attribute.KeyValue
		m := append(attrs(g[:0]), attribute.String("action", c.Action), attribute.String("name", c.Name))
		m = m.str("toolset", c.Toolset)
		m = append(m, attribute.String("fingerprint", c.Fingerprint))
		m = m.str("previous", c.Previous)
		a = a.group(attrChange, m)
	}
	a = a.str(attrTarget, e.Target)
	a = a.strs(attrTasks, e.Tasks)
	if id := e.Identity; id != nil {
		var g [5]attribute.KeyValue
		m := attrs(g[:0])
		m = m.str("previous", id.Previous)
		m = m.str("serial", id.Serial)
		m = m.str("previous_serial", id.PreviousSerial)
		m = m.time("not_after", id.NotAfter)
		m = append(m, attribute.String("reason", id.Reason))
		a = a.group(attrIdentity, m)
	}
	a = a.str(attrOutcome, e.Outcome)
	a = a.str(attrError, e.Error)
	a = a.int(attrDuration, int64(e.Duration))
	a = a.str(attrTraceID, e.TraceID)
	a = a.str(attrSpanID, e.SpanID)
	a = a.strs(attrTruncated, e.Truncated)

	a = a.str(attrGenAIAgentID, e.Agent)
	a = a.str(attrGenAIToolName, e.Tool)
	a = a.str(attrGenAIToolCallID, e.CallID)
	return a
}

// shadowValue is one shadow decision as a map.
func shadowValue(sh *audit.Shadow) attribute.Value {
	var g [6]attribute.KeyValue
	m := append(attrs(g[:0]), attribute.String("mode", sh.Mode))
	m = m.str("revision", sh.Revision)
	m = append(m, attribute.String("decision", sh.Decision))
	m = m.strs("policies", sh.Policies)
	m = m.str("reason", sh.Reason)
	if len(sh.Obligations) > 0 {
		vs := make([]attribute.Value, len(sh.Obligations))
		for i, o := range sh.Obligations {
			var og [3]attribute.KeyValue
			om := append(attrs(og[:0]), attribute.String("name", o.Name))
			om = om.str("value", o.Value)
			om = om.str("policy", o.Policy)
			vs[i] = attribute.MapValue(om...)
		}
		m = append(m, attribute.KeyValue{Key: "obligations", Value: attribute.SliceValue(vs...)})
	}
	return attribute.MapValue(m...)
}
