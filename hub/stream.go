package hub

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
)

// StreamItem is the data of one Server-Sent Event of GET /events/stream:
// the topic and the event in the CloudEvents JSON format.
type StreamItem struct {
	Topic string          `json:"topic"`
	Event json.RawMessage `json:"event"`
}

// heartbeat is the interval of the keep-alive comments of a stream.
const heartbeat = 15 * time.Second

// stream serves GET /events/stream?topic=PATTERN[&since=TIME|start]:
// every event published to a matching topic from now on (with since, the
// stored ones from that time or the oldest first), as "event: cloudevent" messages whose data
// is a StreamItem. A comment line ": subscribed" is sent once the
// subscription is in place. A client that does not read for
// Limits.StreamWriteTimeout is dropped.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	pattern := r.URL.Query().Get("topic")
	if pattern == "" {
		pattern = ">"
	}
	if err := topic.ValidatePattern(pattern); err != nil {
		problem(w, http.StatusBadRequest, "topic: "+err.Error())
		return
	}
	opts, err := streamStart(r.URL.Query().Get("since"))
	if err != nil {
		problem(w, http.StatusBadRequest, "since: "+err.Error())
		return
	}
	release, ok := s.streamSlot(w)
	if !ok {
		return
	}
	defer release()
	rc := http.NewResponseController(w)
	// The server's ReadTimeout would end a long stream: lift it for this
	// request (the client sends nothing more).
	_ = rc.SetReadDeadline(time.Time{})
	sub, err := s.sub.Subscribe(r.Context(), pattern, append(opts, eventkit.WithBuffer(256))...)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		problem(w, http.StatusServiceUnavailable, "subscribe: "+err.Error())
		return
	}
	defer sub.Close()
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	out := &sseWriter{w: w, rc: rc, timeout: time.Duration(s.cfg.Limits.StreamWriteTimeout), dropped: s.metrics.dropped}
	if out.send(": subscribed to " + pattern + "\n\n") {
		s.pump(r, sub, out)
	}
}

// streamStart reads the since= of a stream: "" (the next event), "start"
// (the oldest stored) or an RFC 3339 time.
func streamStart(since string) ([]eventkit.SubscribeOption, error) {
	switch since {
	case "":
		return nil, nil
	case "start":
		return []eventkit.SubscribeOption{eventkit.FromStart()}, nil
	}
	t, err := parseTime(since)
	if err != nil {
		return nil, err
	}
	return []eventkit.SubscribeOption{eventkit.StartAt(t)}, nil
}

// streamSlot takes one of the MaxStreamClients slots, answering 503 when
// none is free or the server is stopping.
func (s *Server) streamSlot(w http.ResponseWriter) (release func(), ok bool) {
	select {
	case s.streamSem <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "5")
		problem(w, http.StatusServiceUnavailable, "too many stream clients")
		return nil, false
	}
	s.streams.Add(1)
	release = func() { s.streams.Done(); <-s.streamSem }
	select {
	case <-s.streamStop:
		release()
		problem(w, http.StatusServiceUnavailable, "shutting down")
		return nil, false
	default:
	}
	return release, true
}

// pump sends the subscription's events and the heartbeats until the
// client leaves, is too slow, or the server stops.
func (s *Server) pump(r *http.Request, sub eventkit.Subscription, out *sseWriter) {
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case m, ok := <-sub.Messages():
			if !ok {
				return
			}
			b, err := eventkit.MarshalEvent(m.Event)
			if err != nil {
				s.log.Warn("stream: event not encodable", "id", m.Event.ID(), "err", err)
				_ = m.Ack()
				continue
			}
			item, _ := json.Marshal(StreamItem{Topic: m.Topic, Event: b})
			sent := out.send("id: " + sseLine(m.Event.ID()) + "\nevent: cloudevent\ndata: " + string(item) + "\n\n")
			_ = m.Ack()
			if !sent {
				return
			}
			s.metrics.streamed.Inc()
		case <-tick.C:
			if !out.send(": ping\n\n") {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.streamStop:
			return
		}
	}
}

// sseWriter writes and flushes each message within a deadline.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	dropped interface{ Inc() }
}

// send writes msg and flushes it; false when the client is gone or did
// not take it within the timeout (then counted as dropped).
func (o *sseWriter) send(msg string) bool {
	_ = o.rc.SetWriteDeadline(time.Now().Add(o.timeout))
	_, err := io.WriteString(o.w, msg)
	if err == nil {
		err = o.rc.Flush()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		o.dropped.Inc()
	}
	return err == nil
}

// sseLine keeps a value on one SSE line.
func sseLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
