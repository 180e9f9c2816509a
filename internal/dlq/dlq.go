// Package dlq holds what the dead-letter writers of eventkit share
// (middleware.DeadLetter and the projections of package es).
package dlq

import "strings"

// Clip returns s as a valid CloudEvents String of at most max bytes: valid
// UTF-8, control characters replaced by spaces (a multi-line error, such as
// a schema's, would make the dead letter invalid), cut at a rune boundary.
func Clip(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && (s[cut]&0xC0) == 0x80 { // do not split a rune
		cut--
	}
	return s[:cut]
}
