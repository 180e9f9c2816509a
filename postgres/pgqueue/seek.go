package pgqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/topic"
	"github.com/jackc/pgx/v5"
)

// startCursor returns a query of one row (xid, id): the cursor of a group
// that starts where cfg says, with the query's one argument ($5). A group
// delivers the messages after its cursor in (xid, id) order, the order of
// their transactions. It starts
//   - by default, after every transaction committed now;
//   - with FromStart, at the oldest message kept;
//   - with StartTime, at the first message, in that order, stored at or
//     after it (created_at, the publishing transaction's start: a scan of
//     the table, bounded by the retention);
//   - with StartPosition (a message id, Message.Position), at that message,
//     or the first one kept after it when it was deleted.
//
// When no message is kept from the starting point on, the group starts as
// by default.
func (d *drv) startCursor(cfg driver.Config) (query string, arg any, err error) {
	const now = `SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xid, 0::bigint AS id, 1 AS pri`
	pick := func(where string) string {
		return `SELECT xid, id FROM ((SELECT xid, id - 1 AS id, 0 AS pri FROM ` + d.table + ` WHERE ` + where +
			` ORDER BY xid, id LIMIT 1) UNION ALL (` + now + `)) c ORDER BY pri LIMIT 1`
	}
	switch {
	case cfg.FromStart:
		return `SELECT '0'::xid8 AS xid, 0::bigint AS id WHERE $5::int IS NULL`, nil, nil
	case !cfg.StartTime.IsZero():
		return pick(`created_at >= $5::timestamptz`), cfg.StartTime, nil
	case cfg.StartPosition != "":
		id, err := strconv.ParseInt(cfg.StartPosition, 10, 64)
		if err != nil || id < 1 {
			return "", nil, eventkit.InvalidOption("eventkit.StartAtPosition", fmt.Sprintf("a pgqueue position is a message id (1 or more), got %q", cfg.StartPosition))
		}
		return pick(`id >= $5::bigint`), id, nil
	}
	return `SELECT xid, id FROM (` + now + `) c WHERE $5::int IS NULL`, nil, nil
}

// Seek implements driver.Seeker: it moves the group's cursor where cfg
// says, and forgets the group's messages waiting for a redelivery and its
// members' claims, in one transaction; a group that does not exist is
// created there. A group on another pattern is refused. Members connected
// at the time claim from the new cursor on their next fetch; the messages
// they hold are settled as usual, but one they hold past the visibility
// timeout is given back to the group and delivered again.
func (d *drv) Seek(ctx context.Context, pattern string, cfg driver.Config) error {
	if err := d.ensureTables(ctx); err != nil {
		return err
	}
	start, arg, err := d.startCursor(cfg)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var have string
		err := tx.QueryRow(ctx, `INSERT INTO `+d.groups+` AS g (name, pattern, regex, cur_xid, cur_id, ephemeral)
			SELECT $1, $2, $3, st.xid, st.id, $4 FROM (`+start+`) st
			ON CONFLICT (name) DO UPDATE SET cur_xid = EXCLUDED.cur_xid, cur_id = EXCLUDED.cur_id, seen_at = now()
				WHERE g.pattern = EXCLUDED.pattern
			RETURNING pattern`, cfg.Group, pattern, topic.Regexp(pattern).String(), false, arg).Scan(&have)
		if errors.Is(err, pgx.ErrNoRows) {
			_ = tx.QueryRow(ctx, `SELECT pattern FROM `+d.groups+` WHERE name = $1`, cfg.Group).Scan(&have)
			return fmt.Errorf("the group subscribes to %q, not %q", have, pattern)
		}
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM `+d.work+` WHERE group_name = $1`, cfg.Group)
		b.Queue(`DELETE FROM `+d.claims+` WHERE group_name = $1`, cfg.Group)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("pgqueue: seek group %q: %w", cfg.Group, err)
	}
	d.wakeAll()
	return nil
}

var _ driver.Seeker = (*drv)(nil)
