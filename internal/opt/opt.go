// Package opt builds the functional options that check their value, in the
// shape every constructor of eventkit shares: an option is a func(*C) error
// on the constructor's configuration C, and an invalid value fails with an
// error wrapping eventkit.ErrInvalidOption that names the option.
package opt

import "github.com/eventkit/eventkit"

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
