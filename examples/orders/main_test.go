package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOrderFlow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	s, err := run(ctx, &out, 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	if s.Placed != 10 || s.Notified != 10 || len(s.Outcome) != 10 {
		t.Fatalf("summary %+v", s)
	}
	if s.Captured+s.Declined != s.Placed {
		t.Errorf("every order is captured or declined: %+v", s)
	}
	if s.Reserved+s.Rejected != s.Captured {
		t.Errorf("every captured order is reserved or rejected: %+v", s)
	}
	if s.Refunded != s.Rejected {
		t.Errorf("every rejection is refunded: %+v", s)
	}
	if s.Declined != 2 {
		t.Errorf("orders 5 and 10 exceed the card limit: %d declined", s.Declined)
	}
	if s.Rejected == 0 {
		t.Errorf("the stock (3 books, 1 lamp, 2 chairs) cannot serve 8 orders: nothing was rejected")
	}
	if !strings.Contains(out.String(), "summary:") {
		t.Errorf("no summary printed")
	}
}
