package audit

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAppendEventMatchesJSON(t *testing.T) {
	if !eventLayoutMatches {
		t.Fatalf("Event's fields changed: update appendEvent and eventLayout in chain_event.go "+
			"(the file sink uses the slower json.Marshal until then). Event is now:\n%s", describeEvent())
	}
	r := rand.New(rand.NewPCG(7, 7))
	check := func(e Event) {
		t.Helper()
		want, werr := json.Marshal(e)
		got, gerr := appendEvent([]byte("prefix"), &e)
		if (werr == nil) != (gerr == nil) || (werr == nil && !bytes.Equal(got[len("prefix"):], want)) {
			t.Fatalf("appendEvent\n got %s (%v)\nwant %s (%v)", got[len("prefix"):], gerr, want, werr)
		}
	}
	check(Event{})
	check(toolCall("call-1"))
	for range 500 {
		check(randomEvent(r))
	}
	// Times that time.Time's MarshalJSON treats specially.
	for _, tm := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.FixedZone("odd", 3600+17)),
		time.Date(2025, 1, 1, 0, 0, 0, 5, time.FixedZone("CET", 3600)),
	} {
		e := toolCall("t")
		e.Time = tm
		check(e)
	}
	// Invalid raw arguments fail as with json.Marshal.
	e := toolCall("bad-args")
	e.Args = json.RawMessage(`{"a":`)
	check(e)
}

// randomEvent sets every field of an Event to a random value (or leaves
// it zero), with strings that need escaping.
func randomEvent(r *rand.Rand) Event {
	pieces := []string{"a", "spiffe://example.org/x", "<script>", "&", "\"q\"", "\\", "\n\t", "é", "\u2028", "\x00", "\xff", "日本", " ", "call-1"}
	str := func() string {
		if r.IntN(3) == 0 {
			return ""
		}
		var b strings.Builder
		for range r.IntN(4) + 1 {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		return b.String()
	}
	var e Event
	fill(reflect.ValueOf(&e).Elem(), r, str)
	return e
}

func fill(v reflect.Value, r *rand.Rand, str func() string) {
	if r.IntN(4) == 0 {
		return // leave it zero
	}
	switch v.Interface().(type) {
	case time.Time:
		v.Set(reflect.ValueOf(time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(time.FixedZone("z", 60*(r.IntN(1440)-720)))))
		return
	case json.RawMessage:
		v.Set(reflect.ValueOf(json.RawMessage(`{ "card" : {"number":"[REDACTED]"}, "n": [1, 2 ,3] }`)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(str())
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 0)
	case reflect.Int, reflect.Int64:
		v.SetInt(r.Int64N(1e12) - 1e6)
	case reflect.Slice:
		n := r.IntN(3)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fill(s.Index(i), r, str)
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), r, str)
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), r, str)
		}
	}
}
