package hub

import (
	"crypto/sha256"
	"crypto/subtle"
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
	if !s.checkStreamAuth(w, r) {
		return
	}
	pattern := r.URL.Query().Get("topic")
	if pattern == "" {
		pattern = ">"
	}
	if err := topic.ValidatePattern(pattern); err != nil {
		http.Error(w, "topic: "+err.Error(), http.StatusBadRequest)
		return
	}
	select {
	case s.streamSem <- struct{}{}:
		defer func() { <-s.streamSem }()
	default:
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many stream clients", http.StatusServiceUnavailable)
		return
	}
	s.streams.Add(1)
	defer s.streams.Done()
	select {
	case <-s.streamStop:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	default:
	}
	rc := http.NewResponseController(w)
	// The server's ReadTimeout would end a long stream: lift it for this
	// request (the client sends nothing more).
	_ = rc.SetReadDeadline(time.Time{})
	sub, err := s.sub.Subscribe(r.Context(), pattern, eventkit.WithBuffer(256))
	if err != nil {
		http.Error(w, "subscribe: "+err.Error(), http.StatusServiceUnavailable)
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

// checkStreamAuth requires the ingress bearer token, when one is set.
func (s *Server) checkStreamAuth(w http.ResponseWriter, r *http.Request) bool {
	tok := secret(s.cfg.Auth.Token)
	if tok == "" {
		return true
	}
	scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || got == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="eventkit"`)
		http.Error(w, "a bearer token is required", http.StatusUnauthorized)
		return false
	}
	a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		http.Error(w, "the bearer token is not valid", http.StatusForbidden)
		return false
	}
	return true
}
