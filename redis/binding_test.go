package redis

import (
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/eventkittest"
)

// FuzzDecode feeds arbitrary entry fields to the decoder: it must not panic,
// and what it accepts must be a valid event that encodes and decodes to
// itself.
func FuzzDecode(f *testing.F) {
	f.Add("ce_specversion", "1.0", "ce_id", "x", "ce_source", "/s", "ce_type", "t", "data", "\x00\xff")
	f.Add("ce_specversion", "1.0", "ce_id", "x", "ce_source", "::", "ce_time", "bad", "content-type", "text/plain")
	f.Add("content-type", "application/cloudevents+json", "event", `{"specversion":"1.0","id":"1","source":"/","type":"t"}`, "x", "y", "z", "w", "a", "b")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3, k4, v4, k5, v5 string) {
		fields := map[string]any{k1: v1, k2: v2, k3: v3, k4: v4, k5: v5}
		e, err := decode(fields)
		if err != nil {
			return
		}
		if err := eventkit.ValidateEvent(e); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
		for _, structured := range []bool{false, true} {
			vals, err := encode(e, structured)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			e2, err := decode(asRead(vals))
			if err != nil {
				t.Fatalf("re-decode (structured=%v): %v", structured, err)
			}
			if d := eventkittest.DiffEvents(e, e2); d != "" {
				t.Fatalf("round trip (structured=%v): %s", structured, d)
			}
		}
	})
}

// TestDecodeNotCloudEvent checks that an entry that is no CloudEvent in
// either mode is reported with eventkit.ErrNotCloudEvent.
func TestDecodeNotCloudEvent(t *testing.T) {
	for _, fields := range []map[string]any{
		{"data": "x", "content-type": "text/plain"},
		{"event": `{"specversion":"1.0"}`, "content-type": "text/plain"},
	} {
		if _, err := decode(fields); !errors.Is(err, eventkit.ErrNotCloudEvent) {
			t.Errorf("decode(%v) = %v, want ErrNotCloudEvent", fields, err)
		}
	}
}

// asRead returns the fields that XADD writes from vals (name, value, ...)
// as go-redis reads them back: every value a string.
func asRead(vals []any) map[string]any {
	m := make(map[string]any, len(vals)/2)
	for i := 0; i < len(vals); i += 2 {
		switch v := vals[i+1].(type) {
		case []byte:
			m[vals[i].(string)] = string(v)
		default:
			m[vals[i].(string)] = v
		}
	}
	return m
}

func TestGroupStart(t *testing.T) {
	for _, tc := range []struct {
		cfg  driver.Config
		want string
	}{
		{driver.Config{}, "$"},
		{driver.Config{FromStart: true}, "0"},
		{driver.Config{StartTime: time.UnixMilli(1700000000123)}, "1700000000122-18446744073709551615"},
		{driver.Config{StartTime: time.UnixMilli(0)}, "0"},
		{driver.Config{StartPosition: "1700000000123-4"}, "1700000000123-3"},
		{driver.Config{StartPosition: "1700000000123-0"}, "1700000000122-18446744073709551615"},
		{driver.Config{StartPosition: "1700000000123"}, "1700000000122-18446744073709551615"},
		{driver.Config{StartPosition: "0-1"}, "0-0"},
		{driver.Config{StartPosition: "0-0"}, "0"},
	} {
		got, err := groupStart(tc.cfg)
		if err != nil || got != tc.want {
			t.Errorf("groupStart(%+v) = %q, %v; want %q", tc.cfg, got, err, tc.want)
		}
	}
	for _, bad := range []string{"x", "1-", "-1", "1-2-3", "1.5"} {
		if _, err := groupStart(driver.Config{StartPosition: bad}); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("position %q: %v, want ErrInvalidOption", bad, err)
		}
	}
}
