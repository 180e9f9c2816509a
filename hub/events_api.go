package hub

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/eventkit/eventkit/inspect"
	eknats "github.com/eventkit/eventkit/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds of GET /events.
const (
	// DefaultEventsLimit is the events GET /events returns without limit=.
	DefaultEventsLimit = 100
	// MaxEventsLimit is the largest limit= GET /events accepts.
	MaxEventsLimit = 10_000
	// maxScanned bounds the stored events one request of GET /events (or
	// one step of a replay) looks at, matching or not: past it the answer
	// ends with "more": true and the position to continue from.
	maxScanned = 200_000
)

// storeReader reads the hub's stream: the events of every topic, in store
// order, with the stream sequence as position and JetStream's store time.
// It is the inspect.Source of the events and replays APIs.
type storeReader struct {
	js        jetstream.JetStream
	stream    string
	prefix    string // with the trailing '.'
	scanLimit int    // stored events one Read looks at (maxScanned when 0)
}

// errNoStore answers the inspection APIs on a broker the hub cannot read
// (WithBroker).
var errNoStore = errors.New("stored events are readable only on the NATS broker the server opens itself")

func (s *Server) storeReader() (*storeReader, error) {
	if s.jsAPI == nil {
		return nil, errNoStore
	}
	return &storeReader{js: s.jsAPI, stream: s.cfg.Broker.Stream, prefix: s.cfg.Broker.SubjectPrefix + "."}, nil
}

// streamMsg is a message of the hub's stream, however it was read: at
// its sequence (rawMsg) or from a consumer.
type streamMsg struct {
	subject string
	header  natsgo.Header
	data    []byte
	seq     uint64
	stored  time.Time
}

// rawMsg is the streamMsg of a message read at its sequence.
func rawMsg(m *jetstream.RawStreamMsg) streamMsg {
	return streamMsg{subject: m.Subject, header: m.Header, data: m.Data, seq: m.Sequence, stored: m.Time}
}

// undecodableError is the error of a stored message that is not an event.
type undecodableError struct {
	seq uint64
	err error
}

func (e *undecodableError) Error() string { return fmt.Sprintf("stored event %d: %v", e.seq, e.err) }
func (e *undecodableError) Unwrap() error { return e.err }

// item decodes a stored message; ok is false for a message outside the
// hub's topics, or on a topic that keep (nil: every topic) refuses: keep
// is asked before the message is decoded. An undecodable message is an
// *undecodableError.
func (r *storeReader) item(m streamMsg, keep func(topic string) bool) (it inspect.Item, ok bool, err error) {
	t, ok := strings.CutPrefix(m.subject, r.prefix)
	if !ok || keep != nil && !keep(t) {
		return inspect.Item{}, false, nil
	}
	e, err := eknats.DecodeMsg(m.header, m.data)
	if err != nil {
		return inspect.Item{}, false, &undecodableError{m.seq, err}
	}
	return inspect.Item{Position: strconv.FormatUint(m.seq, 10), Topic: t, Stored: m.stored, Event: e}, true, nil
}

// get returns the event at position pos when keep (nil: any) takes its
// topic; jetstream.ErrMsgNotFound when there is none.
func (r *storeReader) get(ctx context.Context, pos string, keep func(topic string) bool) (inspect.Item, error) {
	seq, err := strconv.ParseUint(pos, 10, 64)
	if err != nil || seq == 0 {
		return inspect.Item{}, jetstream.ErrMsgNotFound
	}
	st, err := r.js.Stream(ctx, r.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return inspect.Item{}, jetstream.ErrMsgNotFound
	}
	if err != nil {
		return inspect.Item{}, err
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return inspect.Item{}, err
	}
	it, ok, err := r.item(rawMsg(m), keep)
	if err == nil && !ok {
		err = jetstream.ErrMsgNotFound
	}
	return it, err
}

// Read implements inspect.Source on the stream: from q.After, q.Since or
// the first event, up to q.Until or the last event stored when it
// starts, at most q.Limit events and maxScanned looked at. An event that
// cannot be decoded is skipped.
func (r *storeReader) Read(ctx context.Context, q inspect.Query, fn func(inspect.Item) error) (inspect.Result, error) {
	m, err := q.Compile()
	if err != nil {
		return inspect.Result{}, err
	}
	st, err := r.js.Stream(ctx, r.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return inspect.Result{}, nil // made at the first event
	}
	if err != nil {
		return inspect.Result{}, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return inspect.Result{}, err
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	subject := r.prefix + ">"
	if q.Topic != "" {
		subject = r.prefix + q.Topic
	}
	var res inspect.Result
	seq := first
	switch {
	case q.After != "":
		after, err := strconv.ParseUint(q.After, 10, 64)
		if err != nil {
			return res, fmt.Errorf("%w: after: not a position", inspect.ErrInvalidQuery)
		}
		seq = max(seq, after+1)
	case !q.Since.IsZero():
		if seq, err = r.seekTime(ctx, st, first, last, q.Since); err != nil {
			return res, err
		}
	}
	limit := cmp.Or(r.scanLimit, maxScanned)
	for n, scanned := 0, 0; seq <= last; scanned++ {
		if scanned == limit {
			res.More = true
			return res, nil
		}
		msg, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		if msg.Sequence > last || (!q.Until.IsZero() && !msg.Time.Before(q.Until)) {
			return res, nil
		}
		it, ok, err := r.item(rawMsg(msg), nil)
		seq = msg.Sequence + 1
		if !ok || err != nil || !m.Match(it.Event) {
			res.Next = strconv.FormatUint(msg.Sequence, 10)
			continue
		}
		if q.Limit > 0 && n == q.Limit {
			res.More = true
			return res, nil
		}
		res.Next = it.Position
		n++
		if err := fn(it); err != nil {
			return res, err
		}
	}
	return res, nil
}

// seekTime returns the sequence of the first event stored at or after t
// (last+1 when none is), by bisection: store times grow with sequences.
func (r *storeReader) seekTime(ctx context.Context, st jetstream.Stream, lo, last uint64, t time.Time) (uint64, error) {
	hi := last + 1
	for lo < hi {
		mid := lo + (hi-lo)/2
		msg, err := st.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(r.prefix+">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			hi = mid
			continue
		}
		if err != nil {
			return 0, err
		}
		if msg.Sequence >= hi || !msg.Time.Before(t) {
			hi = mid
		} else {
			lo = msg.Sequence + 1
		}
	}
	return lo, nil
}

// eventsQuery reads the query of GET /events and POST /replays from URL
// parameters: topic, since (RFC 3339 or "start"), until, after, limit,
// sql, and any other parameter an attribute filter.
func eventsQuery(params map[string][]string) (inspect.Query, error) {
	q := inspect.Query{Limit: DefaultEventsLimit}
	for name, vs := range params {
		if len(vs) != 1 {
			return q, fmt.Errorf("%s: give it once", name)
		}
		v := vs[0]
		var err error
		switch name {
		case "topic":
			q.Topic = v
		case "since":
			if v != "start" {
				q.Since, err = parseTime(v)
			}
		case "until":
			q.Until, err = parseTime(v)
		case "after":
			if _, err = strconv.ParseUint(v, 10, 64); err != nil {
				err = errors.New("not a position")
			}
			q.After = v
		case "limit":
			q.Limit, err = strconv.Atoi(v)
			if err == nil && (q.Limit < 1 || q.Limit > MaxEventsLimit) {
				err = fmt.Errorf("from 1 to %d", MaxEventsLimit)
			}
		case "sql":
			q.SQL = v
		default:
			if !validAttrName(name) {
				return q, fmt.Errorf("%s: not a CloudEvents attribute name (a-z, 0-9)", name)
			}
			if q.Filter == nil {
				q.Filter = map[string]string{}
			}
			q.Filter[name] = v
		}
		if err != nil {
			return q, fmt.Errorf("%s: %v", name, err)
		}
	}
	if _, err := q.Compile(); err != nil {
		return q, errors.New(strings.TrimPrefix(err.Error(), inspect.ErrInvalidQuery.Error()+": "))
	}
	return q, nil
}

func parseTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, errors.New("not an RFC 3339 time")
	}
	return t, nil
}

// validAttrName: a CloudEvents attribute name, lower-case letters and
// digits, at most 20 characters.
func validAttrName(n string) bool {
	if n == "" || len(n) > 20 {
		return false
	}
	for _, c := range []byte(n) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Trailer is the last line of GET /events.
type Trailer struct {
	// Next is the position to pass as after= to continue.
	Next string `json:"next"`
	// More is true when events remain in the range.
	More bool `json:"more"`
}

// events serves GET /events: the stored events of the query as NDJSON
// items, then a Trailer line.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	rd, err := s.storeReader()
	if err != nil {
		problem(w, http.StatusNotImplemented, err.Error())
		return
	}
	q, err := eventsQuery(r.URL.Query())
	if err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	// The status is written with the first item: an error found before
	// it is still answered as a problem.
	bw := bufio.NewWriterSize(w, 64<<10)
	wrote := false
	res, err := rd.Read(r.Context(), q, func(it inspect.Item) error {
		b, err := json.Marshal(it)
		if err != nil {
			return err
		}
		if !wrote {
			wrote = true
			writeNDJSONHeader(w)
		}
		_, err = bw.Write(append(b, '\n'))
		return err
	})
	if err != nil && !wrote {
		problem(w, http.StatusServiceUnavailable, "the event store: "+err.Error())
		return
	}
	if err != nil {
		// Cut short: the trailer is missing, so the client knows.
		_ = bw.Flush()
		return
	}
	if !wrote {
		writeNDJSONHeader(w)
	}
	b, _ := json.Marshal(Trailer{Next: cmp.Or(res.Next, q.After), More: res.More})
	_, _ = bw.Write(append(b, '\n'))
	_ = bw.Flush()
}

func writeNDJSONHeader(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// event serves GET /events/{position}.
func (s *Server) event(w http.ResponseWriter, r *http.Request, pos string) {
	rd, err := s.storeReader()
	if err != nil {
		problem(w, http.StatusNotImplemented, err.Error())
		return
	}
	it, err := rd.get(r.Context(), pos, nil)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		problem(w, http.StatusNotFound, "no stored event at position "+strconv.Quote(pos))
		return
	}
	if err != nil {
		problem(w, http.StatusServiceUnavailable, "the event store: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, it)
}
