// Package pgsql holds the small SQL helpers that the PostgreSQL stores
// (package postgres) and the queue transport (package pgqueue) share:
// quoting table names and listening for notifications. It imports pgx and
// nothing else.
package pgsql

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Ident quotes the table name (optionally schema-qualified, "schema.table")
// with suffix appended to its last part. An empty name, an empty part or
// more than two parts is an error.
func Ident(name, suffix string) (string, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 || name == "" {
		return "", fmt.Errorf("postgres: invalid table name %q", name)
	}
	for _, p := range parts {
		if p == "" {
			return "", fmt.Errorf("postgres: invalid table name %q", name)
		}
	}
	parts[len(parts)-1] += suffix
	return pgx.Identifier(parts).Sanitize(), nil
}

// IndexName quotes the last part of the table name with suffix appended,
// the unqualified name of an index on that table.
func IndexName(name, suffix string) string {
	parts := strings.Split(name, ".")
	return pgx.Identifier{parts[len(parts)-1] + suffix}.Sanitize()
}

// Listen LISTENs on channel on a connection taken out of pool and calls
// wake on every notification until ctx ends (nil) or the connection fails.
// wake is also called once LISTEN has taken effect, for anything committed
// before it.
func Listen(ctx context.Context, pool *pgxpool.Pool, channel string, wake func()) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	conn := c.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{channel}.Sanitize()); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	wake() // anything committed before LISTEN took effect
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wake()
	}
}

// Channel derives from a table name the name of its notification channel,
// kind + "_" + a hash of name, and the key of the advisory lock that
// serializes its migrations.
func Channel(kind, name string) (channel string, lockKey int32) {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	sum := h.Sum64()
	return fmt.Sprintf("%s_%016x", kind, sum), int32(sum >> 32)
}
