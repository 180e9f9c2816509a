package nats

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pubAckJSON is what JetStream replies to a publish: a PubAck
// ({"stream":"ORDERS","seq":42} with "duplicate":true when the
// Nats-Msg-Id was seen within the duplicate window, and "domain" in a
// domain), or an error object ({"error":{"code":400,"err_code":10054,
// "description":"..."}}, often with "stream" and "seq":0 beside it).
// Seq is a pointer so that a reply without "seq" can be told from seq 0.
type pubAckJSON struct {
	Error     *jetstream.APIError `json:"error"`
	Stream    string              `json:"stream"`
	Seq       *uint64             `json:"seq"`
	Duplicate bool                `json:"duplicate"`
}

// pubAck is a publish ack that was checked: the stream stored the message
// (or had it already, with Duplicate) at Seq.
type pubAck struct {
	Stream    string
	Seq       uint64
	Duplicate bool
}

// statusHdr and the 503 status are how the server tells that nobody (no
// stream) listens on the subject, for instance while JetStream recovers
// after a restart.
const (
	statusHdr          = "Status"
	statusNoResponders = "503"
)

// parseAckMsg reads the reply to a publish: a pubAck, or the error to
// report for the message (nats.ErrNoResponders for a 503 status, the
// server's *jetstream.APIError, or jetstream.ErrInvalidJSAck for anything
// else).
func parseAckMsg(m *nats.Msg) (pubAck, error) {
	if len(m.Data) == 0 && m.Header != nil {
		if s := m.Header.Get(statusHdr); s != "" {
			if s == statusNoResponders {
				return pubAck{}, nats.ErrNoResponders
			}
			return pubAck{}, fmt.Errorf("%w: status %s %s", jetstream.ErrInvalidJSAck, s, m.Header.Get("Description"))
		}
	}
	return parsePubAck(m.Data)
}

// parsePubAck reads a JetStream publish reply body. It gives the same
// result as parsePubAckJSON (encoding/json), which it falls back to for
// anything but the plain form the server writes on success; the fast path
// only spares the success case the cost of encoding/json.
func parsePubAck(b []byte) (pubAck, error) {
	if a, ok := parsePubAckFast(b); ok {
		return a, nil
	}
	return parsePubAckJSON(b)
}

// parsePubAckJSON reads a publish reply with encoding/json. A reply is an
// ack only if it has no error, a non-empty stream and a seq.
func parsePubAckJSON(b []byte) (pubAck, error) {
	var r pubAckJSON
	if err := json.Unmarshal(b, &r); err != nil {
		return pubAck{}, fmt.Errorf("%w: %v: %q", jetstream.ErrInvalidJSAck, err, truncate(b))
	}
	if r.Error != nil {
		return pubAck{}, r.Error
	}
	if r.Stream == "" || r.Seq == nil {
		return pubAck{}, fmt.Errorf("%w: no stream or seq: %q", jetstream.ErrInvalidJSAck, truncate(b))
	}
	return pubAck{Stream: r.Stream, Seq: *r.Seq, Duplicate: r.Duplicate}, nil
}

func truncate(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

var errNotFast = errors.New("not in the fast form")

// parsePubAckFast reads the replies the server writes on success: one JSON
// object whose members are "stream" (a string), "seq" (an unsigned
// integer), and optionally "domain" (a string) and "duplicate" (true or
// false), each once, in any order, with JSON whitespace anywhere between
// tokens. Strings must be printable ASCII without escapes. Anything else
// (an error object, other members, escapes, null, duplicate members, ...)
// reports ok false, and the caller uses encoding/json; so whenever ok is
// true, encoding/json would have decoded the same values (the fuzz test
// FuzzParsePubAck checks it).
func parsePubAckFast(b []byte) (a pubAck, ok bool) {
	p := ackScanner{b: b}
	var haveStream, haveSeq, haveDomain, haveDup bool
	p.space()
	if !p.byte('{') {
		return pubAck{}, false
	}
	p.space()
	if p.peek() == '}' {
		return pubAck{}, false // no stream, no seq: encoding/json decides
	}
	for {
		key, err := p.str()
		if err != nil {
			return pubAck{}, false
		}
		p.space()
		if !p.byte(':') {
			return pubAck{}, false
		}
		p.space()
		switch key {
		case "stream":
			if haveStream {
				return pubAck{}, false
			}
			s, err := p.str()
			if err != nil {
				return pubAck{}, false
			}
			a.Stream, haveStream = s, true
		case "seq":
			if haveSeq {
				return pubAck{}, false
			}
			n, err := p.uint()
			if err != nil {
				return pubAck{}, false
			}
			a.Seq, haveSeq = n, true
		case "domain":
			if haveDomain {
				return pubAck{}, false
			}
			if _, err := p.str(); err != nil {
				return pubAck{}, false
			}
			haveDomain = true
		case "duplicate":
			if haveDup {
				return pubAck{}, false
			}
			switch {
			case p.literal("true"):
				a.Duplicate = true
			case p.literal("false"):
			default:
				return pubAck{}, false
			}
			haveDup = true
		default:
			return pubAck{}, false
		}
		p.space()
		if p.byte(',') {
			p.space()
			continue
		}
		if !p.byte('}') {
			return pubAck{}, false
		}
		break
	}
	p.space()
	if p.i != len(p.b) || !haveStream || !haveSeq || a.Stream == "" {
		return pubAck{}, false
	}
	return a, true
}

// ackScanner reads the tokens of parsePubAckFast.
type ackScanner struct {
	b []byte
	i int
}

func (p *ackScanner) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// space skips JSON whitespace.
func (p *ackScanner) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c if it comes next.
func (p *ackScanner) byte(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

// literal consumes s if it comes next.
func (p *ackScanner) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// str reads a string of printable ASCII characters without escapes.
func (p *ackScanner) str() (string, error) {
	if !p.byte('"') {
		return "", errNotFast
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, nil
		case c < 0x20 || c > 0x7e || c == '\\':
			return "", errNotFast
		}
		p.i++
	}
	return "", errNotFast
}

// uint reads a JSON number that is an unsigned integer fitting in uint64:
// digits, no leading zero, no fraction or exponent.
func (p *ackScanner) uint() (uint64, error) {
	start := p.i
	var n uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		d := uint64(p.b[p.i] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, errNotFast // overflow
		}
		n = n*10 + d
		p.i++
	}
	switch {
	case p.i == start:
		return 0, errNotFast
	case p.b[start] == '0' && p.i-start > 1:
		return 0, errNotFast // leading zero: not JSON
	}
	if c := p.peek(); c == '.' || c == 'e' || c == 'E' {
		return 0, errNotFast
	}
	return n, nil
}
