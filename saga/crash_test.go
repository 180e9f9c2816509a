package saga_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/saga"
)

// The crash tests run the order saga in a child process on a database
// store, SIGKILL it at a chosen point, then run a new child that handles
// every event again (a transport redelivers what was not acked; here:
// everything) and fires the timers until every instance is final. The
// outbox then must hold each effect exactly once.
const (
	crashEnvBackend = "EVENTKIT_SAGA_CRASH_BACKEND"
	crashEnvPlace   = "EVENTKIT_SAGA_CRASH_PLACE"
	crashEnvHang    = "EVENTKIT_SAGA_CRASH_HANG"  // "step", "compensation" or "" (finish)
	crashEnvOnly    = "EVENTKIT_SAGA_CRASH_ONLY"  // handle only events of this type ("none": no event)
	crashEnvLater   = "EVENTKIT_SAGA_CRASH_LATER" // the child's clock runs this much ahead
	crashInstance   = 20
	crashVictim     = "o07" // odd: its payment fails, so it compensates
)

// crashEvents are the events of every instance, interleaved: all
// placements, all reservations, then the payment outcome (odd instances
// fail).
func crashEvents() []event.Event {
	var out []event.Event
	for _, typ := range []string{"order.placed", "stock.reserved", "payment"} {
		for i := range crashInstance {
			id := fmt.Sprintf("o%02d", i)
			t := typ
			if typ == "payment" {
				t = map[bool]string{true: "payment.charged", false: "payment.failed"}[i%2 == 0]
			}
			out = append(out, ev(id+"/"+t, t, id))
		}
	}
	return out
}

// crashHang makes the step or compensation "charge" hang, at the point
// named by the environment, for the victim instance, after it emitted its
// message: the parent kills the child there.
func crashHang(point, id string) {
	if point == os.Getenv(crashEnvHang)+":charge" && id == crashVictim {
		fmt.Println("HANG " + point)
		select {}
	}
}

func TestSagaCrashChild(t *testing.T) {
	name, place := os.Getenv(crashEnvBackend), os.Getenv(crashEnvPlace)
	if name == "" {
		t.Skip("helper process of the saga crash tests")
	}
	i := slices.IndexFunc(backends, func(b backend) bool { return b.name == name })
	store, _ := backends[i].open(t, place)
	later, _ := time.ParseDuration(os.Getenv(crashEnvLater))
	s := hookedOrderSaga(t, store, crashHang, saga.WithCompensationBackoff(time.Millisecond, time.Millisecond),
		saga.WithTimeout(time.Hour), saga.WithClock(func() time.Time { return time.Now().Add(later) }))
	ctx := context.Background()
	only := os.Getenv(crashEnvOnly)
	events := slices.DeleteFunc(crashEvents(), func(e event.Event) bool { return only != "" && e.Type() != only })
	for i, e := range events {
		if err := s.HandleEvent(ctx, e); err != nil {
			t.Fatalf("HandleEvent(%s): %v", e.ID(), err)
		}
		fmt.Println("HANDLED", i)
	}
	for n := 1; n > 0; {
		var err error
		if n, err = s.FireDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("DONE")
}

// crashCount returns how many times each "instance type" message is in
// the outbox.
func crashCount(t *testing.T, ob outbox.Store) map[string]int {
	t.Helper()
	ctx := context.Background()
	parts, err := ob.Claim(ctx, "counter", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var cursors []outbox.Cursor
	for _, p := range parts {
		cursors = append(cursors, outbox.Cursor{Partition: p})
	}
	recs, err := ob.Fetch(ctx, cursors, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, r := range recs {
		counts[fmt.Sprint(r.Event.Extensions()["correlationid"], " ", r.Event.Type())]++
	}
	return counts
}

func crashCheck(t *testing.T, b backend, place string, timedOut bool) {
	t.Helper()
	store, ob := b.open(t, place)
	counts := crashCount(t, ob)
	want := 0
	for i := range crashInstance {
		id := fmt.Sprintf("o%02d", i)
		effects := []string{"stock.reserve", "payment.charge", "order.confirm"}
		status := saga.Completed
		switch {
		case timedOut:
			effects, status = []string{"stock.reserve", "stock.release"}, saga.Compensated
		case i%2 == 1:
			effects = []string{"stock.reserve", "payment.charge", "payment.refund", "stock.release"}
			status = saga.Compensated
		}
		for _, typ := range effects {
			if n := counts[id+" "+typ]; n != 1 {
				t.Errorf("%s %s is %d times in the outbox; want exactly once", id, typ, n)
			}
		}
		want += len(effects)
		rec, err := store.Load(context.Background(), "orders", id)
		if err != nil || rec.Status != status {
			t.Errorf("instance %s: %s, %v; want %s", id, rec.Status, err, status)
		}
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != want {
		t.Errorf("the outbox holds %d messages; want %d: %v", total, want, counts)
	}
}

// crashRun runs a child on the backend's place with env added; with line
// set, it waits for that line and kills the child; else it waits for the
// child to finish.
func crashRun(t *testing.T, b backend, place, line string, env ...string) {
	t.Helper()
	env = append(env, crashEnvBackend+"="+b.name, crashEnvPlace+"="+place)
	child := eventkittest.StartChild(t, "^TestSagaCrashChild$", env...)
	if line == "" {
		child.WaitLine(t, "DONE", 2*time.Minute)
		if err := child.Wait(); err != nil {
			t.Fatalf("the finishing child failed: %v", err)
		}
		return
	}
	child.WaitLine(t, line, 2*time.Minute)
	if err := child.Kill(); err != nil {
		t.Fatal(err)
	}
}

// crashKill is one child killed: its environment and the line it is
// killed at.
type crashKill struct {
	env, line string
}

// TestCrashResumes kills a child mid-step, mid-compensation, three times
// at points that the test does not choose (after some events, while the
// child goes on), and after it started instances whose deadline a later
// child fires; a new child then finishes, and each effect is in the outbox
// once.
func TestCrashResumes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range []struct {
				name   string
				kills  []crashKill
				finish []string // environment of the finishing child
			}{
				{name: "MidStep", kills: []crashKill{{crashEnvHang + "=step", "HANG step:charge"}}},
				{name: "MidCompensation", kills: []crashKill{{crashEnvHang + "=compensation", "HANG compensation:charge"}}},
				{name: "Anywhere", kills: []crashKill{{"", "HANDLED 5"}, {"", "HANDLED 23"}, {"", "HANDLED 47"}}},
				{name: "Deadline", kills: []crashKill{{crashEnvOnly + "=order.placed", "HANDLED 19"}},
					finish: []string{crashEnvOnly + "=none", crashEnvLater + "=2h"}},
			} {
				t.Run(c.name, func(t *testing.T) {
					place := b.place(t)
					for _, k := range c.kills {
						crashRun(t, b, place, k.line, k.env)
					}
					if c.name == "MidCompensation" {
						store, _ := b.open(t, place)
						if rec, err := store.Load(context.Background(), "orders", crashVictim); err != nil || rec.Status != saga.Compensating {
							t.Fatalf("victim after the kill: %s, %v; want compensating", rec.Status, err)
						}
					}
					crashRun(t, b, place, "", c.finish...)
					crashCheck(t, b, place, c.finish != nil)
				})
			}
		})
	}
}
