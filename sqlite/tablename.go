package sqlite

import "github.com/eventkit/eventkit/internal/opt"

// checkTable checks a table name given to the constructor ctor: "" (the
// default) or a plain SQL identifier (see opt.SQLTable).
func checkTable(ctor, table string) error {
	if table == "" {
		return nil
	}
	return opt.SQLTable(ctor, table, false)
}
