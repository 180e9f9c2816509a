// Package outbox is eventkit's transactional outbox: a service writes the
// events it emits into an outbox table in the same database transaction as
// its own changes, and a Relay publishes the committed events, in order, to
// any eventkit.Publisher.
//
// If the business transaction rolls back, its events never existed; if it
// commits, the relay publishes every one of them, at least once, with the
// event id unchanged, so that a consumer's dedup (middleware.Dedup) removes
// the duplicates a crash can cause. No distributed transaction is involved.
//
// The package holds no driver. A Store is the outbox table of one database:
// package postgres (postgres.Outbox, Write takes a pgx.Tx) and package sqlite
// (sqlite.Outbox, Write takes a *sql.Tx) implement it.
//
// # Order and partitions
//
// Each event goes to one of a store's partitions, chosen from its key
// (eventkit.EventKey: the partitionkey extension, else the subject; an event
// without a key is spread by its id). Within a partition, the store returns
// rows in commit order, and the relay publishes them in that order: events
// that share a key reach the publisher in the order their transactions
// committed.
//
// # Several relays
//
// Any number of relays may run against one store (for availability). Each
// holds a lease on some of the partitions (its fair share: the partition
// count divided by the number of live relays) and only publishes those, so in
// the normal case no event is published twice and no key's order is broken.
// A relay that stops renewing (crash, partition from the database) loses its
// leases after the lease TTL, and another relay takes them over. A relay
// stops publishing a partition before its lease can expire by its own clock,
// so two relays never publish one partition at the same time while their
// clocks run at the same rate.
//
// # Crash windows
//
// The relay marks rows delivered only after the publisher confirmed them. A
// crash between the publisher's confirmation and the mark makes the next
// owner of the partition publish those rows again, with the same event ids:
// delivery is at-least-once, and exactly-once at a consumer that deduplicates
// by event id.
package outbox

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// ErrLeaseLost is returned by Store.MarkDelivered when the owner no longer
// holds the lease of a partition of the records (it expired and another relay
// may have taken it). The records stay pending; the new owner publishes them
// again.
var ErrLeaseLost = errors.New("outbox: partition lease lost")

// Record is one pending row of an outbox.
type Record struct {
	// ID is the row's position: increasing in commit order within a
	// partition.
	ID int64
	// Partition is the partition of the event's key.
	Partition int
	// Topic is the topic the event is published to.
	Topic string
	// Event is the event, as written.
	Event event.Event
}

// Cursor says where a relay continues in one partition: after the record
// with ID After (0: from the start).
type Cursor struct {
	Partition int
	After     int64
}

// Store is the outbox table of one database, as a relay sees it. Stores live
// in the technology packages (postgres, sqlite). Implementations are safe for
// concurrent use.
type Store interface {
	// Partitions returns the number of partitions of the outbox.
	Partitions() int
	// Claim registers owner as a live relay for ttl, renews the leases it
	// holds, gives back those beyond its fair share (the partitions divided
	// by the live relays, rounded up) and takes free or expired ones up to
	// its fair share. It returns the partitions owner holds, each until ttl
	// after the call started at the latest.
	Claim(ctx context.Context, owner string, ttl time.Duration) ([]int, error)
	// Release gives back every lease of owner and unregisters it.
	Release(ctx context.Context, owner string) error
	// Fetch returns up to limit pending (committed, not delivered) records of
	// the cursors' partitions, each partition's in commit order, ordered by
	// ID. A cursor's After is a hint: every record of its partition with an
	// ID up to After was delivered, so the store may start after it (and
	// must not return records at or below it).
	Fetch(ctx context.Context, cursors []Cursor, limit int) ([]Record, error)
	// MarkDelivered marks records delivered (deleting or archiving them by
	// the store's policy), only in partitions that owner still holds; it
	// returns ErrLeaseLost (wrapped) if some were not marked for that reason.
	MarkDelivered(ctx context.Context, owner string, records []Record) error
}

// Notifier is implemented by stores that can wake a relay when events commit
// (PostgreSQL LISTEN/NOTIFY). Listen calls wake after each commit that wrote
// events, until ctx ends or the connection fails. The relay restarts it after
// an error and polls meanwhile.
type Notifier interface {
	Listen(ctx context.Context, wake func()) error
}

// Purger is implemented by stores whose retention policy keeps delivered rows
// for a while. Purge removes those the policy no longer keeps.
type Purger interface {
	Purge(ctx context.Context) (int64, error)
}

// Writer writes events into an outbox inside the caller's transaction, of
// type Tx (pgx.Tx for PostgreSQL, *sql.Tx for SQLite). The events are
// validated first (eventkit.ValidateEvents); none is written if one is
// invalid.
type Writer[Tx any] interface {
	Write(ctx context.Context, tx Tx, topic string, events ...event.Event) error
}

// PartitionOf returns the partition of e among n: by its key
// (eventkit.EventKey), or by its id when it has no key.
func PartitionOf(e event.Event, n int) int {
	if n <= 1 {
		return 0
	}
	k := eventkit.EventKey(e)
	if k == "" {
		k = "\x00id:" + e.ID()
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(k))
	return int(h.Sum32() % uint32(n))
}
