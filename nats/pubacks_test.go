package nats

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The forms nats-server writes on success (stream.go: the pubAck template,
// then the sequence, then "}" or the duplicate mark) must take the fast
// path, and read right.
func TestParsePubAckServerForms(t *testing.T) {
	for _, c := range []struct {
		in   string
		want pubAck
	}{
		{`{"stream":"ORDERS","seq":42}`, pubAck{"ORDERS", 42, false}},
		{`{"stream":"ORDERS","domain":"hub","seq":7}`, pubAck{"ORDERS", 7, false}},
		{`{"stream":"ORDERS","seq":42,"duplicate": true}`, pubAck{"ORDERS", 42, true}},
		{`{"stream":"ORDERS","domain":"hub","seq":18446744073709551615,"duplicate": true}`, pubAck{"ORDERS", 1<<64 - 1, true}},
		{` { "seq" : 1 , "stream" : "S" , "duplicate" : false } `, pubAck{"S", 1, false}},
	} {
		got, ok := parsePubAckFast([]byte(c.in))
		if !ok || got != c.want {
			t.Errorf("parsePubAckFast(%s) = %+v, %v; want %+v, true", c.in, got, ok, c.want)
		}
		if got, err := parsePubAck([]byte(c.in)); err != nil || got != c.want {
			t.Errorf("parsePubAck(%s) = %+v, %v", c.in, got, err)
		}
	}
}

// Error replies give the server's error (its code is what retryable looks
// at); malformed or incomplete replies are ErrInvalidJSAck, never success.
func TestParsePubAckErrors(t *testing.T) {
	var apiErr *jetstream.APIError
	_, err := parsePubAck([]byte(`{"stream":"ORDERS","seq":0,"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}`))
	if !errors.As(err, &apiErr) || apiErr.Code != 400 || apiErr.ErrorCode != 10054 || apiErr.Description != "message size exceeds maximum allowed" {
		t.Errorf("error reply: got %v", err)
	}
	if retryable(err) {
		t.Error("a 400 error is retryable")
	}
	_, err = parsePubAck([]byte(`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`))
	if !errors.As(err, &apiErr) || apiErr.Code != 503 || !retryable(err) {
		t.Errorf("503 error reply: got %v (retryable %v)", err, retryable(err))
	}
	for _, bad := range []string{
		``, `{}`, `null`, `[]`, `{"stream":"ORDERS"}`, `{"seq":3}`, `{"stream":"","seq":3}`,
		`{"stream":"ORDERS","seq":null}`, `{"stream":"ORDERS","seq":-1}`, `{"stream":"ORDERS","seq":1.5}`,
		`{"stream":"ORDERS","seq":18446744073709551616}`, `{"stream":"ORDERS","seq":3} x`,
		`{"stream":"ORDERS","seq":3`, `{"stream":ORDERS,"seq":3}`, `{"stream":"ORDERS","seq":03}`,
		`{"stream":"ORDERS","seq":"3"}`, `{"stream":"ORDERS","seq":3,"duplicate":"yes"}`,
	} {
		if a, err := parsePubAck([]byte(bad)); !errors.Is(err, jetstream.ErrInvalidJSAck) {
			t.Errorf("parsePubAck(%s) = %+v, %v; want ErrInvalidJSAck", bad, a, err)
		}
	}
}

func TestParseAckMsgStatus(t *testing.T) {
	m := &nats.Msg{Header: nats.Header{"Status": []string{"503"}}}
	if _, err := parseAckMsg(m); !errors.Is(err, nats.ErrNoResponders) || !retryable(err) {
		t.Errorf("503 status: got %v", err)
	}
	m = &nats.Msg{Header: nats.Header{"Status": []string{"408"}, "Description": []string{"Request Timeout"}}}
	if _, err := parseAckMsg(m); !errors.Is(err, jetstream.ErrInvalidJSAck) {
		t.Errorf("408 status: got %v", err)
	}
}

// FuzzParsePubAck checks parsePubAck against a plain encoding/json decode
// of pubAckJSON with the same rules (an error object is an error; else a
// non-empty stream and a seq make an ack): the same ack for the same
// input, and an error exactly when the reference gives one. It also checks
// that whenever the fast path accepts an input, encoding/json reads the
// same values from it.
func FuzzParsePubAck(f *testing.F) {
	for _, s := range []string{
		`{"stream":"ORDERS","seq":42}`,
		`{"stream":"ORDERS","domain":"hub","seq":7}`,
		`{"stream":"ORDERS","seq":42,"duplicate": true}`,
		`{"stream":"ORDERS","seq":0,"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}`,
		`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`,
		`{"Stream":"X","SEQ":1}`,
		`{"stream":"X","seq":1,"seq":2}`,
		`{"stream":"X\u0041","seq":1e3}`,
		`{"stream":"ORDERS","seq":18446744073709551615}`,
		`{"stream":"ORDERS","seq":null,"duplicate":null}`,
		` {"stream" : "A" ,"seq":0}	`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ref pubAckJSON
		refErr := json.Unmarshal(b, &ref)
		var want pubAck
		wantOK := refErr == nil && ref.Error == nil && ref.Stream != "" && ref.Seq != nil
		if wantOK {
			want = pubAck{Stream: ref.Stream, Seq: *ref.Seq, Duplicate: ref.Duplicate}
		}
		got, err := parsePubAck(b)
		if (err == nil) != wantOK || got != want {
			t.Fatalf("parsePubAck(%q) = %+v, %v; encoding/json: %+v, ok %v (%v)", b, got, err, want, wantOK, refErr)
		}
		if refErr == nil && ref.Error != nil {
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) || !reflect.DeepEqual(apiErr, ref.Error) {
				t.Fatalf("parsePubAck(%q): error %v, want %v", b, err, ref.Error)
			}
		}
		if fast, ok := parsePubAckFast(b); ok {
			if !wantOK || fast != want {
				t.Fatalf("fast path accepted %q as %+v; encoding/json: %+v, ok %v (%v)", b, fast, want, wantOK, refErr)
			}
		}
	})
}
