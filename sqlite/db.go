package sqlite

import (
	"context"
	"database/sql"

	"github.com/eventkit/eventkit/internal/sqlstore"
)

// dialect is SQLite for the code the stores share with package postgres.
var dialect = &sqlstore.Dialect{Name: "sqlite", NoRows: sql.ErrNoRows}

// querier is what *sql.DB, *sql.Tx and *sql.Conn share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sqlDB adapts a *sql.DB, *sql.Tx or *sql.Conn to sqlstore.DB.
type sqlDB struct{ q querier }

func (d sqlDB) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := d.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (d sqlDB) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return d.q.QueryRowContext(ctx, query, args...)
}
