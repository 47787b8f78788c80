package audit

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// appendEvent appends e's JSON to dst: the bytes json.Marshal gives, made
// about ten times faster by encoding the fields directly, since the file
// sink's callers spend most of their time here. The fields below must be
// Event's, in order; when Event changes and they no longer are
// (eventLayoutMatches is false), appendEvent falls back to json.Marshal, so
// the output stays right while slower until this function is updated
// (TestAppendEventMatchesJSON says so).
func appendEvent(dst []byte, e *Event) ([]byte, error) {
	if !eventLayoutMatches || !jsonTime(e.Time) {
		b, err := json.Marshal(*e) // a copy, so that e does not escape
		return append(dst, b...), err
	}
	var err error
	dst = append(dst, `{"time":"`...)
	dst = e.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","kind":`...)
	dst = appendJSONString(dst, string(e.Kind))
	dst = appendStringField(dst, `,"agent":`, e.Agent)
	dst = appendStringsField(dst, `,"chain":`, e.Chain)
	dst = appendStringField(dst, `,"task":`, e.Task)
	dst = appendStringField(dst, `,"on_behalf_of":`, e.OnBehalfOf)
	dst = appendStringField(dst, `,"delegatee":`, e.Delegatee)
	dst = appendStringField(dst, `,"tool":`, e.Tool)
	dst = appendStringField(dst, `,"toolset":`, e.Toolset)
	dst = appendStringField(dst, `,"call_id":`, e.CallID)
	dst = appendStringField(dst, `,"args_digest":`, e.ArgsDigest)
	if len(e.Args) > 0 {
		dst, err = appendValueField(dst, `,"args":`, e.Args, err)
	}
	dst = appendStringField(dst, `,"decision":`, e.Decision)
	dst = appendStringsField(dst, `,"policies":`, e.Policies)
	dst = appendStringField(dst, `,"policy_revision":`, e.Revision)
	if len(e.Shadow) > 0 {
		dst, err = appendValueField(dst, `,"shadow":`, e.Shadow, err)
	}
	dst = appendStringField(dst, `,"step":`, e.Step)
	dst = appendStringField(dst, `,"reason":`, e.Reason)
	if e.Approval != nil {
		dst, err = appendValueField(dst, `,"approval":`, e.Approval, err)
	}
	dst = appendStringsField(dst, `,"leases":`, e.Leases)
	if e.Credential != nil {
		dst, err = appendValueField(dst, `,"credential":`, e.Credential, err)
	}
	if e.PolicyChange != nil {
		dst, err = appendValueField(dst, `,"policy_change":`, e.PolicyChange, err)
	}
	if e.Change != nil {
		dst, err = appendValueField(dst, `,"change":`, e.Change, err)
	}
	dst = appendStringField(dst, `,"target":`, e.Target)
	dst = appendStringsField(dst, `,"tasks":`, e.Tasks)
	if e.Identity != nil {
		dst, err = appendValueField(dst, `,"identity":`, e.Identity, err)
	}
	dst = appendStringField(dst, `,"outcome":`, e.Outcome)
	dst = appendStringField(dst, `,"error":`, e.Error)
	if e.Duration != 0 {
		dst = append(dst, `,"duration":`...)
		dst = strconv.AppendInt(dst, int64(e.Duration), 10)
	}
	dst = appendStringField(dst, `,"trace_id":`, e.TraceID)
	dst = appendStringField(dst, `,"span_id":`, e.SpanID)
	dst = appendStringsField(dst, `,"truncated":`, e.Truncated)
	return append(dst, '}'), err
}

// eventLayout is Event's fields as appendEvent knows them: name, type and
// JSON tag.
const eventLayout = `Time time.Time time
Kind audit.Kind kind
Agent string agent,omitempty
Chain []string chain,omitempty
Task string task,omitempty
OnBehalfOf string on_behalf_of,omitempty
Delegatee string delegatee,omitempty
Tool string tool,omitempty
Toolset string toolset,omitempty
CallID string call_id,omitempty
ArgsDigest string args_digest,omitempty
Args json.RawMessage args,omitempty
Decision string decision,omitempty
Policies []string policies,omitempty
Revision string policy_revision,omitempty
Shadow []audit.Shadow shadow,omitempty
Step string step,omitempty
Reason string reason,omitempty
Approval *audit.Approval approval,omitempty
Leases []string leases,omitempty
Credential *audit.Credential credential,omitempty
PolicyChange *audit.PolicyChange policy_change,omitempty
Change *audit.Change change,omitempty
Target string target,omitempty
Tasks []string tasks,omitempty
Identity *audit.IdentityChange identity,omitempty
Outcome string outcome,omitempty
Error string error,omitempty
Duration time.Duration duration,omitempty
TraceID string trace_id,omitempty
SpanID string span_id,omitempty
Truncated []string truncated,omitempty`

var eventLayoutMatches = describeEvent() == eventLayout

// describeEvent describes Event's fields as eventLayout does.
func describeEvent() string {
	t := reflect.TypeFor[Event]()
	lines := make([]string, t.NumField())
	for i := range lines {
		f := t.Field(i)
		lines[i] = f.Name + " " + f.Type.String() + " " + f.Tag.Get("json")
	}
	return strings.Join(lines, "\n")
}

// jsonTime reports whether AppendFormat(RFC3339Nano) gives what
// time.Time's MarshalJSON does, which refuses some years and offsets.
func jsonTime(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off%60 == 0 && off > -24*3600 && off < 24*3600
}

func appendStringField(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendJSONString(append(dst, key...), s)
}

func appendStringsField(dst []byte, key string, ss []string) []byte {
	if len(ss) == 0 {
		return dst
	}
	dst = append(dst, key...)
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, s)
	}
	return append(dst, ']')
}

// appendValueField encodes the fields that are rare in tool call records
// with json.Marshal, keeping the first error.
func appendValueField(dst []byte, key string, v any, err error) ([]byte, error) {
	b, merr := json.Marshal(v)
	if err == nil {
		err = merr
	}
	return append(append(dst, key...), b...), err
}

// appendJSONString quotes s as encoding/json does: printable ASCII other
// than the quote, the backslash and <, > and & (escaped for HTML) is
// copied; any other string goes through json.Marshal.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !jsonPlain[s[i]] {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// jsonPlain marks the bytes appendJSONString copies as they are.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

const (
	// cutText and cutItems are how long a text, and how many items a list,
	// of an event too large for a record keep at first; shrinkEvent
	// divides them by four until the event fits.
	cutText  = 64 << 10
	cutItems = 1024
	// cutMarker ends a text that was cut short.
	cutMarker = "…[truncated]"
)

// shrinkEvent encodes a copy of e cut down to fit a record: Args dropped
// when longer than the text bound (or not valid JSON, when badArgs), every
// longer text cut to the bound with cutMarker, every longer list cut to
// the item bound, and Truncated naming each cut with its size. e is not
// changed.
func shrinkEvent(e *Event, badArgs bool) ([]byte, error) {
	textCap, itemCap := cutText, cutItems
	for textCap >= 16 {
		c := *e
		var cut []string
		if len(c.Args) > 0 && (len(c.Args) > textCap || (badArgs && !json.Valid(c.Args))) {
			note := "args:" + strconv.Itoa(len(c.Args)) + " bytes"
			if !json.Valid(c.Args) {
				note += ", not valid JSON"
			}
			cut = append(cut, note)
			c.Args = nil
		}
		cutValue(reflect.ValueOf(&c).Elem(), "", textCap, itemCap, &cut)
		c.Truncated = append(c.Truncated, cut...)
		b, err := appendEvent(nil, &c)
		if err != nil {
			return nil, err
		}
		if len(b) <= maxPayload {
			return b, nil
		}
		textCap, itemCap = textCap/4, itemCap/4
	}
	return nil, errors.New("event cannot be cut down to fit a record") // unreachable: a few short fields always fit
}

// cutValue cuts the texts and lists of v, a copy it may change, replacing
// what it changes below v rather than writing through v's pointers and
// slices, which the caller's event shares. path is v's JSON name.
func cutValue(v reflect.Value, path string, textCap, itemCap int, cut *[]string) {
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); len(s) > textCap {
			n := textCap
			for n > 0 && !utf8.RuneStart(s[n]) {
				n--
			}
			v.SetString(s[:n] + cutMarker)
			*cut = append(*cut, path+":"+strconv.Itoa(len(s))+" bytes")
		}
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(v.Elem())
		cutValue(p.Elem(), path, textCap, itemCap, cut)
		v.Set(p)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 || v.Len() == 0 {
			return // Args, handled by shrinkEvent
		}
		n := v.Len()
		if n > itemCap {
			*cut = append(*cut, path+":"+strconv.Itoa(n)+" items")
			n = itemCap
		}
		c := reflect.MakeSlice(v.Type(), n, n)
		reflect.Copy(c, v)
		for i := range n {
			cutValue(c.Index(i), path+"["+strconv.Itoa(i)+"]", textCap, itemCap, cut)
		}
		v.Set(c)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return
		}
		t := v.Type()
		for i := range t.NumField() {
			if !t.Field(i).IsExported() {
				continue
			}
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				name = t.Field(i).Name
			}
			cutValue(v.Field(i), join(name), textCap, itemCap, cut)
		}
	}
}
