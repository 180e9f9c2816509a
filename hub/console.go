package hub

import (
	"context"
	"embed"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The web console's assets: plain HTML, CSS and JavaScript, no build step,
// no external URL (it works offline).
//
//go:embed console
var consoleFiles embed.FS

// Bounds of the console's own API.
const (
	// consoleMaxTopics bounds the topics GET /console/api/topics lists.
	consoleMaxTopics = 1000
	// consoleTimeout bounds the broker calls of one console request.
	consoleTimeout = 5 * time.Second
)

// console serves /console/: the UI's assets (no credentials needed: they
// hold no data) and its JSON API under /console/api/ (read scope, like the
// rest of the inspection API). Every write the UI makes goes to the
// server's own routes (dead letters, subscriptions), with the same
// credentials, and cross-origin writes are refused (see crossOrigin).
type console struct {
	s      *Server
	assets http.Handler
	tally  *topicTally
	sample *sampler
}

func newConsole(s *Server) *console {
	c := &console{s: s, assets: http.FileServerFS(ConsoleAssets()), tally: newTopicTally(consoleMaxTopics)}
	c.sample = newSampler(c.snapshot, consoleSampleEvery, consoleSamples)
	return c
}

// ServeHTTP answers /console/ and /console/api/....
func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if !getOnly(w, r) {
		return
	}
	if !strings.HasPrefix(p, "/console/api/") {
		if p == "/console" {
			http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
			return
		}
		h := w.Header()
		// The UI runs no script but its own and is never framed.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		http.StripPrefix("/console", c.assets).ServeHTTP(w, r)
		return
	}
	if !c.s.auth.allow(w, r, ScopeRead, false) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	ctx, cancel := context.WithTimeout(r.Context(), consoleTimeout)
	defer cancel()
	switch p {
	case "/console/api/topics":
		writeJSON(w, http.StatusOK, c.topics(ctx))
	case "/console/api/subscriptions":
		writeJSON(w, http.StatusOK, c.subscriptions(ctx))
	default:
		problem(w, http.StatusNotFound, "no route "+p)
	}
}

// ConsoleTopics is the body of GET /console/api/topics.
type ConsoleTopics struct {
	// Stream is the broker's store (nil when the broker is not JetStream).
	Stream *ConsoleStream `json:"stream"`
	// Topics are sorted by name: those stored and those accepted since the
	// server started, at most 1000.
	Topics []ConsoleTopic `json:"topics"`
	// Truncated says that more topics exist than are listed.
	Truncated bool `json:"truncated"`
}

// ConsoleStream describes the broker's store.
type ConsoleStream struct {
	// Name is the JetStream stream's, MaxBytes its configured bound (-1
	// or 0: none).
	Name     string `json:"name"`
	MaxBytes int64  `json:"max_bytes"`
	// Messages and Bytes are what it stores, from First to Last (the
	// store times of its oldest and newest events).
	Messages uint64    `json:"messages"`
	Bytes    uint64    `json:"bytes"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
}

// ConsoleTopic is one topic of the console's topic view. Stored is the
// number of its events in the store (null when the broker is not
// JetStream). Accepted and AcceptedBytes count the events POST /events
// stored on it since the server started, and their size in the
// CloudEvents JSON format; Rate is those per second over the last minute
// (or since the server started, when sooner), LastSeen when the last one
// was (absent: none since the server started).
type ConsoleTopic struct {
	Topic         string    `json:"topic"`
	Stored        *uint64   `json:"stored"`
	Accepted      uint64    `json:"accepted"`
	AcceptedBytes uint64    `json:"accepted_bytes"`
	Rate          float64   `json:"rate"`
	LastSeen      time.Time `json:"last_seen,omitzero"`
}

func (c *console) topics(ctx context.Context) ConsoleTopics {
	now := time.Now()
	cur := c.tally.counts()
	past, at := c.sample.since(now.Add(-time.Minute))
	byName := map[string]*ConsoleTopic{}
	out := ConsoleTopics{Topics: []ConsoleTopic{}}
	for name, t := range cur {
		ct := &ConsoleTopic{Topic: name, Accepted: t.events, AcceptedBytes: t.bytes, LastSeen: t.last}
		if dt := now.Sub(at).Seconds(); dt > 0 && past != nil {
			ct.Rate = float64(t.events-past.topics[name].events) / dt
		}
		byName[name] = ct
	}
	out.Truncated = c.tally.full()
	if js := c.s.jsAPI; js != nil {
		out.Stream, out.Truncated = c.storedTopics(ctx, js, byName, out.Truncated)
	}
	for _, t := range byName {
		out.Topics = append(out.Topics, *t)
	}
	slices.SortFunc(out.Topics, func(a, b ConsoleTopic) int { return strings.Compare(a.Topic, b.Topic) })
	if len(out.Topics) > consoleMaxTopics {
		out.Topics, out.Truncated = out.Topics[:consoleMaxTopics], true
	}
	return out
}

// storedTopics adds the store's per-topic counts to byName and describes
// the stream.
func (c *console) storedTopics(ctx context.Context, js jetstream.JetStream, byName map[string]*ConsoleTopic, truncated bool) (*ConsoleStream, bool) {
	prefix := c.s.cfg.Broker.SubjectPrefix + "."
	st, err := js.Stream(ctx, c.s.cfg.Broker.Stream)
	if err != nil {
		return nil, truncated
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, truncated
	}
	cs := &ConsoleStream{Name: info.Config.Name, Messages: info.State.Msgs, Bytes: info.State.Bytes,
		First: info.State.FirstTime, Last: info.State.LastTime, MaxBytes: info.Config.MaxBytes}
	for subj, n := range info.State.Subjects {
		name := strings.TrimPrefix(subj, prefix)
		t, ok := byName[name]
		if !ok {
			if len(byName) >= consoleMaxTopics {
				truncated = true
				continue
			}
			t = &ConsoleTopic{Topic: name}
			byName[name] = t
		}
		stored := n
		t.Stored = &stored
	}
	for _, t := range byName {
		if t.Stored == nil {
			var zero uint64
			t.Stored = &zero // accepted, none left in the store
		}
	}
	return cs, truncated
}

// close stops the sampler (a closer of the server).
func (c *console) close(context.Context) error {
	c.sample.stop()
	return nil
}

// crossOrigin refuses the writes a browser makes from another origin.
var crossOrigin = http.NewCrossOriginProtection()

// sameOriginWrite answers 403 (problem+json) and returns false to a write
// a browser sends from a page of another origin, but to /events (the
// ingress, whose cross-origin use CORS decides). Clients other than
// browsers send neither Sec-Fetch-Site nor Origin and pass: the bearer
// token guards them. Without a token, this is what keeps a page elsewhere
// from re-driving or deleting through the operator's browser.
func sameOriginWrite(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path == "/events" {
		return true
	}
	if err := crossOrigin.Check(r); err != nil {
		deny(w, "a cross-origin write from a browser: "+err.Error())
		return false
	}
	return true
}

// ConsoleAssets returns the web console's files (index.html, console.js,
// console.css), as embedded in the binary and served under /console/.
func ConsoleAssets() fs.FS {
	sub, _ := fs.Sub(consoleFiles, "console")
	return sub
}
