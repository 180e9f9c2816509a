package hub

import (
	"encoding/json"
	"fmt"
	"net/http"
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

// stream serves GET /events/stream?topic=PATTERN: every event published to
// a matching topic from now on, as "event: cloudevent" messages whose data
// is a StreamItem. A comment line ": subscribed" is sent once the
// subscription is in place.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	pattern := r.URL.Query().Get("topic")
	if pattern == "" {
		pattern = ">"
	}
	if err := topic.ValidatePattern(pattern); err != nil {
		problem(w, http.StatusBadRequest, "topic: "+err.Error())
		return
	}
	select {
	case s.streamSem <- struct{}{}:
		defer func() { <-s.streamSem }()
	default:
		w.Header().Set("Retry-After", "5")
		problem(w, http.StatusServiceUnavailable, "too many stream clients")
		return
	}
	s.streams.Add(1)
	defer s.streams.Done()
	select {
	case <-s.streamStop:
		problem(w, http.StatusServiceUnavailable, "shutting down")
		return
	default:
	}
	rc := http.NewResponseController(w)
	// The server's ReadTimeout would end a long stream: lift it for this
	// request (the client sends nothing more).
	_ = rc.SetReadDeadline(time.Time{})
	sub, err := s.sub.Subscribe(r.Context(), pattern, eventkit.WithBuffer(256))
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
	if _, err := fmt.Fprint(w, ": subscribed to "+pattern+"\n\n"); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
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
			_, err = fmt.Fprintf(w, "id: %s\nevent: cloudevent\ndata: %s\n\n", sseLine(m.Event.ID()), item)
			_ = m.Ack()
			if err != nil || rc.Flush() != nil {
				return
			}
			s.metrics.streamed.Inc()
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.streamStop:
			return
		}
	}
}

// sseLine keeps a value on one SSE line.
func sseLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
