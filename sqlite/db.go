package sqlite

import (
	"database/sql"
	"time"

	"github.com/eventkit/eventkit/internal/sqlstore"
)

// dialect is SQLite for the code the stores share with package postgres
// (on database/sql: sqlstore.Std adapts a *sql.DB or *sql.Tx).
var dialect = &sqlstore.Dialect{
	Name: "sqlite", NoRows: sql.ErrNoRows,
	Param: func(int) string { return "?" },
	Text:  "TEXT", Int64: "INTEGER", Int32: "INTEGER", Bytes: "BLOB", Time: "TEXT",
	TimeValue: func(t time.Time) any { return t.UTC().Format(time.RFC3339Nano) },
}
