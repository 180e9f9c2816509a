package pgcdc

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrConfig is matched (with errors.Is) by the errors Source.Run
// returns for a configuration that retrying cannot fix. Their type is
// *ConfigError.
var ErrConfig = errors.New("postgres: cdc: configuration error")

// ConfigError is an error of Source.Run that a retry cannot fix: the
// server refused the configuration (wal_level not logical, a missing
// privilege, an unknown table, database or user, a wrong password) or the
// options cannot work. Run returns it at once instead of reconnecting.
type ConfigError struct {
	Err  error  // the error met
	Code string // its SQLSTATE, when the server gave one
	Hint string // what to change, when known
}

func (e *ConfigError) Error() string {
	s := e.Err.Error() + " (a configuration error, not retried"
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s + ")"
}

// Unwrap returns Err.
func (e *ConfigError) Unwrap() error { return e.Err }

// Is reports whether target is ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// configError returns err as a *ConfigError when it is one a retry
// cannot fix, and nil when it is transient: a lost or refused connection,
// a server shutting down or starting up (57P01, 57P03), too many
// connections (53300), a slot still held by a previous walsender (55006),
// a publisher error, or an SQLSTATE not known to be permanent.
//
// Permanent: authentication (class 28), an unknown database (3D000) or
// schema (3F000), syntax errors and access rule violations (class 42:
// missing privileges 42501, unknown tables 42P01, a publication dropped
// while the source ran 42704), a feature the server lacks (0A000), an
// invalid parameter (22023), wal_level or max_replication_slots not set
// for logical decoding (55000), and no free replication slot (53400).
func configError(err error) *ConfigError {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ce
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil
	}
	code, msg := pgErr.Code, strings.ToLower(pgErr.Message)
	hint := ""
	switch {
	case strings.HasPrefix(code, "28"):
		hint = "check the user and password of the DSN, and that pg_hba.conf admits them (the replication connection needs a \"replication\" line)"
	case code == "3D000":
		hint = "check the database name of the DSN"
	case code == "42501" && (strings.Contains(msg, "replication") || strings.Contains(msg, "walsender")):
		hint = "the user needs the REPLICATION attribute (ALTER ROLE ... REPLICATION) or to be a superuser"
	case code == "42501":
		hint = "the user needs to own the published tables (or be a superuser) to create or change the publication, the CREATE privilege on the database to create it, and SELECT on the tables for the snapshot"
	case code == "42P01" || code == "3F000":
		hint = "check the tables (schema.table) given to the source"
	case code == "42704":
		hint = "an object the source needs is missing (a publication dropped while the source ran must be recreated with a new slot)"
	case strings.HasPrefix(code, "42"), code == "0A000", code == "22023":
	case code == "55000" && strings.Contains(msg, "wal_level"):
		hint = "set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL"
	case code == "55000" && strings.Contains(msg, "max_replication_slots"):
		hint = "set max_replication_slots above 0 and restart PostgreSQL"
	case code == "55000":
	case code == "53400":
		hint = "no replication slot is free: drop unused slots or raise max_replication_slots"
	default:
		return nil
	}
	return &ConfigError{Err: err, Code: code, Hint: hint}
}
