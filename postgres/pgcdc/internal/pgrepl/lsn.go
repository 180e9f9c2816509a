// Package pgrepl speaks PostgreSQL's streaming replication protocol for
// logical replication over pgx v5's pgconn and pgproto3: the replication
// connection and its commands (IDENTIFY_SYSTEM, CREATE_REPLICATION_SLOT,
// DROP_REPLICATION_SLOT, START_REPLICATION ... LOGICAL), the CopyBoth stream
// of XLogData and primary keepalive messages, standby status updates, and a
// decoder for every message of the pgoutput plugin (protocol versions 1 and 2).
//
// It follows the PostgreSQL documentation chapters "Streaming Replication
// Protocol" and "Logical Replication Message Formats".
package pgrepl

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LSN is a log sequence number, a byte position in the write-ahead log.
type LSN uint64

// String formats the LSN as PostgreSQL does: two hexadecimal halves, "16/B374D848".
func (l LSN) String() string { return string(l.AppendText(nil)) }

// AppendText appends the textual form of l to b; the bytes already in b
// are left as they are.
func (l LSN) AppendText(b []byte) []byte {
	n := len(b)
	b = strconv.AppendUint(b, uint64(l>>32), 16)
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(uint32(l)), 16)
	upperHex(b[n:])
	return b
}

// upperHex upper-cases the hexadecimal letters strconv wrote in b.
func upperHex(b []byte) {
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
}

// ParseLSN parses the textual form "XXX/XXX" of an LSN.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("pgrepl: invalid LSN %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("pgrepl: invalid LSN %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("pgrepl: invalid LSN %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

// pgEpochUnix is the PostgreSQL epoch (2000-01-01 UTC), from which the
// protocol counts microseconds, in Unix seconds.
const pgEpochUnix = 946684800

// PgTime converts microseconds since the PostgreSQL epoch to a time (UTC).
func PgTime(us int64) time.Time {
	sec, rem := us/1e6, us%1e6
	if rem < 0 {
		sec, rem = sec-1, rem+1e6
	}
	return time.Unix(pgEpochUnix+sec, rem*1000).UTC()
}

// ToPgTime converts t to microseconds since the PostgreSQL epoch.
func ToPgTime(t time.Time) int64 {
	return (t.Unix()-pgEpochUnix)*1e6 + int64(t.Nanosecond()/1000)
}
