package pipeconf

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is a problem of a definition at one place: the file, the line and
// the field (a path such as processors[2].map.function).
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// Node is a mapping of a definition with its place, for the builders of
// processor kinds: it reads fields and reports errors that name the line
// and the field.
type Node struct {
	file    string
	path    string
	n       *yaml.Node
	errs    *[]error
	used    map[string]bool
	closers *[]func() error
}

// OnClose registers release to run when the loaded pipeline is closed
// (Loaded.Close), or at once if the definition is refused: for kinds that
// hold resources (a WebAssembly runtime).
func (n *Node) OnClose(release func() error) { *n.closers = append(*n.closers, release) }

// Path returns the field path of the node.
func (n *Node) Path() string { return n.path }

// Line returns the line of the node in its file.
func (n *Node) Line() int { return n.n.Line }

// Errorf records an error about field (a key of the node, "" for the node
// itself).
func (n *Node) Errorf(field, format string, args ...any) {
	line, path := n.n.Line, n.path
	if field != "" {
		path = join(n.path, field)
		if v := n.value(field); v != nil {
			line = v.Line
		}
	}
	*n.errs = append(*n.errs, &Error{File: n.file, Line: line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// value returns the value node of key, or nil.
func (n *Node) value(key string) *yaml.Node {
	if n.n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.n.Content); i += 2 {
		if n.n.Content[i].Value == key {
			return n.n.Content[i+1]
		}
	}
	return nil
}

// Has reports whether the node has key.
func (n *Node) Has(key string) bool { return n.value(key) != nil }

// String returns the string at key ("" when absent; required: an error).
func (n *Node) String(key string, required bool) string {
	n.used[key] = true
	v := n.value(key)
	if v == nil {
		if required {
			n.Errorf("", "%s is required", key)
		}
		return ""
	}
	if v.Kind != yaml.ScalarNode {
		n.Errorf(key, "want a string")
		return ""
	}
	return v.Value
}

// Int returns the integer at key, def when absent.
func (n *Node) Int(key string, def int) int {
	s := n.String(key, false)
	if s == "" {
		return def
	}
	i, err := strconv.Atoi(s)
	if err != nil {
		n.Errorf(key, "want an integer, got %q", s)
		return def
	}
	return i
}

// Bool returns the boolean at key, false when absent.
func (n *Node) Bool(key string) bool {
	s := n.String(key, false)
	if s == "" {
		return false
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		n.Errorf(key, "want true or false, got %q", s)
	}
	return b
}

// Duration returns the duration at key (Go syntax: 50ms, 2s), def when
// absent.
func (n *Node) Duration(key string, def time.Duration) time.Duration {
	s := n.String(key, false)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		n.Errorf(key, "want a duration such as 50ms or 2s, got %q", s)
		return def
	}
	return d
}

// Strings returns the list of strings at key.
func (n *Node) Strings(key string) []string {
	n.used[key] = true
	v := n.value(key)
	if v == nil {
		return nil
	}
	if v.Kind == yaml.ScalarNode {
		return []string{v.Value}
	}
	if v.Kind != yaml.SequenceNode {
		n.Errorf(key, "want a list of strings")
		return nil
	}
	var out []string
	for _, c := range v.Content {
		if c.Kind != yaml.ScalarNode {
			n.Errorf(key, "want a list of strings")
			return nil
		}
		out = append(out, c.Value)
	}
	return out
}

// Map returns the mapping at key as a Node, nil when absent.
func (n *Node) Map(key string) *Node {
	n.used[key] = true
	v := n.value(key)
	if v == nil {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		n.Errorf(key, "want a mapping")
		return nil
	}
	return n.child(join(n.path, key), v)
}

// StringMap returns the mapping of strings at key, with the order kept.
func (n *Node) StringMap(key string) [][2]string {
	m := n.Map(key)
	if m == nil {
		return nil
	}
	var out [][2]string
	for i := 0; i+1 < len(m.n.Content); i += 2 {
		k, v := m.n.Content[i], m.n.Content[i+1]
		m.used[k.Value] = true
		if v.Kind != yaml.ScalarNode {
			m.Errorf(k.Value, "want a string")
			continue
		}
		out = append(out, [2]string{k.Value, v.Value})
	}
	return out
}

// List returns the items of the sequence at key as Nodes.
func (n *Node) List(key string) []*Node {
	n.used[key] = true
	v := n.value(key)
	if v == nil {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		n.Errorf(key, "want a list")
		return nil
	}
	var out []*Node
	for i, c := range v.Content {
		path := fmt.Sprintf("%s[%d]", join(n.path, key), i)
		if c.Kind != yaml.MappingNode {
			*n.errs = append(*n.errs, &Error{File: n.file, Line: c.Line, Field: path, Msg: "want a mapping"})
			continue
		}
		out = append(out, n.child(path, c))
	}
	return out
}

func (n *Node) child(path string, v *yaml.Node) *Node {
	return &Node{file: n.file, path: path, n: v, errs: n.errs, used: map[string]bool{}, closers: n.closers}
}

// Done reports the keys of the node that nothing read: a misspelt field
// is an error, never ignored.
func (n *Node) Done() {
	for i := 0; i+1 < len(n.n.Content); i += 2 {
		k := n.n.Content[i]
		if !n.used[k.Value] {
			*n.errs = append(*n.errs, &Error{File: n.file, Line: k.Line, Field: join(n.path, k.Value),
				Msg: "unknown field" + suggest(k.Value, n.known)})
		}
	}
}

// known returns the keys read, for suggestions.
func (n *Node) known() []string {
	var out []string
	for k := range n.used {
		out = append(out, k)
	}
	return out
}

func suggest(key string, known func() []string) string {
	best, bestD := "", 3
	for _, k := range known() {
		if d := distance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
