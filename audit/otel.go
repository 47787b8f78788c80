package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/log/global"
)

// OTelLoggerName is the name of the OpenTelemetry logger an OTelSink emits
// through: its instrumentation scope.
const OTelLoggerName = "github.com/agentguard/go-sdk/audit"

// OTelEventPrefix starts the event name of every record an OTelSink emits;
// the event's kind ends it, as in "agentguard.audit.tool_call".
const OTelEventPrefix = "agentguard.audit."

// The OpenTelemetry GenAI names for the acting agent, the tool and the
// call, which an OTelSink sets beside the agentguard.* keys.
const (
	attrGenAIAgentID    = attribute.Key("gen_ai.agent.id")
	attrGenAIToolName   = attribute.Key("gen_ai.tool.name")
	attrGenAIToolCallID = attribute.Key("gen_ai.tool.call.id")
)

// OTelSink emits each event as an OpenTelemetry log record, so that audit
// leaves through the same collector as the spans.
//
// A record's event name is "agentguard.audit.<kind>", its timestamp the
// event's Time and its observed timestamp the time of Write. Its severity
// is Info, or Warn for a denial, a failure or a refused policy version. Its
// body is a short summary such as "tool_call deny refund". Its attributes
// are the event's fields as in its JSON form, each top-level key prefixed
// with "agentguard." (agentguard.kind, agentguard.decision,
// agentguard.policies, agentguard.policy_revision, agentguard.step,
// agentguard.credential, ...), objects as maps and arrays as slices, so a
// field added to Event is shipped without change here; the time is the
// timestamp, not an attribute. The GenAI keys gen_ai.agent.id,
// gen_ai.tool.name and gen_ai.tool.call.id repeat the agent, tool and call
// ID. The record carries the trace and span of the context given to Write;
// agentguard.trace_id and agentguard.span_id keep the event's own, since an
// event may be written outside its span.
//
// Delivery is the job of the OpenTelemetry SDK's log processors and
// exporters, which batch, retry and may drop records: the log API reports
// no failure, so Write fails only when the event cannot be converted. Pair
// it, with Tee, with a sink that keeps a durable and verifiable copy, such
// as the chained file.
//
// An OTelSink is safe for concurrent use.
type OTelSink struct {
	logger log.Logger
	now    func() time.Time
}

var _ Sink = (*OTelSink)(nil)

// OTelOption configures an OTelSink.
type OTelOption func(*otelConfig)

type otelConfig struct {
	loggerOpts []log.LoggerOption
}

// WithOTelLoggerOptions passes options, such as the instrumentation
// version or scope attributes, to the provider when the sink's logger is
// made.
func WithOTelLoggerOptions(opts ...log.LoggerOption) OTelOption {
	return func(c *otelConfig) { c.loggerOpts = append(c.loggerOpts, opts...) }
}

// NewOTelSink returns a sink that emits events through the logger named
// OTelLoggerName of lp. A nil lp means the global provider, which drops
// records until the program sets one (global.SetLoggerProvider).
func NewOTelSink(lp log.LoggerProvider, opts ...OTelOption) *OTelSink {
	var cfg otelConfig
	for _, o := range opts {
		o(&cfg)
	}
	if lp == nil {
		lp = global.GetLoggerProvider()
	}
	return &OTelSink{logger: lp.Logger(OTelLoggerName, cfg.loggerOpts...), now: time.Now}
}

// Write emits e as one log record. It returns an error, prefixed "audit:",
// only when e cannot be converted to attributes.
func (s *OTelSink) Write(ctx context.Context, e Event) error {
	if ctx == nil {
		ctx = context.Background()
	}
	name := OTelEventPrefix + string(e.Kind)
	sev, sevText := otelSeverity(e)
	if !s.logger.Enabled(ctx, log.EnabledParameters{Severity: sev, EventName: name}) {
		return nil
	}
	attrs, err := otelAttributes(e)
	if err != nil {
		return fmt.Errorf("audit: otel sink: %s event: %w", e.Kind, err)
	}
	var r log.Record
	r.SetEventName(name)
	r.SetTimestamp(e.Time)
	r.SetObservedTimestamp(s.now())
	r.SetSeverity(sev)
	r.SetSeverityText(sevText)
	r.SetBody(attribute.StringValue(otelSummary(e)))
	r.AddAttributes(attrs...)
	s.logger.Emit(ctx, r)
	return nil
}

// otelSeverity is Warn for what someone should look at (a denial, a
// failure, a refused policy version), Info otherwise.
func otelSeverity(e Event) (log.Severity, string) {
	if e.Decision == Deny || e.Outcome == OutcomeDenied || e.Outcome == OutcomeError ||
		e.Error != "" || e.Kind == KindPolicyReject {
		return log.SeverityWarn, "WARN"
	}
	return log.SeverityInfo, "INFO"
}

// otelSummary is the record's body: the kind, the decision (or else the
// outcome) and what the event concerns, such as "tool_call deny refund".
func otelSummary(e Event) string {
	parts := make([]string, 0, 3)
	parts = append(parts, string(e.Kind))
	switch {
	case e.Decision != "":
		parts = append(parts, e.Decision)
	case e.Outcome != "":
		parts = append(parts, e.Outcome)
	}
	switch {
	case e.Tool != "":
		parts = append(parts, e.Tool)
	case e.Target != "":
		parts = append(parts, e.Target)
	case e.Delegatee != "":
		parts = append(parts, e.Delegatee)
	}
	return strings.Join(parts, " ")
}

// otelAttributes converts e, through its JSON form, to attributes whose
// keys are the JSON keys prefixed "agentguard.", in the order of the JSON
// form, then adds the GenAI aliases. The time is left out: it is the
// record's timestamp.
func otelAttributes(e Event) ([]attribute.KeyValue, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("event is not a JSON object")
	}
	attrs := make([]attribute.KeyValue, 0, 24)
	for dec.More() {
		k, err := jsonKey(dec)
		if err != nil {
			return nil, err
		}
		v, err := jsonValue(dec)
		if err != nil {
			return nil, err
		}
		if k == "time" {
			continue
		}
		attrs = append(attrs, attribute.KeyValue{Key: attribute.Key("agentguard." + k), Value: v})
	}
	if e.Agent != "" {
		attrs = append(attrs, attrGenAIAgentID.String(e.Agent))
	}
	if e.Tool != "" {
		attrs = append(attrs, attrGenAIToolName.String(e.Tool))
	}
	if e.CallID != "" {
		attrs = append(attrs, attrGenAIToolCallID.String(e.CallID))
	}
	return attrs, nil
}

func jsonKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	k, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("object key %v is not a string", tok)
	}
	return k, nil
}

// jsonValue reads the next JSON value from dec as an attribute value:
// objects become maps, arrays slices (string slices when every element is
// a string), integers int64 and other numbers float64.
func jsonValue(dec *json.Decoder) (attribute.Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return attribute.Value{}, err
	}
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			var kvs []attribute.KeyValue
			for dec.More() {
				k, err := jsonKey(dec)
				if err != nil {
					return attribute.Value{}, err
				}
				val, err := jsonValue(dec)
				if err != nil {
					return attribute.Value{}, err
				}
				kvs = append(kvs, attribute.KeyValue{Key: attribute.Key(k), Value: val})
			}
			_, err := dec.Token() // '}'
			return attribute.MapValue(kvs...), err
		}
		var vals []attribute.Value
		strs := true
		for dec.More() {
			val, err := jsonValue(dec)
			if err != nil {
				return attribute.Value{}, err
			}
			strs = strs && val.Type() == attribute.STRING
			vals = append(vals, val)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return attribute.Value{}, err
		}
		if strs && len(vals) > 0 {
			ss := make([]string, len(vals))
			for i, val := range vals {
				ss[i] = val.AsString()
			}
			return attribute.StringSliceValue(ss), nil
		}
		return attribute.SliceValue(vals...), nil
	case string:
		return attribute.StringValue(v), nil
	case bool:
		return attribute.BoolValue(v), nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return attribute.Int64Value(i), nil
		}
		f, err := v.Float64()
		if err != nil {
			return attribute.Value{}, err
		}
		return attribute.Float64Value(f), nil
	default: // null
		return attribute.Value{}, nil
	}
}
