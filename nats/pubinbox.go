package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// The publish path sends every message with nc.PublishMsg and a reply
// subject in an inbox of the transport's own, and matches the acks itself,
// rather than through nats.go jetstream's PublishMsgAsync: that one gives
// each message a future with two channels and a timer, and decodes each
// ack with encoding/json, which cost more CPU than the rest of a publish.
//
// The inbox is one wildcard subscription "<inbox>.*", made on the first
// publish (nats.go restores it after a reconnection). A publish call
// (pubCall) registers once and sends event i as "send" n of the call with
// the reply subject "<inbox>.<call>-<n>" (base 36); the ack comes back to
// that subject. The number of sends awaiting their ack is bounded by a
// semaphore (WithMaxInFlight). A send is resolved exactly once: by its
// ack, by the call's ack timeout (one timer per call, at the deadline of
// its oldest unresolved send), by a disconnection (every unresolved send
// fails at once, as in nats.go), or when the transport is torn down; its
// slot is given back then. An ack that comes after its send was resolved
// (a late ack, or one for a send that was made again under another number)
// is ignored.

// errAckTimeout is the failure of a send whose ack did not come within the
// publish ack timeout; the event is sent again.
var errAckTimeout = errors.New("nats: no publish ack within the publish ack timeout")

// errStopped is the failure of events left unsent because the transport
// was closed while their call waited for room.
var errStopped = errors.New("nats: transport closed before the event was sent")

// pubInbox owns the publish reply inbox and the pending sends of a
// transport.
type pubInbox struct {
	nc      *nats.Conn
	timeout time.Duration
	room    chan struct{} // one element per unresolved send (the in-flight bound)
	stop    chan struct{} // closed by close

	mu      sync.Mutex
	prefix  string // "<inbox>."
	sub     *nats.Subscription
	status  chan nats.Status
	calls   map[uint64]*pubCall
	lastID  uint64
	active  int // calls between begin and end
	closing bool
}

func newPubInbox(nc *nats.Conn, maxInFlight int, timeout time.Duration) *pubInbox {
	return &pubInbox{
		nc:      nc,
		timeout: timeout,
		room:    make(chan struct{}, maxInFlight),
		stop:    make(chan struct{}),
		calls:   make(map[uint64]*pubCall),
	}
}

// pubCall is the state of one publish call. Everything but id, start and
// wake is guarded by pubInbox.mu.
type pubCall struct {
	id    uint64
	start time.Time
	wake  chan struct{} // signalled when nothing is in flight or a fatal error came

	cur    []uint32        // per event: 1 + the number of its unresolved send, or 0
	sends  []int32         // per send number: the event sent
	sentAt []time.Duration // per send number: when (since start)
	oldest int             // every send before this one is resolved

	inflight int
	failed   []int // events whose send failed for a passing reason
	lastErr  error // the last such failure
	fatal    error // the first failure that is not passing
	fatalAt  int   // its event
	left     bool  // the caller returned (the call stays until nothing is in flight)
}

// begin registers a call of n events; it fails with errClosedInbox once
// the transport is closed. It makes the inbox on first use.
func (p *pubInbox) begin(n int) (*pubCall, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return nil, errClosedInbox
	}
	if p.sub == nil {
		p.prefix = p.nc.NewInbox() + "."
		sub, err := p.nc.Subscribe(p.prefix+"*", p.handleAck)
		if err != nil {
			return nil, fmt.Errorf("subscribe to the publish ack inbox: %w", err)
		}
		p.sub = sub
		p.status = p.nc.StatusChanged(nats.RECONNECTING, nats.CLOSED)
		go p.watch(p.status)
	}
	p.lastID++
	c := &pubCall{
		id:     p.lastID,
		start:  time.Now(),
		wake:   make(chan struct{}, 1),
		cur:    make([]uint32, n),
		sends:  make([]int32, 0, n),
		sentAt: make([]time.Duration, 0, n),
	}
	p.calls[c.id] = c
	p.active++
	return c, nil
}

// errClosedInbox tells begin's caller that the transport is closed.
var errClosedInbox = errors.New("closed")

// end is called when the caller of begin returns. Sends still in flight
// keep their room until their ack comes or they time out, so that the
// in-flight bound holds for abandoned calls too.
func (p *pubInbox) end(c *pubCall) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.left = true
	if c.inflight == 0 {
		delete(p.calls, c.id)
	} else {
		time.AfterFunc(p.timeout, func() {
			p.mu.Lock()
			p.expireLocked(c, time.Duration(1<<63-1))
			p.mu.Unlock()
		})
	}
	p.active--
	if p.closing && p.active == 0 {
		p.teardownLocked()
	}
}

// close stops the inbox: calls in progress go on with what they sent
// (their acks still come), and the inbox goes away with the last of them.
func (p *pubInbox) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return
	}
	p.closing = true
	close(p.stop)
	if p.active == 0 {
		p.teardownLocked()
	}
}

// teardownLocked drops the subscription and the status listener, and
// gives back the room of abandoned calls (no ack can come any more).
func (p *pubInbox) teardownLocked() {
	if p.sub != nil {
		_ = p.sub.Unsubscribe()
		p.nc.RemoveStatusListener(p.status)
		p.sub, p.status = nil, nil
	}
	for _, c := range p.calls {
		p.failAllLocked(c, errStopped)
	}
}

// watch fails every unresolved send when the connection is lost (their
// acks may be lost with it; the events are sent again) or closed.
func (p *pubInbox) watch(status chan nats.Status) {
	for s := range status {
		err := nats.ErrDisconnected
		if s == nats.CLOSED {
			err = nats.ErrConnectionClosed
		}
		p.mu.Lock()
		for _, c := range p.calls {
			p.failAllLocked(c, err)
		}
		p.mu.Unlock()
		if s == nats.CLOSED {
			return
		}
	}
}

// reply returns the reply subject of send n of c.
func (p *pubInbox) reply(c *pubCall, n int) string {
	var buf [64]byte
	b := append(buf[:0], p.prefix...)
	b = strconv.AppendUint(b, c.id, 36)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(n), 36)
	return string(b)
}

// sendLocked records that event i of c is sent now, and returns the send's
// number. The caller holds a slot of room.
func (p *pubInbox) sendLocked(c *pubCall, i int) int {
	n := len(c.sends)
	c.sends = append(c.sends, int32(i))
	c.sentAt = append(c.sentAt, time.Since(c.start))
	c.cur[i] = uint32(n) + 1
	c.inflight++
	return n
}

// resolveLocked settles send n of c (event i) with err (nil: acked) and
// gives its slot back.
func (p *pubInbox) resolveLocked(c *pubCall, i int, err error) {
	c.cur[i] = 0
	c.inflight--
	<-p.room
	switch {
	case err == nil:
	case retryable(err):
		c.failed = append(c.failed, i)
		c.lastErr = err
	case c.fatal == nil:
		c.fatal, c.fatalAt = err, i
		signal(c.wake)
	}
	if c.inflight == 0 {
		signal(c.wake)
		if c.left {
			delete(p.calls, c.id)
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// handleAck is the inbox's message handler.
func (p *pubInbox) handleAck(m *nats.Msg) {
	_, err := parseAckMsg(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	id, n, ok := p.parseReplyLocked(m.Subject)
	if !ok {
		return
	}
	c := p.calls[id]
	if c == nil || n >= uint64(len(c.sends)) {
		return
	}
	i := int(c.sends[n])
	if c.cur[i] != uint32(n)+1 {
		return // resolved already (timed out, failed, or sent again)
	}
	p.resolveLocked(c, i, err)
}

// parseReplyLocked reads the call and send numbers of an ack's subject.
func (p *pubInbox) parseReplyLocked(subject string) (id, n uint64, ok bool) {
	tok, found := strings.CutPrefix(subject, p.prefix)
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(tok, "-")
	if !found {
		return 0, 0, false
	}
	id, err1 := strconv.ParseUint(a, 36, 64)
	n, err2 := strconv.ParseUint(b, 36, 64)
	return id, n, err1 == nil && err2 == nil
}

// expireLocked fails the sends of c whose deadline is not after now (time
// since c.start) with errAckTimeout, and returns the deadline of the
// oldest send still unresolved (ok false if none).
func (p *pubInbox) expireLocked(c *pubCall, now time.Duration) (next time.Duration, ok bool) {
	for ; c.oldest < len(c.sends); c.oldest++ {
		n := c.oldest
		i := int(c.sends[n])
		if c.cur[i] != uint32(n)+1 {
			continue
		}
		if d := c.sentAt[n] + p.timeout; d > now {
			return d, true
		}
		p.resolveLocked(c, i, errAckTimeout)
	}
	return 0, false
}

// failAllLocked fails every unresolved send of c with err.
func (p *pubInbox) failAllLocked(c *pubCall, err error) {
	for n := c.oldest; n < len(c.sends) && c.inflight > 0; n++ {
		i := int(c.sends[n])
		if c.cur[i] == uint32(n)+1 {
			p.resolveLocked(c, i, err)
		}
	}
}

// errCallFailed tells that a send of the call failed for a reason that is
// not passing (pubCall.fatal).
var errCallFailed = errors.New("publish failed")

// expire times out c's sends that are past their deadline and returns
// when the next one is due (ok is false when none is in flight), or
// errCallFailed when a send of c failed for good.
func (p *pubInbox) expire(c *pubCall) (next time.Duration, ok bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.fatal != nil {
		return 0, false, errCallFailed
	}
	next, ok = p.expireLocked(c, time.Since(c.start))
	return next, ok, nil
}

// waitRoom waits for a slot of room and takes it. Meanwhile it times out
// c's own sends. It fails with ctx's error, errStopped when the transport
// is closed, or errCallFailed when a send of c failed for good.
func (p *pubInbox) waitRoom(ctx context.Context, c *pubCall, timer *callTimer) error {
	for {
		next, ok, err := p.expire(c)
		if err != nil {
			return err
		}
		var expire <-chan time.Time
		if ok {
			expire = timer.arm(next - time.Since(c.start))
		}
		select {
		case p.room <- struct{}{}:
			return nil
		case <-expire:
		case <-c.wake:
		case <-p.stop:
			return errStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitAcks waits until no send of c is in flight, timing them out at
// their deadline. It fails with ctx's error, or errCallFailed when a send
// of c failed for good.
func (p *pubInbox) waitAcks(ctx context.Context, c *pubCall, timer *callTimer) error {
	for {
		next, ok, err := p.expire(c)
		if err != nil {
			return err
		}
		if !ok {
			return nil // nothing in flight
		}
		select {
		case <-c.wake:
		case <-timer.arm(next - time.Since(c.start)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// callTimer is the one timer of a publish call, made on first use.
type callTimer struct{ t *time.Timer }

// arm sets the timer to fire after d and returns its channel. (Since Go
// 1.23, Reset discards a value the channel held.)
func (ct *callTimer) arm(d time.Duration) <-chan time.Time {
	if ct.t == nil {
		ct.t = time.NewTimer(d)
	} else {
		ct.t.Reset(d)
	}
	return ct.t.C
}

func (ct *callTimer) stop() {
	if ct.t != nil {
		ct.t.Stop()
	}
}
