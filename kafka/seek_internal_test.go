package kafka

import (
	"errors"
	"reflect"
	"testing"

	"github.com/eventkit/eventkit"
)

func TestParsePositions(t *testing.T) {
	got, err := parsePositions("0:5, 3:0,orders.eu/2:17,a/b/1:2")
	want := []partOffset{{"", 0, 5}, {"", 3, 0}, {"orders.eu", 2, 17}, {"a/b", 1, 2}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parsePositions = %v, %v; want %v", got, err, want)
	}
	if at, ok := lookupPosition(append(want, partOffset{"orders.eu", 0, 9}), "orders.eu", 0); !ok || at != 9 {
		t.Errorf("a topic's own item: %d, %v; want 9", at, ok)
	}
	if at, ok := lookupPosition(want, "other", 0); !ok || at != 5 {
		t.Errorf("an item of every topic: %d, %v; want 5", at, ok)
	}
	if _, ok := lookupPosition(want, "other", 2); ok {
		t.Error("partition 2 of another topic is listed")
	}
	// The strings a values hands out stay as they were while it grows.
	var v values
	got1, got2 := v.position(3, 120), v.add([]byte("id-1"))
	for range 100 {
		v.position(7, 1<<40)
	}
	if got1 != "3:120" || got2 != "id-1" || v.position(0, 0) != "0:0" {
		t.Errorf("values: %q, %q, %q", got1, got2, v.position(0, 0))
	}
	for _, bad := range []string{"", "5", "a:1", "1:a", "-1:0", "1:-1", "1:2,", "/1:2", "t/", "1:2:3"} {
		if _, err := parsePositions(bad); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("parsePositions(%q): %v, want ErrInvalidOption", bad, err)
		}
	}
}
