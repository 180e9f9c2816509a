package main

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Everything the CLI prints for people may come from a producer (an
// event's attributes and data, a server's answer, a file's name): a
// terminal must show it, not act on it. printable and printableJSON escape
// what a terminal could take for a command.

// isBidiControl reports the Unicode bidirectional formatting characters,
// which reorder what follows them on screen ("Trojan Source").
func isBidiControl(r rune) bool {
	switch {
	case r == '\u061c', r == '\u200e', r == '\u200f':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// needsEscape reports a rune a terminal may act on instead of showing:
// the C0 controls (newline and tab included: output is one line per item),
// DEL, the C1 controls (U+0080–U+009F, which some terminals take for
// escape sequences), the bidirectional controls and the line and
// paragraph separators.
func needsEscape(r rune) bool {
	return r < 0x20 || r >= 0x7f && r <= 0x9f || isBidiControl(r) || r == '\u2028' || r == '\u2029'
}

// printable returns s with every byte that is not UTF-8 and every rune of
// needsEscape written as a Go escape (\x1b, \u202e); everything else,
// backslashes included, is unchanged.
func printable(s string) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || needsEscape(r) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case needsEscape(r):
			b.WriteString(strings.Trim(strconv.QuoteRune(r), "'"))
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

// printableJSON returns the JSON text js with the runes of needsEscape and
// the bytes that are not UTF-8 written as \u escapes (U+FFFD for the
// latter). In valid JSON such characters can only be inside strings, where
// the escapes mean the same characters, so the result decodes to the same
// value (invalid UTF-8 aside, which JSON decoders replace by U+FFFD too).
// The JSON whitespace outside strings (tab, newline, return) is kept.
func printableJSON(js string) string {
	var b strings.Builder
	b.Grow(len(js))
	for i := 0; i < len(js); {
		r, n := utf8.DecodeRuneInString(js[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\ufffd`)
		case r == '\t' || r == '\n' || r == '\r' || !needsEscape(r):
			b.WriteString(js[i : i+n])
		default:
			b.WriteString(`\u`)
			b.WriteString(hex2(byte(r >> 8)))
			b.WriteString(hex2(byte(r)))
		}
		i += n
	}
	return b.String()
}
