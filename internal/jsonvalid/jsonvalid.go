// Package jsonvalid checks that bytes are one JSON value, as
// encoding/json.Valid does, many times faster. eventkit checks every event's
// JSON data on its hot paths (HTTP ingress, the JSON format codec).
package jsonvalid

// Valid reports whether b is exactly one JSON value (RFC 8259) with
// optional surrounding white space. It accepts what encoding/json.Valid
// accepts (strings are not checked for valid UTF-8, nesting is bounded at
// 10,000 levels as there), and FuzzValid holds it to that.
func Valid(b []byte) bool {
	var stackBuf [32]byte
	stack := stackBuf[:0] // '{' or '[' of each open container
	var ok bool
	i := 0
value:
	i = skipWS(b, i)
	if i >= len(b) {
		return false
	}
	switch b[i] {
	case '{', '[':
		if len(stack) >= maxDepth {
			return false
		}
		open := b[i]
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == open+2 { // '}' or ']'
			i++
			goto after
		}
		stack = append(stack, open)
		if open == '{' {
			goto key
		}
		goto value
	default:
		if i, ok = scanScalar(b, i); !ok {
			return false
		}
	}
after:
	i = skipWS(b, i)
	if len(stack) == 0 {
		return i == len(b)
	}
	if i >= len(b) {
		return false
	}
	switch top := stack[len(stack)-1]; b[i] {
	case ',':
		i++
		if top == '{' {
			goto key
		}
		goto value
	case top + 2: // the matching '}' or ']'
		stack = stack[:len(stack)-1]
		i++
		goto after
	}
	return false
key:
	i = skipWS(b, i)
	if i >= len(b) || b[i] != '"' {
		return false
	}
	if i, ok = scanString(b, i); !ok {
		return false
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return false
	}
	i++
	goto value
}

// scanScalar scans the string, literal or number at b[i], and returns the
// index after it.
func scanScalar(b []byte, i int) (int, bool) {
	switch b[i] {
	case '"':
		return scanString(b, i)
	case 't':
		return i + 4, hasLiteral(b, i, "true")
	case 'f':
		return i + 5, hasLiteral(b, i, "false")
	case 'n':
		return i + 4, hasLiteral(b, i, "null")
	}
	return scanNumber(b, i)
}

// maxDepth is encoding/json's bound on nesting.
const maxDepth = 10000

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// scanString scans the string starting with the quote at b[i] and returns
// the index after its closing quote.
func scanString(b []byte, i int) (int, bool) {
	for i++; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(b) {
				return 0, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 {
					return 0, false
				}
				for _, h := range b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return 0, false
					}
				}
				i += 6
			default:
				return 0, false
			}
		case c < 0x20:
			return 0, false
		default:
			i++
		}
	}
	return 0, false
}

// scanNumber scans the number starting at b[i] and returns the index after
// it.
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
