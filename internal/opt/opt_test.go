package opt_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/opt"
)

type conf struct {
	n    int
	d    time.Duration
	s    string
	p    *int
	seen bool
}

// TestChecks: each check sets its field when the value is valid, and
// otherwise fails with ErrInvalidOption naming the option and the value,
// leaving the field as it was.
func TestChecks(t *testing.T) {
	one := 1
	for _, c := range []struct {
		name string
		o    func(*conf) error
		ok   bool
		want string // in the error
	}{
		{"Positive", opt.Positive("x.N", 3, func(c *conf) *int { return &c.n }), true, ""},
		{"Positive/0", opt.Positive("x.N", 0, func(c *conf) *int { return &c.n }), false, "x.N: must be positive, got 0"},
		{"Positive/duration", opt.Positive("x.D", -time.Second, func(c *conf) *time.Duration { return &c.d }), false, "x.D: must be positive, got -1s"},
		{"NotNegative", opt.NotNegative("x.N", 2, func(c *conf) *int { return &c.n }), true, ""},
		{"NotNegative/-1", opt.NotNegative("x.N", -1, func(c *conf) *int { return &c.n }), false, "must not be negative, got -1"},
		{"AtLeast", opt.AtLeast("x.D", time.Second, time.Second, func(c *conf) *time.Duration { return &c.d }), true, ""},
		{"AtLeast/less", opt.AtLeast("x.D", time.Millisecond, time.Second, func(c *conf) *time.Duration { return &c.d }), false, "must be at least 1s, got 1ms"},
		{"NotEmpty", opt.NotEmpty("x.S", "a", func(c *conf) *string { return &c.s }), true, ""},
		{"NotEmpty/empty", opt.NotEmpty("x.S", "", func(c *conf) *string { return &c.s }), false, "x.S: must not be empty"},
		{"NotNil", opt.NotNil("x.P", "the pointer", &one, func(c *conf) **int { return &c.p }), true, ""},
		{"NotNil/nil", opt.NotNil("x.P", "the pointer", nil, func(c *conf) **int { return &c.p }), false, "x.P: the pointer must not be nil"},
		{"Check", opt.Check("x.C", false, "", func(c *conf) { c.seen = true }), true, ""},
		{"Check/invalid", opt.Check("x.C", true, "because", func(c *conf) { c.seen = true }), false, "x.C: because"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cf conf
			err := c.o(&cf)
			if c.ok {
				if err != nil || cf == (conf{}) {
					t.Fatalf("err %v, config %+v: want the field set", err, cf)
				}
				return
			}
			if !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v: want ErrInvalidOption with %q", err, c.want)
			}
			if cf != (conf{}) {
				t.Fatalf("config %+v set by an invalid option", cf)
			}
		})
	}
}

// TestSQLTable: only plain identifiers (schema-qualified if allowed) pass.
func TestSQLTable(t *testing.T) {
	for _, ok := range []string{"t", "_t1", "Events_2", strings.Repeat("a", 63)} {
		if err := opt.SQLTable("x.Table", ok, false); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	if err := opt.SQLTable("x.Table", "s1.t", true); err != nil {
		t.Errorf("qualified: %v", err)
	}
	for _, bad := range []string{"", "1t", "t-1", "t t", `t"`, "t;drop table x", "s.t", strings.Repeat("a", 64), "é"} {
		err := opt.SQLTable("x.Table", bad, false)
		if !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), "x.Table") || !strings.Contains(err.Error(), strconv.Quote(bad)) {
			t.Errorf("%q: %v, want ErrInvalidOption naming the option and the table", bad, err)
		}
	}
	for _, bad := range []string{"a.b.c", ".t", "s.", "s.t;"} {
		if err := opt.SQLTable("x.Table", bad, true); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("qualified %q: %v, want ErrInvalidOption", bad, err)
		}
	}
}
