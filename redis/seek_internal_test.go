package redis

import (
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
)

func TestGroupStart(t *testing.T) {
	for _, tc := range []struct {
		cfg  driver.Config
		want string
	}{
		{driver.Config{}, "$"},
		{driver.Config{FromStart: true}, "0"},
		{driver.Config{StartTime: time.UnixMilli(1700000000123)}, "1700000000122-18446744073709551615"},
		{driver.Config{StartTime: time.UnixMilli(0)}, "0"},
		{driver.Config{StartPosition: "1700000000123-4"}, "1700000000123-3"},
		{driver.Config{StartPosition: "1700000000123-0"}, "1700000000122-18446744073709551615"},
		{driver.Config{StartPosition: "1700000000123"}, "1700000000122-18446744073709551615"},
		{driver.Config{StartPosition: "0-1"}, "0-0"},
		{driver.Config{StartPosition: "0-0"}, "0"},
	} {
		got, err := groupStart(tc.cfg)
		if err != nil || got != tc.want {
			t.Errorf("groupStart(%+v) = %q, %v; want %q", tc.cfg, got, err, tc.want)
		}
	}
	for _, bad := range []string{"x", "1-", "-1", "1-2-3", "1.5"} {
		if _, err := groupStart(driver.Config{StartPosition: bad}); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("position %q: %v, want ErrInvalidOption", bad, err)
		}
	}
}
