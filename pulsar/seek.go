package pulsar

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	ps "github.com/apache/pulsar-client-go/pulsar"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
)

// position returns the Message.Position of a message id:
// "<ledger>:<entry>", and ":<batch index>" after it for a message of a
// batch.
func position(id ps.MessageID) string {
	s := strconv.FormatInt(id.LedgerID(), 10) + ":" + strconv.FormatInt(id.EntryID(), 10)
	if id.BatchIdx() >= 0 {
		s += ":" + strconv.Itoa(int(id.BatchIdx()))
	}
	return s
}

// parsePosition returns the message id of a Message.Position.
func parsePosition(pos string) (ps.MessageID, error) {
	f := strings.Split(pos, ":")
	n := make([]int64, 3)
	n[2] = -1
	ok := len(f) == 2 || len(f) == 3
	for i := 0; ok && i < len(f); i++ {
		v, err := strconv.ParseInt(f[i], 10, 64)
		ok = err == nil && v >= 0 && (i < 2 || v <= math.MaxInt32)
		n[i] = v
	}
	if !ok {
		return nil, eventkit.InvalidOption("eventkit.StartAtPosition", fmt.Sprintf("a Pulsar position is <ledger>:<entry>[:<batch index>], got %q", pos))
	}
	// The topic is not partitioned: its one consumer is partition 0.
	return ps.NewMessageID(n[0], n[1], int32(n[2]), 0), nil
}

// startConsumer moves a consumer's new subscription to cfg's StartTime
// (SeekByTime: the first message published at or after it) or
// StartPosition (Seek; the consumer delivers from that message on,
// inclusive). Pulsar's client cannot tell a new subscription from an
// existing one: a member that subscribes with StartAt or StartAtPosition
// moves its group there.
func startConsumer(c ps.Consumer, cfg driver.Config) error {
	switch {
	case !cfg.StartTime.IsZero():
		return c.SeekByTime(cfg.StartTime)
	case cfg.StartPosition != "":
		id, err := parsePosition(cfg.StartPosition)
		if err != nil {
			return err
		}
		return c.Seek(id)
	}
	return nil
}

// Seek implements driver.Seeker: a consumer of the group's subscription
// (created if missing) seeks to the start (the oldest message kept),
// to a time (SeekByTime) or to a position (Seek), and closes. The broker
// disconnects the members connected at the time; they reconnect and
// receive from the new point.
//
// The broker moves a subscription to a whole entry, and the Go client does
// not tell it to skip the first messages of a batch. When the position is
// inside a batch, the consumer therefore waits, within ctx, for the
// position's message: the client acks the batch's messages before it as
// they arrive, and the message itself, left unacked, goes back to the
// group when the consumer closes (counted as a redelivery).
//
// pulsar-client-go (v0.19) may leave one goroutine of its own blocked
// after each Seek: the broker closes a consumer that seeks, and the client
// signals its reconnection from a goroutine that nobody receives from once
// the consumer is closed.
func (d *drv) Seek(ctx context.Context, pattern string, cfg driver.Config) error {
	var id ps.MessageID
	if cfg.StartPosition != "" {
		var err error
		if id, err = parsePosition(cfg.StartPosition); err != nil {
			return err
		}
	}
	sub, err := newSubscription(ctx, d, pattern, cfg)
	if err != nil {
		return err
	}
	defer sub.consumer.Close()
	switch {
	case cfg.FromStart:
		// The first message published after 1970 is the oldest kept
		// (Seek to ps.EarliestMessageID is refused on a topic that is not
		// partitioned: its partition index is -1).
		err = sub.consumer.SeekByTime(time.Unix(0, 0))
	case id != nil && id.BatchIdx() > 0:
		_, err = sub.consumer.Receive(ctx)
	}
	if err != nil {
		return fmt.Errorf("pulsar: seek group %q of %q: %w", cfg.Group, d.topic(pattern), err)
	}
	return nil
}

var _ driver.Seeker = (*drv)(nil)
