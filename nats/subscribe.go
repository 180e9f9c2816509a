package nats

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// OpenSubscription finds the stream of pattern, creates (or joins) the
// consumer, waiting for JetStream while it is unavailable until ctx ends,
// and subscribes to the inbox that pull requests answer to.
func (t *drv) OpenSubscription(ctx context.Context, pattern string, cfg driver.Config) (driver.Subscription, error) {
	if len(cfg.Options) > 0 {
		return nil, eventkit.InvalidOption("eventkit.WithTransportOption", fmt.Sprintf("the nats transport has no subscription options, got a %T", cfg.Options[0]))
	}
	if err := t.ensureDeclared(ctx); err != nil {
		return nil, fmt.Errorf("nats: subscribe to %q: %w", pattern, err)
	}
	stream, err := t.streamFor(ctx, pattern)
	if err != nil {
		return nil, fmt.Errorf("nats: subscribe to %q: %w", pattern, err)
	}
	s := &subscription{
		t: t, stream: stream, pattern: pattern, cfg: cfg,
		unsettled: make(map[*delivery]struct{}),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	err = t.retryJS(ctx, func(ctx context.Context) (err error) {
		_, err = s.consumer(ctx, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("nats: subscribe to %q: %w", pattern, err)
	}
	// eventkit.WithBuffer sets MaxBatch; without it (MaxBatch is then
	// driver.DefaultMaxBatch) the transport's WithSubscriptionBuffer
	// applies. At least one message must fit, or nothing would be pulled.
	size := cfg.MaxBatch
	if size == driver.DefaultMaxBatch {
		size = t.cfg.buffer
	}
	s.size = max(size, 1)
	if err := s.subscribe(); err != nil {
		s.deleteConsumer(ctx)
		return nil, fmt.Errorf("nats: subscribe to %q: %w", pattern, err)
	}
	s.tick = time.NewTicker(time.Second)
	s.last = time.Now()
	if t.cfg.ackExtension >= 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.extend()
		}()
	}
	return s, nil
}

// subscription is a driver.Subscription on a JetStream pull consumer.
// ReceiveBatch keeps pull requests outstanding for as many messages as
// the subscription may hold (its size: messages requested or received and
// not yet returned to package transport, which holds at most two batches
// besides), so that the application does not wait for round trips, and
// returns what has arrived. Messages arrive in nats.go's
// goroutine of the inbox subscription (arrive), which decodes and tracks
// each at once, so that in-progress acks cover it however long it waits.
type subscription struct {
	t       *drv
	stream  string
	pattern string
	cfg     driver.Config

	name      string // consumer name
	ephemeral bool
	inbox     string
	sub       *nats.Subscription
	size      int
	lost      bool // the consumer must be restored (ReceiveBatch only)
	tick      *time.Ticker

	wake chan struct{} // capacity 1: something arrived

	stop chan struct{} // closed when the stop begins
	wg   sync.WaitGroup

	mu          sync.Mutex
	queue       fifo // arrived and tracked, not yet returned
	outstanding int  // messages requested and not yet arrived
	last        time.Time
	lastSeq     uint64 // stream sequence of the last arrival
	err         error  // a failure of the pull requests, for ReceiveBatch
	closing     bool   // Shutdown took the messages to nack
	unsettled   map[*delivery]struct{}
}

// delivery is one received JetStream message; a pointer to it is the
// message's AckID. The driver.Message is part of it, so that a delivery
// costs one allocation.
type delivery struct {
	dm    driver.Message
	msg   *nats.Msg
	taken atomic.Int64 // unix nanoseconds when the application took it; 0 before
}

// consumer creates (or, for a group, joins) the subscription's consumer.
// A consumer made again after it was lost starts after startAfter.
func (s *subscription) consumer(ctx context.Context, startAfter uint64) (jetstream.Consumer, error) {
	t := s.t
	cc, err := t.consumerConfig(s.pattern, s.cfg)
	if err != nil {
		return nil, err
	}
	if startAfter > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, startAfter+1
	}
	if s.cfg.Group == "" {
		if s.name == "" {
			var b [8]byte
			_, _ = rand.Read(b[:])
			s.name = "eventkit_" + hex.EncodeToString(b[:])
		}
		s.ephemeral = true
		if startAfter > 0 {
			// Restoring: the consumer may have survived.
			if c, err := t.js.Consumer(ctx, s.stream, s.name); err == nil {
				return c, nil
			}
		}
		cc.Name = s.name
		cc.InactiveThreshold = t.cfg.inactive
		c, err := t.js.CreateOrUpdateConsumer(ctx, s.stream, cc)
		if err != nil {
			return nil, fmt.Errorf("create consumer on stream %q: %w", s.stream, err)
		}
		return c, nil
	}
	s.name = safeName(s.cfg.Group)
	cc.Durable = s.name
	for try := 0; ; try++ {
		c, err := t.js.Consumer(ctx, s.stream, s.name)
		if err == nil {
			have := c.CachedInfo().Config
			if have.FilterSubject != s.pattern {
				return nil, fmt.Errorf("group %q (consumer %q on stream %q) subscribes to %q, not %q", s.cfg.Group, s.name, s.stream, have.FilterSubject, s.pattern)
			}
			if have.AckPolicy != jetstream.AckExplicitPolicy {
				return nil, fmt.Errorf("consumer %q on stream %q does not use explicit acks", s.name, s.stream)
			}
			if have.AckWait != cc.AckWait || have.MaxDeliver != cc.MaxDeliver || have.MaxAckPending != cc.MaxAckPending {
				upd := have
				upd.AckWait, upd.MaxDeliver, upd.MaxAckPending = cc.AckWait, cc.MaxDeliver, cc.MaxAckPending
				if c, err = t.js.UpdateConsumer(ctx, s.stream, upd); err != nil {
					return nil, fmt.Errorf("update consumer %q on stream %q: %w", s.name, s.stream, err)
				}
			}
			return c, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("consumer %q on stream %q: %w", s.name, s.stream, err)
		}
		c, err = t.js.CreateConsumer(ctx, s.stream, cc)
		if errors.Is(err, jetstream.ErrConsumerExists) && try < 3 {
			continue // another member created it first
		}
		if err != nil {
			return nil, fmt.Errorf("create consumer %q on stream %q: %w", s.name, s.stream, err)
		}
		return c, nil
	}
}

// consumerConfig is the configuration of the consumer of a subscription
// (or group) to pattern that starts where cfg says: the next event
// published, the oldest retained one (FromStart), the first stored at or
// after StartTime, or the stream sequence StartPosition. An invalid
// StartPosition wraps eventkit.ErrInvalidOption.
func (t *drv) consumerConfig(pattern string, cfg driver.Config) (jetstream.ConsumerConfig, error) {
	cc := jetstream.ConsumerConfig{
		FilterSubject: pattern,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       t.cfg.ackWait,
		MaxDeliver:    t.cfg.maxDeliver,
		MaxAckPending: t.cfg.maxAckPending,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	}
	switch {
	case cfg.FromStart:
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	case !cfg.StartTime.IsZero():
		at := cfg.StartTime
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &at
	case cfg.StartPosition != "":
		seq, err := parsePosition(cfg.StartPosition)
		if err != nil {
			return cc, err
		}
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq
	}
	return cc, nil
}

// parsePosition returns the stream sequence of a Message.Position of the
// transport (a decimal stream sequence, 1 or more), or an error wrapping
// eventkit.ErrInvalidOption.
func parsePosition(pos string) (uint64, error) {
	seq, err := strconv.ParseUint(pos, 10, 64)
	if err != nil || seq == 0 {
		return 0, eventkit.InvalidOption("eventkit.StartAtPosition", fmt.Sprintf("a NATS position is a stream sequence (1 or more), got %q", pos))
	}
	return seq, nil
}

// Seek implements driver.Seeker: it replaces the group's durable consumer
// with one that starts where cfg says (the consumer's delivery policy
// cannot be changed in place), creating it when the group has none. A
// consumer of the group on another pattern is refused. Members connected
// at the time see their consumer deleted and join the new one: they
// receive from the new starting point, and what they had not acked is
// delivered again.
func (t *drv) Seek(ctx context.Context, pattern string, cfg driver.Config) error {
	if err := t.ensureDeclared(ctx); err != nil {
		return fmt.Errorf("nats: seek group %q: %w", cfg.Group, err)
	}
	stream, err := t.streamFor(ctx, pattern)
	if err != nil {
		return fmt.Errorf("nats: seek group %q: %w", cfg.Group, err)
	}
	cc, err := t.consumerConfig(pattern, cfg)
	if err != nil {
		return err
	}
	cc.Durable = safeName(cfg.Group)
	err = t.retryJS(ctx, func(ctx context.Context) error {
		for try := 0; ; try++ {
			if err := t.dropConsumer(ctx, stream, cc.Durable, pattern); err != nil {
				return err
			}
			_, err := t.js.CreateConsumer(ctx, stream, cc)
			if errors.Is(err, jetstream.ErrConsumerExists) && try < 3 {
				continue // a member restored the old one meanwhile
			}
			return err
		}
	})
	if err != nil {
		return fmt.Errorf("nats: seek group %q (consumer %q on stream %q): %w", cfg.Group, cc.Durable, stream, err)
	}
	return nil
}

// dropConsumer deletes the durable consumer name of stream, if there is
// one, after checking that it is a group's on pattern.
func (t *drv) dropConsumer(ctx context.Context, stream, name, pattern string) error {
	c, err := t.js.Consumer(ctx, stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if have := c.CachedInfo().Config.FilterSubject; have != pattern {
		return fmt.Errorf("the group subscribes to %q, not %q", have, pattern)
	}
	if err := t.js.DeleteConsumer(ctx, stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	return nil
}

// subscribe makes the inbox subscription that pull requests answer to.
// nats.go restores it by itself after a reconnect.
func (s *subscription) subscribe() error {
	nc := s.t.nc
	s.inbox = nc.NewInbox()
	sub, err := nc.Subscribe(s.inbox, s.arrive)
	if err != nil {
		return err
	}
	s.sub = sub
	return nil
}

// fetchExpiry is how long one pull request waits for messages.
const fetchExpiry = 3 * time.Second

// settleTimeout bounds the wait for the server's confirmation of a nack
// when the caller's ctx does not end sooner.
const settleTimeout = 5 * time.Second

func isStatus(msg *nats.Msg) bool {
	return len(msg.Data) == 0 && msg.Header.Get("Status") != ""
}

// ReceiveBatch returns the messages that have arrived, at most max,
// waiting for one until ctx ends, and tops up the pull requests. A failure
// of the pull (consumer deleted, JetStream unavailable) is returned,
// transient, and the next call restores the consumer, starting after the
// last message received.
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	if s.t.nc.IsClosed() {
		return nil, driver.Permanent(fmt.Errorf("nats: subscription to %q: %w", s.pattern, nats.ErrConnectionClosed))
	}
	if s.lost {
		if err := s.restore(ctx); err != nil {
			return nil, err
		}
	}
	for {
		s.mu.Lock()
		if err := s.err; err != nil {
			s.err, s.outstanding = nil, 0
			s.mu.Unlock()
			return nil, s.failed(err)
		}
		out := s.batchLocked(max)
		n := s.requestLocked()
		s.mu.Unlock()
		if n > 0 {
			if err := s.request(n); err != nil {
				s.mu.Lock()
				s.outstanding = 0
				s.mu.Unlock()
				return nil, s.failed(err)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-s.wake:
		case now := <-s.tick.C:
			// Requests lost in a reconnect never answer: forget them.
			s.mu.Lock()
			if s.outstanding > 0 && now.Sub(s.last) > fetchExpiry+time.Second {
				s.outstanding = 0
			}
			s.mu.Unlock()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// batchLocked returns up to max queued messages (nil when none).
func (s *subscription) batchLocked(max int) []*driver.Message {
	n := min(max, s.queue.len())
	if n == 0 {
		return nil
	}
	out := make([]*driver.Message, n)
	for i := range out {
		out[i] = &s.queue.pop().dm
	}
	return out
}

// Delivered implements driver.DeliveryObserver: the application took the
// message, whose in-progress acks now run up to the ack extension.
func (s *subscription) Delivered(id driver.AckID) {
	id.(*delivery).taken.Store(time.Now().UnixNano())
}

func (s *subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// requestLocked returns how many messages a new pull request should ask
// for, and counts them outstanding: none until there is room for half a
// batch, so that a new request goes out while earlier ones are still
// being served.
func (s *subscription) requestLocked() int {
	batch := s.t.cfg.fetchBatch
	want := max(min(batch, s.size)/2, 1)
	free := s.size - s.queue.len() - s.outstanding
	if free < want {
		return 0
	}
	n := min(batch, free)
	s.outstanding += n
	s.last = time.Now()
	return n
}

// request sends a pull request for n messages.
func (s *subscription) request(n int) error {
	subject := s.t.apiPrefix + "CONSUMER.MSG.NEXT." + s.stream + "." + s.name
	req := []byte(`{"batch":` + strconv.Itoa(n) + `,"expires":` + strconv.FormatInt(fetchExpiry.Nanoseconds(), 10) + `}`)
	return s.t.nc.PublishRequest(subject, s.inbox, req)
}

// arrive handles one message of the inbox, in nats.go's goroutine of the
// subscription: a message is decoded, tracked and queued; a status of the
// pull requests updates what is outstanding, or is kept as the error that
// the next ReceiveBatch returns.
func (s *subscription) arrive(msg *nats.Msg) {
	if isStatus(msg) {
		s.status(msg)
		return
	}
	d, seq := s.decode(msg)
	s.mu.Lock()
	if s.closing {
		// Arrived after a drain that did not complete: nacked at once.
		s.mu.Unlock()
		if d != nil {
			_ = s.t.nc.Publish(msg.Reply, ackNak)
		}
		return
	}
	s.outstanding = max(s.outstanding-1, 0)
	s.last = time.Now()
	s.lastSeq = max(s.lastSeq, seq)
	wasEmpty := s.queue.len() == 0
	if d != nil {
		s.unsettled[d] = struct{}{}
		s.queue.push(d)
	}
	s.mu.Unlock()
	if wasEmpty && d != nil {
		s.signal()
	}
}

// status handles a status message of the pull requests.
func (s *subscription) status(msg *nats.Msg) {
	var err error
	s.mu.Lock()
	s.last = time.Now()
	switch code := msg.Header.Get("Status"); code {
	case "100":
		// heartbeat
	case "404", "408":
		// A request expired: what it still owed will not come.
		if p, perr := strconv.Atoi(msg.Header.Get("Nats-Pending-Messages")); perr == nil {
			s.outstanding = max(s.outstanding-p, 0)
		} else {
			s.outstanding = 0
		}
	case "503":
		err = nats.ErrNoResponders
	default:
		desc := strings.ToLower(msg.Header.Get("Description"))
		switch {
		case strings.Contains(desc, "consumer deleted"):
			err = jetstream.ErrConsumerDeleted
		case strings.Contains(desc, "leadership change"), strings.Contains(desc, "exceeded max"):
			s.outstanding = 0
		default:
			err = fmt.Errorf("pull request: status %s %s", code, msg.Header.Get("Description"))
		}
	}
	if err != nil {
		s.err = err
	}
	s.mu.Unlock()
	if err != nil {
		s.signal()
	}
}

// failed notes a pull failure: a lost consumer is restored by the next
// ReceiveBatch. The error is transient.
func (s *subscription) failed(err error) error {
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, nats.ErrNoResponders) {
		s.lost = true
	}
	return fmt.Errorf("nats: subscription to %q (consumer %q): %w", s.pattern, s.name, err)
}

// restore makes the consumer again (or finds it), starting after the last
// message received; each attempt is bounded by the setup timeout.
func (s *subscription) restore(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.t.cfg.setupTimeout)
	defer cancel()
	s.mu.Lock()
	after := s.lastSeq
	s.mu.Unlock()
	if _, err := s.consumer(ctx, after); err != nil {
		return fmt.Errorf("nats: subscription to %q: consumer %q not restored yet: %w", s.pattern, s.name, err)
	}
	s.lost = false
	return nil
}

// decode returns the delivery of msg and its stream sequence; a nil
// delivery for a message that is not a CloudEvent (terminated) or has no
// JetStream metadata (dropped).
func (s *subscription) decode(msg *nats.Msg) (*delivery, uint64) {
	seq, delivered, pos, ok := ackReplyMeta(msg.Reply)
	if !ok {
		meta, err := msg.Metadata()
		if err != nil {
			s.t.log.Warn("nats: message without JetStream metadata dropped", "subject", msg.Subject, "error", err)
			return nil, 0
		}
		seq, delivered = meta.Sequence.Stream, meta.NumDelivered
		pos = strconv.FormatUint(seq, 10)
	}
	ev, err := DecodeMsg(msg.Header, msg.Data)
	if err != nil {
		s.t.log.Error("nats: message is not a valid CloudEvent; terminated (never redelivered)",
			"subject", msg.Subject, "stream", s.stream, "sequence", seq, "error", err)
		_ = s.t.nc.Publish(msg.Reply, ackTerm)
		return nil, seq
	}
	d := &delivery{msg: msg}
	d.dm = driver.Message{Topic: msg.Subject, Event: ev, Attempt: int(delivered), Position: pos, ID: d, Raw: msg}
	return d, seq
}

// Acknowledgement bodies of the JetStream protocol.
var (
	ackAck = []byte("+ACK")
	// ackNak asks for redelivery now, as a delayed NAK of 1ns: JetStream
	// keeps a plain NAK only in memory (a server restart forgets it, and
	// the message then waits for the ack wait), while a delayed NAK is
	// written to the consumer's state as an expired delivery, which a
	// restarted server redelivers at once. The server acts on it within
	// about 10ms.
	ackNak      = []byte(`-NAK {"delay":1}`)
	ackProgress = []byte("+WPI")
	ackTerm     = []byte("+TERM")
)

// SendAcks acks each message.
func (s *subscription) SendAcks(ctx context.Context, ids []driver.AckID) error {
	s.mu.Lock()
	for _, id := range ids {
		delete(s.unsettled, id.(*delivery))
	}
	s.mu.Unlock()
	var first error
	failed := 0
	for _, id := range ids {
		if err := s.t.nc.Publish(id.(*delivery).msg.Reply, ackAck); err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if first != nil {
		return fmt.Errorf("nats: %d of %d acks not sent: %w", failed, len(ids), first)
	}
	return nil
}

// AckInline implements driver.InlineAcker: the ack is handed to nats.go,
// which queues it for its flusher (as SendAcks does), so package transport
// calls it from eventkit.Message.Ack instead of passing the ack to a
// goroutine of its own.
func (s *subscription) AckInline(id driver.AckID) error {
	d := id.(*delivery)
	s.mu.Lock()
	delete(s.unsettled, d)
	s.mu.Unlock()
	if err := s.t.nc.Publish(d.msg.Reply, ackAck); err != nil {
		return fmt.Errorf("nats: ack not sent: %w", err)
	}
	return nil
}

// SendNacks sends a negative ack for each message, with its delay, and
// returns when the server has taken them: JetStream processes
// acknowledgements asynchronously and drops those still queued when it
// stops, and a nack lost that way would hold the message back for the
// ack wait.
func (s *subscription) SendNacks(ctx context.Context, nacks []driver.Nack) error {
	s.mu.Lock()
	for _, n := range nacks {
		delete(s.unsettled, n.ID.(*delivery))
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	var errs []error
	for _, n := range nacks {
		body := ackNak
		if n.Delay > 0 {
			body = []byte(`-NAK {"delay":` + strconv.FormatInt(n.Delay.Nanoseconds(), 10) + `}`)
		}
		if _, err := s.t.nc.RequestWithContext(ctx, n.ID.(*delivery).msg.Reply, body); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("nats: %d of %d nacks not confirmed: %w", len(errs), len(nacks), errors.Join(errs...))
	}
	return nil
}

// extend sends in-progress acks for unsettled messages every third of the
// ack wait: for those not yet taken by the application, and for those
// taken less than the ack extension ago.
func (s *subscription) extend() {
	t := s.t
	every := max(t.cfg.ackWait/3, 10*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var batch []*delivery
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		batch = batch[:0]
		s.mu.Lock()
		for d := range s.unsettled {
			if tk := d.taken.Load(); tk == 0 || now.Sub(time.Unix(0, tk)) < t.cfg.ackExtension {
				batch = append(batch, d)
			}
		}
		s.mu.Unlock()
		for _, d := range batch {
			_ = t.nc.Publish(d.msg.Reply, ackProgress)
		}
	}
}

// Shutdown ends the subscription within ctx: it stops the in-progress
// acks, ends the inbox subscription, nacks the messages received and not
// taken by the application (they come back at once, to another member of
// the group) and deletes the consumer of a subscription without group.
// Messages taken and not settled come back after the ack wait.
func (s *subscription) Shutdown(ctx context.Context) error {
	close(s.stop)
	s.wg.Wait()
	s.tick.Stop()
	var errs []error
	if err := s.unsubscribe(ctx); err != nil {
		errs = append(errs, err)
	}
	var left []*nats.Msg
	s.mu.Lock()
	s.closing = true
	// The queued messages are in s.unsettled, never taken: nacked below.
	s.queue = fifo{}
	for d := range s.unsettled {
		if d.taken.Load() == 0 {
			left = append(left, d.msg)
		}
	}
	clear(s.unsettled)
	s.mu.Unlock()
	if err := s.nakAll(ctx, left); err != nil {
		errs = append(errs, err)
	}
	if s.ephemeral && !s.t.nc.IsClosed() {
		s.deleteConsumer(ctx)
	}
	if len(errs) > 0 {
		return fmt.Errorf("nats: close subscription to %q: %w", s.pattern, errors.Join(errs...))
	}
	return nil
}

// Close is Shutdown bounded by DefaultSetupTimeout; package transport
// calls Shutdown.
func (s *subscription) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultSetupTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// unsubscribe ends the inbox subscription before anything is nacked, so
// that the server drops a pull request still waiting (it has no interest
// any more) instead of sending it the nacked messages.
//
// It drains rather than unsubscribes: after the drain's round trip (within
// ctx), every message the server sent to the inbox before it took the
// unsubscription has arrived (and is nacked by Shutdown). A plain
// unsubscribe drops those in flight, and the server, which counts them
// delivered, sends them again only after the ack wait.
func (s *subscription) unsubscribe(ctx context.Context) error {
	var err error
	if derr := s.sub.Drain(); derr == nil {
		for s.sub.IsValid() && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		if s.sub.IsValid() {
			err = fmt.Errorf("drain the inbox: %w", context.Cause(ctx))
		}
	}
	if s.sub.IsValid() {
		_ = s.sub.Unsubscribe()
	}
	return err
}

// nakAll nacks msgs and waits (within ctx) until the server confirmed
// each: a confirmed nack is in the consumer's state, while one still
// queued in the server when it stops is lost (the message then waits for
// the ack wait).
func (s *subscription) nakAll(ctx context.Context, msgs []*nats.Msg) error {
	nc := s.t.nc
	if len(msgs) == 0 || nc.IsClosed() {
		return nil
	}
	inbox := nc.NewInbox()
	confirmed := make(chan *nats.Msg, len(msgs))
	sub, err := nc.ChanSubscribe(inbox, confirmed)
	if err != nil {
		for _, msg := range msgs {
			_ = nc.Publish(msg.Reply, ackNak)
		}
		return nil
	}
	defer func() { _ = sub.Unsubscribe() }()
	for _, msg := range msgs {
		_ = nc.PublishRequest(msg.Reply, inbox, ackNak)
	}
	for i := range msgs {
		select {
		case <-confirmed:
		case <-ctx.Done():
			return fmt.Errorf("%d of %d nacks of the messages not taken unconfirmed: %w", len(msgs)-i, len(msgs), context.Cause(ctx))
		}
	}
	return nil
}

// deleteConsumer deletes the consumer of a subscription without group
// (within ctx; the server deletes it after the inactive threshold
// otherwise).
func (s *subscription) deleteConsumer(ctx context.Context) {
	if !s.ephemeral || s.name == "" {
		return
	}
	if err := s.t.js.DeleteConsumer(ctx, s.stream, s.name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.t.log.Debug("nats: delete consumer", "consumer", s.name, "error", err)
	}
}

var (
	_ driver.Subscription     = (*subscription)(nil)
	_ driver.Shutdowner       = (*subscription)(nil)
	_ driver.DeliveryObserver = (*subscription)(nil)
	_ driver.InlineAcker      = (*subscription)(nil)
)

// fifo is a queue of deliveries, reusing its array.
type fifo struct {
	buf  []*delivery
	head int
}

func (f *fifo) len() int { return len(f.buf) - f.head }

func (f *fifo) push(d *delivery) {
	if f.head > 0 && len(f.buf) == cap(f.buf) {
		n := copy(f.buf, f.buf[f.head:])
		clear(f.buf[n:])
		f.buf, f.head = f.buf[:n], 0
	}
	f.buf = append(f.buf, d)
}

// peek returns the oldest delivery, nil when empty.
func (f *fifo) peek() *delivery {
	if f.head == len(f.buf) {
		return nil
	}
	return f.buf[f.head]
}

// pop removes and returns the oldest delivery, nil when empty.
func (f *fifo) pop() *delivery {
	if f.head == len(f.buf) {
		return nil
	}
	d := f.buf[f.head]
	f.buf[f.head] = nil
	f.head++
	if f.head == len(f.buf) {
		f.buf, f.head = f.buf[:0], 0
	}
	return d
}

// ackReplyMeta reads the stream sequence and the delivery count from a
// JetStream message's reply subject without allocating, and returns the
// stream sequence's decimal text too (a part of reply, which the message's
// Position reuses). The subject is
// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>,
// or, from newer servers, with <domain>.<account hash> before the stream
// and possibly more tokens after the pending count (nats.go accepts 11
// tokens or more). ok is false for any other form, and for a stream
// sequence not written as strconv.FormatUint writes it.
func ackReplyMeta(reply string) (streamSeq, delivered uint64, seqText string, ok bool) {
	rest, found := strings.CutPrefix(reply, "$JS.ACK.")
	if !found {
		return 0, 0, "", false
	}
	skip := 0 // tokens before <delivered>
	switch n := strings.Count(rest, ".") + 1; {
	case n == 7:
		skip = 2
	case n >= 9:
		skip = 4
	default:
		return 0, 0, "", false
	}
	for range skip {
		_, rest, _ = strings.Cut(rest, ".")
	}
	d, rest, _ := strings.Cut(rest, ".")
	q, _, _ := strings.Cut(rest, ".")
	dv, err1 := strconv.ParseUint(d, 10, 64)
	sv, err2 := strconv.ParseUint(q, 10, 64)
	if err1 != nil || err2 != nil || q[0] == '0' && len(q) > 1 {
		return 0, 0, "", false
	}
	return sv, dv, q, true
}
