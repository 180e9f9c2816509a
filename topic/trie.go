package topic

import (
	"strings"
	"sync"
)

// Trie maps patterns to values and finds, for a topic name, every value whose
// pattern matches. The cost of Match depends on the number of tokens in the
// name and on the patterns that match it, not on the number of patterns that
// do not. A Trie is safe for concurrent use; Match takes a read lock only.
type Trie[V comparable] struct {
	mu   sync.RWMutex
	root *node[V]
	n    int
}

type node[V comparable] struct {
	children map[string]*node[V]
	star     *node[V]
	rest     []V // values whose pattern ends in ">" here
	values   []V // values whose pattern ends here exactly
}

// NewTrie returns an empty Trie.
func NewTrie[V comparable]() *Trie[V] { return &Trie[V]{root: &node[V]{}} }

// Len returns the number of (pattern, value) entries.
func (t *Trie[V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}

// Insert adds value under pattern. The pattern must be valid
// (ValidatePattern); an invalid one is rejected with its error.
func (t *Trie[V]) Insert(pattern string, v V) error {
	if err := ValidatePattern(pattern); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.root
	for tok := range strings.SplitSeq(pattern, ".") {
		switch tok {
		case ">":
			n.rest = append(n.rest, v)
			t.n++
			return nil
		case "*":
			if n.star == nil {
				n.star = &node[V]{}
			}
			n = n.star
		default:
			if n.children == nil {
				n.children = make(map[string]*node[V])
			}
			c := n.children[tok]
			if c == nil {
				c = &node[V]{}
				n.children[tok] = c
			}
			n = c
		}
	}
	n.values = append(n.values, v)
	t.n++
	return nil
}

// Remove deletes one entry of value under pattern and reports whether it was
// there. Empty branches are pruned.
func (t *Trie[V]) Remove(pattern string, v V) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	toks := strings.Split(pattern, ".")
	ok := remove(t.root, toks, v)
	if ok {
		t.n--
	}
	return ok
}

func remove[V comparable](n *node[V], toks []string, v V) bool {
	if n == nil {
		return false
	}
	if len(toks) == 0 {
		return removeValue(&n.values, v)
	}
	tok := toks[0]
	switch tok {
	case ">":
		return len(toks) == 1 && removeValue(&n.rest, v)
	case "*":
		ok := remove(n.star, toks[1:], v)
		if ok && n.star.empty() {
			n.star = nil
		}
		return ok
	default:
		c := n.children[tok]
		ok := remove(c, toks[1:], v)
		if ok && c.empty() {
			delete(n.children, tok)
		}
		return ok
	}
}

func removeValue[V comparable](s *[]V, v V) bool {
	for i, x := range *s {
		if x == v {
			*s = append((*s)[:i], (*s)[i+1:]...)
			return true
		}
	}
	return false
}

func (n *node[V]) empty() bool {
	return len(n.children) == 0 && n.star == nil && len(n.rest) == 0 && len(n.values) == 0
}

// Match appends to dst every value whose pattern matches name and returns
// the extended slice. A value inserted under several matching patterns
// appears once per pattern.
func (t *Trie[V]) Match(name string, dst []V) []V {
	t.mu.RLock()
	dst = match(t.root, name, dst)
	t.mu.RUnlock()
	return dst
}

func match[V comparable](n *node[V], name string, dst []V) []V {
	// name is the remaining, non-empty suffix of the topic.
	tok, rest, more := strings.Cut(name, ".")
	if len(n.rest) > 0 {
		dst = append(dst, n.rest...)
	}
	if c := n.children[tok]; c != nil {
		if more {
			dst = match(c, rest, dst)
		} else {
			dst = append(dst, c.values...)
		}
	}
	if n.star != nil {
		if more {
			dst = match(n.star, rest, dst)
		} else {
			dst = append(dst, n.star.values...)
		}
	}
	return dst
}
