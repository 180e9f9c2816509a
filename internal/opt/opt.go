// Package opt builds the functional options that check their value, in the
// shape every constructor of eventkit shares: an option is a func(*C) error
// on the constructor's configuration C, and an invalid value fails with an
// error wrapping eventkit.ErrInvalidOption that names the option and says
// why, with the value it got ("kafka.WithLinger: must not be negative, got
// -1s").
//
// It is the one copy of that mechanism: the transport packages' option
// functions, package transport's exported validators (transport.Positive
// and its siblings, for transports written outside this module) and the
// stores' options are all built on it.
package opt

import (
	"fmt"
	"strings"

	"github.com/eventkit/eventkit"
)

// Check returns an option that calls set or, if invalid, fails with
// eventkit.InvalidOption(name, why).
func Check[C any](name string, invalid bool, why string, set func(*C)) func(*C) error {
	return func(c *C) error {
		if invalid {
			return eventkit.InvalidOption(name, why)
		}
		set(c)
		return nil
	}
}

// Set returns an option that sets field(c) to v or, if invalid, fails with
// eventkit.InvalidOption(name, why).
func Set[C, T any](name string, v T, invalid bool, why string, field func(*C) *T) func(*C) error {
	return Check(name, invalid, why, func(c *C) { *field(c) = v })
}

// Number is what Positive, NotNegative and AtLeast take: counts, sizes
// and durations.
type Number interface {
	~int | ~int32 | ~int64 | ~uint16
}

// Positive returns an option that sets field(c) to v, which must be more
// than zero.
func Positive[C any, N Number](name string, v N, field func(*C) *N) func(*C) error {
	return Set(name, v, v <= 0, "must be positive, got "+fmt.Sprint(v), field)
}

// NotNegative returns an option that sets field(c) to v, which must not
// be less than zero.
func NotNegative[C any, N Number](name string, v N, field func(*C) *N) func(*C) error {
	return Set(name, v, v < 0, "must not be negative, got "+fmt.Sprint(v), field)
}

// AtLeast returns an option that sets field(c) to v, which must not be
// less than least.
func AtLeast[C any, N Number](name string, v, least N, field func(*C) *N) func(*C) error {
	return Set(name, v, v < least, "must be at least "+fmt.Sprint(least)+", got "+fmt.Sprint(v), field)
}

// NotEmpty returns an option that sets field(c) to v, which must not be
// empty.
func NotEmpty[C any](name, v string, field func(*C) *string) func(*C) error {
	return Set(name, v, v == "", "must not be empty", field)
}

// NotNil returns an option that sets field(c) to v, which must not be nil;
// what names the value in the error ("the logger must not be nil").
func NotNil[C, T any](name, what string, v *T, field func(*C) **T) func(*C) error {
	return Set(name, v, v == nil, what+" must not be nil", field)
}

// maxIdent is the longest SQL identifier: PostgreSQL's NAMEDATALEN-1.
const maxIdent = 63

// SQLTable checks the table name given to the option (or constructor)
// named name: one SQL identifier (an ASCII letter or underscore, then
// letters, digits and underscores, at most 63 bytes) or, if qualified,
// two joined by a dot (schema.table). Anything else, spaces, quotes and
// semicolons included, is refused with an error wrapping
// eventkit.ErrInvalidOption that names the option and the table; nil
// otherwise.
func SQLTable(name, table string, qualified bool) error {
	parts := []string{table}
	if qualified {
		if schema, rest, ok := strings.Cut(table, "."); ok {
			parts = []string{schema, rest}
		}
	}
	for _, p := range parts {
		if !isIdent(p) {
			want := "a table name of letters, digits and underscores (not starting with a digit, at most 63 bytes)"
			if qualified {
				want += ", optionally schema-qualified"
			}
			return eventkit.InvalidOption(name, fmt.Sprintf("want %s, got %q", want, table))
		}
	}
	return nil
}

func isIdent(s string) bool {
	if s == "" || len(s) > maxIdent || ('0' <= s[0] && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
