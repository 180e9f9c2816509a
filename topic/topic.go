// Package topic defines eventkit's hierarchical topic names and patterns, and
// a matching trie.
//
// A topic name is a sequence of one or more tokens separated by '.', such as
// "orders.eu.created". A token is a non-empty run of ASCII letters, digits,
// '-', '_' , ':' or '@' (the characters every supported broker accepts in a
// topic or subject). A pattern is a name in which a token may be the wildcard
// "*" (exactly one token) or, as the last token only, ">" (one or more
// trailing tokens). These are the semantics of NATS subjects; each transport
// maps them onto its broker's own syntax (see ToMQTT, ToAMQP and Regexp).
package topic

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// MaxLength is the longest topic name or pattern accepted, in bytes.
const MaxLength = 255

// ErrInvalid is wrapped by every validation error of this package.
var ErrInvalid = errors.New("invalid topic")

// Error describes why a name or pattern is invalid.
type Error struct {
	Input  string // the name or pattern that was checked
	Token  int    // 0-based index of the offending token, or -1
	Reason string
}

func (e *Error) Error() string {
	if e.Token >= 0 {
		return fmt.Sprintf("invalid topic %q: token %d: %s", e.Input, e.Token+1, e.Reason)
	}
	return fmt.Sprintf("invalid topic %q: %s", e.Input, e.Reason)
}

// Unwrap returns ErrInvalid, so that errors.Is(err, ErrInvalid) holds.
func (e *Error) Unwrap() error { return ErrInvalid }

// ValidateName reports whether s is a valid topic name (no wildcards).
func ValidateName(s string) error { return validate(s, false) }

// ValidatePattern reports whether s is a valid pattern: a name in which tokens
// may be "*" and the last token may be ">".
func ValidatePattern(s string) error { return validate(s, true) }

// IsPattern reports whether s contains a wildcard token.
func IsPattern(s string) bool {
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "*" || tok == ">" {
			return true
		}
	}
	return false
}

func validate(s string, pattern bool) error {
	if s == "" {
		return &Error{Input: s, Token: -1, Reason: "empty"}
	}
	if len(s) > MaxLength {
		return &Error{Input: s, Token: -1, Reason: fmt.Sprintf("longer than %d bytes", MaxLength)}
	}
	i, start := 0, 0
	for pos := 0; pos <= len(s); pos++ {
		if pos < len(s) && s[pos] != '.' {
			continue
		}
		tok := s[start:pos]
		last := pos == len(s)
		switch {
		case tok == "":
			return &Error{Input: s, Token: i, Reason: "empty token (leading, trailing or double '.')"}
		case tok == "*" || tok == ">":
			if !pattern {
				return &Error{Input: s, Token: i, Reason: fmt.Sprintf("wildcard %q is not allowed in a topic name", tok)}
			}
			if tok == ">" && !last {
				return &Error{Input: s, Token: i, Reason: `">" must be the last token`}
			}
		default:
			for j := 0; j < len(tok); j++ {
				if !validChar(tok[j]) {
					return &Error{Input: s, Token: i, Reason: fmt.Sprintf("character %q is not allowed (use letters, digits, '-', '_', ':', '@')", rune(tok[j]))}
				}
			}
		}
		i++
		start = pos + 1
	}
	return nil
}

func validChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == ':' || c == '@'
}

// Match reports whether the topic name matches pattern. Both are assumed
// valid; an invalid input simply does not match.
func Match(pattern, name string) bool {
	for {
		pi := strings.IndexByte(pattern, '.')
		ni := strings.IndexByte(name, '.')
		var ptok, ntok string
		if pi < 0 {
			ptok = pattern
		} else {
			ptok = pattern[:pi]
		}
		if ni < 0 {
			ntok = name
		} else {
			ntok = name[:ni]
		}
		if ptok == ">" {
			return ntok != ""
		}
		if ptok != "*" && ptok != ntok {
			return false
		}
		if pi < 0 || ni < 0 {
			return pi < 0 && ni < 0
		}
		pattern, name = pattern[pi+1:], name[ni+1:]
	}
}

// ToMQTT maps a pattern to an MQTT topic filter: '.' becomes '/', "*" becomes
// "+" and ">" becomes "#".
func ToMQTT(pattern string) string {
	toks := strings.Split(pattern, ".")
	for i, t := range toks {
		switch t {
		case "*":
			toks[i] = "+"
		case ">":
			toks[i] = "#"
		}
	}
	return strings.Join(toks, "/")
}

// FromMQTT maps an MQTT topic name back to an eventkit topic name.
func FromMQTT(name string) string { return strings.ReplaceAll(name, "/", ".") }

// ToAMQP maps a pattern to an AMQP topic-exchange binding key: "*" stays "*",
// ">" becomes "#". Note that AMQP's "#" also matches zero tokens; subscribers
// that need NATS semantics exactly should filter with Match as well.
func ToAMQP(pattern string) string {
	if strings.HasSuffix(pattern, ">") {
		return pattern[:len(pattern)-1] + "#"
	}
	return pattern
}

// Regexp returns an anchored regular expression that matches exactly the
// names the pattern matches (used for brokers such as Kafka that subscribe by
// regular expression).
func Regexp(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i, t := range strings.Split(pattern, ".") {
		if i > 0 {
			b.WriteString(`\.`)
		}
		switch t {
		case "*":
			b.WriteString(`[^.]+`)
		case ">":
			b.WriteString(`[^.]+(\.[^.]+)*`)
		default:
			b.WriteString(regexp.QuoteMeta(t))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}
