package postgres

import (
	"context"
	"strconv"

	"github.com/eventkit/eventkit/internal/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// dialect is PostgreSQL for the code the stores share with package sqlite.
var dialect = &sqlstore.Dialect{
	Name: "postgres", NoRows: pgx.ErrNoRows,
	Param: func(n int) string { return "$" + strconv.Itoa(n) },
	Text:  "text", Int64: "bigint", Int32: "int", Bytes: "bytea", Time: "timestamptz", Now: "now()",
}

// querier is what a pool, a connection and a transaction share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pgDB adapts a pool, a connection or a transaction to sqlstore.DB.
type pgDB struct{ q querier }

func (d pgDB) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := d.q.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

func (d pgDB) QueryRow(ctx context.Context, sql string, args ...any) sqlstore.Row {
	return d.q.QueryRow(ctx, sql, args...)
}
