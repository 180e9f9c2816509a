package topic

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	names := map[string]bool{
		"orders":                 true,
		"orders.eu.created":      true,
		"a-b_c:d@e.0":            true,
		"":                       false,
		".orders":                false,
		"orders.":                false,
		"orders..created":        false,
		"orders.*":               false,
		"orders.>":               false,
		"orders eu":              false,
		"orders/eu":              false,
		"ordérs":                 false,
		strings.Repeat("a", 256): false,
	}
	for s, ok := range names {
		err := ValidateName(s)
		if (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", s, err, ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%q) error %v does not wrap ErrInvalid", s, err)
		}
	}
	patterns := map[string]bool{
		"orders.*":         true,
		"orders.>":         true,
		"*.*.created":      true,
		">":                true,
		"*":                true,
		"orders.>.created": false,
		"orders.**":        false,
		"orders.a>":        false,
		"orders..*":        false,
	}
	for s, ok := range patterns {
		if err := ValidatePattern(s); (err == nil) != ok {
			t.Errorf("ValidatePattern(%q) = %v, want ok=%v", s, err, ok)
		}
	}
	err := ValidatePattern("orders.>.x")
	var te *Error
	if !errors.As(err, &te) || te.Token != 1 {
		t.Fatalf("error %v should name token 2", err)
	}
	if !strings.Contains(err.Error(), "token 2") {
		t.Fatalf("error message %q should name the token", err)
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"orders", "orders", true},
		{"orders", "orders.eu", false},
		{"orders.*", "orders.eu", true},
		{"orders.*", "orders", false},
		{"orders.*", "orders.eu.created", false},
		{"orders.>", "orders.eu", true},
		{"orders.>", "orders.eu.created", true},
		{"orders.>", "orders", false},
		{"*.eu.*", "orders.eu.created", true},
		{"*.eu.*", "orders.us.created", false},
		{">", "a", true},
		{">", "a.b.c", true},
		{"*", "a", true},
		{"*", "a.b", false},
		{"orders.eu", "orders.euro", false},
		{"orders.euro", "orders.eu", false},
	}
	for _, c := range cases {
		if got := Match(c.pattern, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
		if got := Regexp(c.pattern).MatchString(c.name); got != c.want {
			t.Errorf("Regexp(%q).MatchString(%q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestBrokerSyntax(t *testing.T) {
	if got := ToMQTT("orders.*.created.>"); got != "orders/+/created/#" {
		t.Errorf("ToMQTT = %q", got)
	}
	if got := FromMQTT("orders/eu/created"); got != "orders.eu.created" {
		t.Errorf("FromMQTT = %q", got)
	}
	if got := ToAMQP("orders.*.>"); got != "orders.*.#" {
		t.Errorf("ToAMQP = %q", got)
	}
	if IsPattern("orders.eu") || !IsPattern("orders.*") || !IsPattern("a.>") {
		t.Errorf("IsPattern wrong")
	}
}

func TestTrie(t *testing.T) {
	tr := NewTrie[string]()
	for _, p := range []string{"orders.*", "orders.>", "orders.eu.created", "*.eu.*", ">", "payments.>"} {
		if err := tr.Insert(p, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Insert("bad..pattern", "x"); err == nil {
		t.Fatal("Insert accepted an invalid pattern")
	}
	got := tr.Match("orders.eu.created", nil)
	slices.Sort(got)
	want := []string{"*.eu.*", ">", "orders.>", "orders.eu.created"}
	if !slices.Equal(got, want) {
		t.Fatalf("Match = %v, want %v", got, want)
	}
	if !tr.Remove("orders.>", "orders.>") || tr.Remove("orders.>", "orders.>") {
		t.Fatal("Remove should succeed once")
	}
	if tr.Len() != 5 {
		t.Fatalf("Len = %d", tr.Len())
	}
	got = tr.Match("orders.eu", nil)
	slices.Sort(got)
	if !slices.Equal(got, []string{">", "orders.*"}) {
		t.Fatalf("Match after Remove = %v", got)
	}
}

// TestTrieAgreesWithMatch checks the trie against Match on random patterns
// and names.
func TestTrieAgreesWithMatch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	toks := []string{"a", "b", "c"}
	gen := func(pattern bool) string {
		n := 1 + r.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = toks[r.IntN(len(toks))]
			if pattern {
				switch r.IntN(5) {
				case 0:
					parts[i] = "*"
				case 1:
					if i == n-1 {
						parts[i] = ">"
					}
				}
			}
		}
		return strings.Join(parts, ".")
	}
	tr := NewTrie[int]()
	var pats []string
	for i := 0; i < 200; i++ {
		p := gen(true)
		pats = append(pats, p)
		if err := tr.Insert(p, i); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2000; i++ {
		name := gen(false)
		got := tr.Match(name, nil)
		slices.Sort(got)
		var want []int
		for j, p := range pats {
			if Match(p, name) {
				want = append(want, j)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("name %q: trie %v, Match %v", name, got, want)
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"a.b", "a.*", "a.>", "", "..", "a.>.b", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nameErr := ValidateName(s)
		patErr := ValidatePattern(s)
		if nameErr == nil && patErr != nil {
			t.Fatalf("%q is a valid name but not a valid pattern: %v", s, patErr)
		}
		if nameErr == nil && !Match(s, s) {
			t.Fatalf("valid name %q does not match itself", s)
		}
		if patErr == nil {
			tr := NewTrie[int]()
			if err := tr.Insert(s, 1); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// BenchmarkTrieMatch shows that match cost does not grow with the number of
// patterns that do not match.
func BenchmarkTrieMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 100000} {
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			tr := NewTrie[int]()
			for i := 0; i < n; i++ {
				_ = tr.Insert(fmt.Sprintf("svc%d.*.created", i), i)
			}
			_ = tr.Insert("orders.>", -1)
			var dst []int
			b.ReportAllocs()
			for b.Loop() {
				dst = tr.Match("orders.eu.created", dst[:0])
			}
		})
	}
}
