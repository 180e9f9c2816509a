package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/inspect"
	"github.com/eventkit/eventkit/topic"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds of the replays API.
const (
	// MaxReplays is the most replays kept; a new one beyond it evicts the
	// oldest that ended, or is refused with 409 when every one runs.
	MaxReplays = 100
	// maxReplayBody bounds the body of POST /replays.
	maxReplayBody = 64 << 10
)

// Replay states.
const (
	ReplayRunning  = "running"
	ReplayDone     = "done"
	ReplayFailed   = "failed"
	ReplayCanceled = "canceled"
)

// ReplayRequest is the body of POST /replays: the stored events of a
// range (as GET /events selects them) to publish again to a topic of the
// server or to a URL.
type ReplayRequest struct {
	// Topic is the topic pattern (default ">").
	Topic string `json:"topic,omitempty"`
	// Since is an RFC 3339 time or "start" (the default).
	Since string `json:"since,omitempty"`
	// Until is an RFC 3339 time; the default is the time of the request.
	Until string `json:"until,omitempty"`
	// SQL is a CloudEvents SQL expression the events must satisfy.
	SQL string `json:"sql,omitempty"`
	// Filter holds exact attribute values the events must have.
	Filter map[string]string `json:"filter,omitempty"`
	// ToTopic is the topic to publish to; give it or ToURL.
	ToTopic string `json:"to_topic,omitempty"`
	// ToURL is an https URL to post each event to (structured mode, as
	// cehttp.Publisher does); http and private addresses only with the
	// Subscriptions API's allow_private_sinks.
	ToURL string `json:"to_url,omitempty"`
	// Rate bounds the events per second (0: no bound).
	Rate float64 `json:"rate,omitempty"`
}

// Replay is the state of a replay, as GET /replays/{id} answers it.
type Replay struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Done is the number of events published.
	Done int64 `json:"done"`
	// Total is the number of events of the range, once counted.
	Total *int64 `json:"total"`
	// Position is the position of the last event published.
	Position string `json:"position"`
	Error    string `json:"error,omitempty"`
	// Request is the replay as it was asked for.
	Request ReplayRequest `json:"request"`
	// Created is when it was asked for.
	Created time.Time `json:"created"`
}

// storedReplay is a replay with its checkpoint, as the store keeps it.
type storedReplay struct {
	Replay     Replay             `json:"replay"`
	Checkpoint inspect.Checkpoint `json:"checkpoint"`
}

// replays runs the replays of the API and keeps them in the embedded
// store (the key-value bucket "<stream>_replays"), or in memory.
type replays struct {
	s      *Server
	kv     jetstream.KeyValue // nil: in memory only
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	all     map[string]*liveReplay
	stopped bool
}

type liveReplay struct {
	rec      storedReplay
	cancel   context.CancelFunc
	canceled bool
	ended    chan struct{} // closed when its goroutine ends
}

func (s *Server) setupReplays() error {
	ctx, cancel := context.WithCancel(context.Background())
	rp := &replays{s: s, ctx: ctx, cancel: cancel, all: map[string]*liveReplay{}}
	if s.jsAPI != nil {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		defer scancel()
		kv, err := s.jsAPI.CreateOrUpdateKeyValue(sctx, jetstream.KeyValueConfig{
			Bucket:      s.cfg.Broker.Stream + "_replays",
			Description: "eventkit hub: the replays of the replays API and their checkpoints",
			History:     1,
			Storage:     jetstream.FileStorage,
		})
		if err != nil {
			cancel()
			return fmt.Errorf("hub: replays store: %w", err)
		}
		rp.kv = kv
	}
	s.replays = rp
	return nil
}

// start loads the stored replays and resumes those that were running.
func (rp *replays) start(ctx context.Context) error {
	if rp.kv == nil {
		return nil
	}
	keys, err := rp.kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("hub: replays store: %w", err)
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	for key := range keys.Keys() {
		e, err := rp.kv.Get(ctx, key)
		if err != nil {
			continue // deleted meanwhile
		}
		var rec storedReplay
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			rp.s.log.Error("eventkit hub: stored replay unreadable", "replay", key, "err", err)
			continue
		}
		lr := &liveReplay{rec: rec}
		rp.all[rec.Replay.ID] = lr
		if rec.Replay.State == ReplayRunning {
			rp.resume(lr)
		}
	}
	return nil
}

// stop ends the running replays, which stay "running" in the store and
// resume at the next start.
func (rp *replays) stop() {
	rp.mu.Lock()
	rp.stopped = true
	rp.mu.Unlock()
	rp.cancel()
	rp.wg.Wait()
}

// save writes lr's record to the store.
func (rp *replays) save(ctx context.Context, rec storedReplay) error {
	if rp.kv == nil {
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = rp.kv.Put(ctx, rec.Replay.ID, b)
	return err
}

// newReplay checks a request and makes its replay, not yet started.
func (rp *replays) newReplay(req ReplayRequest) (*liveReplay, eventkit.Publisher, error) {
	params := map[string][]string{}
	for k, v := range map[string]string{"topic": req.Topic, "since": req.Since, "until": req.Until, "sql": req.SQL} {
		if v != "" {
			params[k] = []string{v}
		}
	}
	for k, v := range req.Filter {
		if _, reserved := map[string]bool{"topic": true, "since": true, "until": true, "sql": true, "after": true, "limit": true}[k]; reserved {
			return nil, nil, fmt.Errorf("filter: %s is not an attribute", k)
		}
		params[k] = []string{v}
	}
	q, err := eventsQuery(params)
	if err != nil {
		return nil, nil, err
	}
	q.Limit = 0
	if q.Until.IsZero() {
		q.Until = time.Now()
	}
	if req.Rate < 0 {
		return nil, nil, errors.New("rate: must not be negative")
	}
	pub, err := rp.target(req)
	if err != nil {
		return nil, nil, err
	}
	id := uuid.NewString()
	rec := storedReplay{
		Replay:     Replay{ID: id, State: ReplayRunning, Request: req, Created: time.Now().UTC()},
		Checkpoint: inspect.Checkpoint{Query: q, ToTopic: req.ToTopic},
	}
	return &liveReplay{rec: rec}, pub, nil
}

// target checks where a replay publishes: a topic of the server, or a
// URL; a URL's publisher is returned (nil for a topic).
func (rp *replays) target(req ReplayRequest) (eventkit.Publisher, error) {
	switch {
	case (req.ToTopic == "") == (req.ToURL == ""):
		return nil, errors.New("give to_topic or to_url (one of them)")
	case req.ToTopic != "":
		if err := topic.ValidateName(req.ToTopic); err != nil {
			return nil, fmt.Errorf("to_topic: %v", err)
		}
		return nil, nil
	}
	u, err := url.Parse(req.ToURL)
	allowPrivate := rp.s.cfg.SubscriptionsAPI.AllowPrivateSinks
	if err != nil || u.Host == "" || !(u.Scheme == "https" || (u.Scheme == "http" && allowPrivate)) {
		return nil, errors.New("to_url: want an https URL")
	}
	var opts []cehttp.PublisherOption
	if !allowPrivate {
		opts = append(opts, cehttp.WithPublicTargetsOnly())
	}
	p, err := cehttp.NewPublisher(req.ToURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("to_url: %v", err)
	}
	return p, nil
}

// resume starts a stored replay again from its checkpoint. rp.mu is
// held.
func (rp *replays) resume(lr *liveReplay) {
	var pub eventkit.Publisher
	var err error
	if lr.rec.Replay.Request.ToURL != "" {
		pub, err = rp.target(lr.rec.Replay.Request)
	}
	rd, rerr := rp.s.storeReader()
	if err == nil {
		err = rerr
	}
	if err != nil {
		lr.rec.Replay.State, lr.rec.Replay.Error = ReplayFailed, err.Error()
		_ = rp.save(rp.ctx, lr.rec)
		return
	}
	rp.run(lr, rd, pub)
}

// run runs the replay from its checkpoint in a goroutine of rp,
// publishing to pub (nil: the server's topics). rp.mu is held.
func (rp *replays) run(lr *liveReplay, rd *storeReader, pub eventkit.Publisher) {
	ctx, cancel := context.WithCancel(rp.ctx)
	lr.cancel, lr.ended = cancel, make(chan struct{})
	to := pub
	if to == nil {
		to = rp.s.pub
	}
	r := &inspect.Replay{From: rd, To: to, ToTopic: lr.rec.Checkpoint.ToTopic, Rate: lr.rec.Replay.Request.Rate,
		Save: func(c inspect.Checkpoint) error {
			rp.mu.Lock()
			lr.rec.Checkpoint = c
			lr.rec.Replay.Done, lr.rec.Replay.Position = c.Done, c.Position
			rec := lr.rec
			rp.mu.Unlock()
			return rp.save(ctx, rec)
		}}
	start := lr.rec.Checkpoint
	rp.wg.Add(1)
	go func() {
		defer rp.wg.Done()
		defer close(lr.ended)
		defer cancel()
		if pub != nil {
			defer pub.Close()
		}
		rp.count(ctx, rd, lr)
		_, err := r.Run(ctx, inspect.Query{}, &start)
		rp.finish(lr, err)
	}()
}

// count sets the replay's total once: the events of its range, when the
// range is small enough to count in one pass.
func (rp *replays) count(ctx context.Context, rd *storeReader, lr *liveReplay) {
	rp.mu.Lock()
	counted, q := lr.rec.Replay.Total != nil, lr.rec.Checkpoint.Query
	rp.mu.Unlock()
	if counted {
		return
	}
	var n int64
	res, err := rd.Read(ctx, q, func(inspect.Item) error { n++; return nil })
	if err != nil || res.More {
		return
	}
	rp.mu.Lock()
	lr.rec.Replay.Total = &n
	rp.mu.Unlock()
}

// finish records how the replay ended. A replay stopped by the server's
// shutdown stays running, to resume at the next start.
func (rp *replays) finish(lr *liveReplay, err error) {
	rp.mu.Lock()
	switch {
	case err == nil:
		lr.rec.Replay.State = ReplayDone
	case lr.canceled:
		lr.rec.Replay.State = ReplayCanceled
	case rp.stopped:
		rp.mu.Unlock()
		return
	default:
		lr.rec.Replay.State, lr.rec.Replay.Error = ReplayFailed, err.Error()
	}
	rec := lr.rec
	rp.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rp.save(ctx, rec); err != nil {
		rp.s.log.Warn("eventkit hub: replay state not stored", "replay", rec.Replay.ID, "err", err)
	}
}

// replaysAPI serves /replays (id "") and /replays/{id}.
func (s *Server) replaysAPI(w http.ResponseWriter, r *http.Request, id string) {
	rp := s.replays
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	scope := ScopeAdmin
	if read {
		scope = ScopeRead
	}
	if !s.auth.allow(w, r, scope, false) {
		return
	}
	switch {
	case id == "" && read:
		rp.mu.Lock()
		list := make([]Replay, 0, len(rp.all))
		for _, lr := range rp.all {
			list = append(list, lr.rec.Replay)
		}
		rp.mu.Unlock()
		slices.SortFunc(list, func(a, b Replay) int { return a.Created.Compare(b.Created) })
		writeJSON(w, http.StatusOK, list)
	case id == "" && r.Method == http.MethodPost:
		rp.create(w, r)
	case id != "" && (read || r.Method == http.MethodDelete):
		rp.mu.Lock()
		lr, ok := rp.all[id]
		if ok && r.Method == http.MethodDelete && lr.rec.Replay.State == ReplayRunning && lr.cancel != nil {
			lr.canceled = true
			lr.cancel()
		}
		rp.mu.Unlock()
		if !ok {
			problem(w, http.StatusNotFound, "no replay "+id)
			return
		}
		if r.Method == http.MethodDelete {
			rp.waitEnded(r.Context(), lr)
		}
		rp.mu.Lock()
		rep := lr.rec.Replay
		rp.mu.Unlock()
		writeJSON(w, http.StatusOK, rep)
	default:
		allow := "GET, HEAD, POST"
		if id != "" {
			allow = "GET, HEAD, DELETE"
		}
		w.Header().Set("Allow", allow)
		problem(w, http.StatusMethodNotAllowed, r.URL.Path+" answers "+allow)
	}
}

// waitEnded waits (a few seconds at most) for a canceled replay to record
// that it ended.
func (rp *replays) waitEnded(ctx context.Context, lr *liveReplay) {
	if lr.ended == nil {
		return
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-lr.ended:
	case <-t.C:
	case <-ctx.Done():
	}
}

// create serves POST /replays.
func (rp *replays) create(w http.ResponseWriter, r *http.Request) {
	var req ReplayRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxReplayBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		problem(w, http.StatusBadRequest, "body: "+strings.TrimPrefix(err.Error(), "json: "))
		return
	}
	rd, err := rp.s.storeReader()
	if err != nil {
		problem(w, http.StatusNotImplemented, err.Error())
		return
	}
	lr, pub, err := rp.newReplay(req)
	if err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.stopped {
		problem(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	if !rp.makeRoom(r.Context()) {
		problem(w, http.StatusConflict, fmt.Sprintf("%d replays are running; cancel one first", MaxReplays))
		return
	}
	if err := rp.save(r.Context(), lr.rec); err != nil {
		writeStoreErr(w, err)
		return
	}
	rp.all[lr.rec.Replay.ID] = lr
	rp.run(lr, rd, pub)
	w.Header().Set("Location", "/replays/"+lr.rec.Replay.ID)
	writeJSON(w, http.StatusCreated, lr.rec.Replay)
}

// makeRoom evicts the oldest ended replay when MaxReplays are kept;
// false when every one runs. rp.mu is held.
func (rp *replays) makeRoom(ctx context.Context) bool {
	if len(rp.all) < MaxReplays {
		return true
	}
	var oldest *liveReplay
	for _, lr := range rp.all {
		if lr.rec.Replay.State != ReplayRunning && (oldest == nil || lr.rec.Replay.Created.Before(oldest.rec.Replay.Created)) {
			oldest = lr
		}
	}
	if oldest == nil {
		return false
	}
	delete(rp.all, oldest.rec.Replay.ID)
	if rp.kv != nil {
		_ = rp.kv.Purge(ctx, oldest.rec.Replay.ID)
	}
	return true
}

// inspectRoute serves /events/{position} and /replays/{id}; false for
// another path.
func (s *Server) inspectRoute(w http.ResponseWriter, r *http.Request) bool {
	if id, ok := strings.CutPrefix(r.URL.Path, "/replays/"); ok && id != "" && !strings.Contains(id, "/") {
		s.replaysAPI(w, r, id)
		return true
	}
	if pos, ok := strings.CutPrefix(r.URL.Path, "/events/"); ok && pos != "" && !strings.Contains(pos, "/") {
		if getOnly(w, r) && s.auth.allow(w, r, ScopeRead, false) {
			s.event(w, r, pos)
		}
		return true
	}
	return false
}
