package hub

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/eventkit/eventkit/probe"
	"github.com/nats-io/nats.go/jetstream"
)

// maxProbeScan bounds the stored events one probe reads; beyond it the
// timeline says it is truncated (narrow it with since and until).
const maxProbeScan = 200_000

// probe serves GET /probe?correlationid=ID|subject=S|aggregate=A
// &since=&until=&limit=&format=json|mermaid|html: every stored event
// linked to the key, on every topic, in time order (read scope).
func (s *Server) probe(w http.ResponseWriter, r *http.Request) {
	if !getOnly(w, r) || !s.auth.allow(w, r, ScopeRead, false) {
		return
	}
	if s.jsAPI == nil {
		problem(w, http.StatusNotImplemented, "the probe reads the embedded JetStream store, which this server does not use")
		return
	}
	q, format, err := probeQuery(r.URL.Query())
	if err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	tl, err := probe.Run(r.Context(), q, probe.SourceFunc(s.probeTopics))
	if err != nil {
		s.log.Warn("probe", "err", err)
		problem(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	switch format {
	case "mermaid":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(tl.Mermaid()))
	case "html":
		var b bytes.Buffer
		if err := tl.WriteHTML(&b); err != nil {
			problem(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		_, _ = w.Write(b.Bytes())
	default:
		writeJSON(w, http.StatusOK, tl)
	}
}

// probeQuery reads the parameters of GET /probe.
func probeQuery(v url.Values) (probe.Query, string, error) {
	q := probe.Query{Key: probe.Key{CorrelationID: v.Get("correlationid"), Subject: v.Get("subject"), Aggregate: v.Get("aggregate")}}
	if err := q.Key.Validate(); err != nil {
		return q, "", errors.New("want exactly one of correlationid, subject, aggregate")
	}
	for name, t := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if s := v.Get(name); s != "" {
			var err error
			if *t, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return q, "", errors.New(name + ": want an RFC 3339 time")
			}
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > probe.MaxLimit {
			return q, "", errors.New("limit: want a number from 1 to " + strconv.Itoa(probe.MaxLimit))
		}
		q.Limit = n
	}
	format := v.Get("format")
	switch format {
	case "", "json", "mermaid", "html":
	default:
		return q, "", errors.New("format: want json, mermaid or html")
	}
	return q, format, nil
}

// probeTopics is the probe's source on the hub's stream: it reads every
// stored event from q.Since (at most maxProbeScan of them, up to the last
// stored when it began) and keeps those linked to q.Key.
func (s *Server) probeTopics(ctx context.Context, q probe.Query) ([]probe.Item, bool, error) {
	rd, err := s.storeReader()
	if err != nil {
		return nil, false, err
	}
	st, err := rd.js.Stream(ctx, rd.stream)
	if err != nil {
		return nil, false, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, false, err
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil, false, nil
	}
	// The consumer is the broker's to drop once the probe stops fetching.
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: 30 * time.Second}
	if !q.Since.IsZero() {
		since := q.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, false, err
	}
	needle := plainKey(q.Key)
	var out []probe.Item
	for read := 0; read < maxProbeScan; {
		batch, err := cons.Fetch(min(500, maxProbeScan-read), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, false, err
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			if done {
				continue // drain the batch
			}
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			if md.Sequence.Stream > last || !q.Until.IsZero() && !md.Timestamp.Before(q.Until) {
				done = true
				continue
			}
			done = md.Sequence.Stream == last || md.NumPending == 0
			it, ok := probeItem(rd, m, md, q.Key, needle)
			if !ok {
				continue
			}
			if len(out) == q.Limit {
				return out, true, nil
			}
			out = append(out, it)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, false, err
		}
		if n == 0 || done {
			return out, false, nil
		}
		read += n
	}
	return out, true, nil
}

// probeItem is the item of m when its event is linked to key.
func probeItem(rd *storeReader, m jetstream.Msg, md *jetstream.MsgMetadata, key probe.Key, needle []byte) (probe.Item, bool) {
	// Most events do not hold the key at all: skip them undecoded.
	if needle != nil && !bytes.Contains(m.Data(), needle) && !headerHolds(m.Headers(), string(needle)) {
		return probe.Item{}, false
	}
	it, ok, err := rd.item(streamMsg{subject: m.Subject(), header: m.Headers(), data: m.Data(), seq: md.Sequence.Stream, stored: md.Timestamp}, nil)
	if !ok || err != nil || !key.Match(&it.Event) {
		return probe.Item{}, false
	}
	raw, err := it.Raw()
	return raw, err == nil
}

// plainKey is the key's value when it is written as is in any encoding of
// an event (letters, digits and -_. only), else nil.
func plainKey(k probe.Key) []byte {
	v := k.CorrelationID + k.Subject + k.Aggregate
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.", c)) {
			return nil
		}
	}
	return []byte(v)
}

func headerHolds(h map[string][]string, v string) bool {
	for _, vs := range h {
		for _, x := range vs {
			if strings.Contains(x, v) {
				return true
			}
		}
	}
	return false
}
