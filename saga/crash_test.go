package saga_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/saga"
	"github.com/eventkit/eventkit/sqlite"
	_ "modernc.org/sqlite"
)

// The crash tests run the order saga in a child process on an SQLite
// database, SIGKILL it at a chosen point, then run a new child that handles
// every event again (a transport redelivers what was not acked; here:
// everything) and fires the timers until every instance is final. The
// outbox then must hold each effect exactly once.
const (
	crashEnvDB    = "EVENTKIT_SAGA_CRASH_DB"
	crashEnvHang  = "EVENTKIT_SAGA_CRASH_HANG" // "step", "compensation" or "" (finish)
	crashInstance = 20
	crashVictim   = "o07" // odd: its payment fails, so it compensates
)

func crashOpen(t *testing.T, path string) (*sql.DB, *sqlite.SagaStore, *sqlite.Outbox) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ob := sqlite.NewOutbox(db, sqlite.OutboxPartitions(4))
	store := sqlite.NewSagaStore(db, ob, "")
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db, store, ob
}

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

// crashHang makes the step or compensation named by the environment hang
// for the victim instance, after it emitted its message: the parent kills
// the child there.
func crashHang(point, id string) {
	if os.Getenv(crashEnvHang) == point && id == crashVictim {
		fmt.Println("HANG " + point)
		select {}
	}
}

func TestSagaCrashChild(t *testing.T) {
	path := os.Getenv(crashEnvDB)
	if path == "" {
		t.Skip("helper process of the saga crash tests")
	}
	_, store, _ := crashOpen(t, path)
	wrapped, err := saga.New[order]("orders", store, saga.WithCompensationBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	crashSteps(t, wrapped)
	ctx := context.Background()
	for i, e := range crashEvents() {
		if err := wrapped.HandleEvent(ctx, e); err != nil {
			t.Fatalf("HandleEvent(%s): %v", e.ID(), err)
		}
		fmt.Println("HANDLED", i)
	}
	for {
		n, err := wrapped.FireDue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	fmt.Println("DONE")
}

// crashSteps adds the order saga's steps to s, with the hang points.
func crashSteps(t *testing.T, s *saga.Saga[order]) {
	t.Helper()
	emitStep := func(topic, typ string, starts, complete bool, undo string) saga.Step[order] {
		st := saga.Step[order]{Name: typ, Starts: starts,
			Do: func(_ context.Context, c *saga.Context[order], e event.Event) error {
				if typ == "" {
					return errors.New("payment failed")
				}
				c.Emit(topic, cmd(typ))
				if typ == "payment.charge" {
					crashHang("step", c.ID) // the instance's second step
				}
				if complete {
					c.Complete()
				}
				return nil
			}}
		if undo != "" {
			st.Compensate = func(_ context.Context, c *saga.Context[order]) error {
				c.Emit(topic, cmd(undo))
				crashHang("compensation", c.ID)
				return nil
			}
		}
		return st
	}
	for typ, st := range map[string]saga.Step[order]{
		"order.placed":    emitStep("stock", "stock.reserve", true, false, "stock.release"),
		"stock.reserved":  emitStep("payments", "payment.charge", false, false, "payment.refund"),
		"payment.charged": emitStep("orders", "order.confirm", false, true, ""),
		"payment.failed":  emitStep("orders", "", false, false, ""),
	} {
		if st.Name == "" {
			st.Name = "fail"
		}
		if err := s.On(typ, st); err != nil {
			t.Fatal(err)
		}
	}
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

func crashCheck(t *testing.T, path string) {
	t.Helper()
	_, store, ob := crashOpen(t, path)
	counts := crashCount(t, ob)
	want := 0
	for i := range crashInstance {
		id := fmt.Sprintf("o%02d", i)
		effects := []string{"stock.reserve", "payment.charge", "order.confirm"}
		status := saga.Completed
		if i%2 == 1 {
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

func crashFinish(t *testing.T, path string) {
	t.Helper()
	child := eventkittest.StartChild(t, "^TestSagaCrashChild$", crashEnvDB+"="+path)
	child.WaitLine(t, "DONE", 2*time.Minute)
	if err := child.Wait(); err != nil {
		t.Fatalf("the finishing child failed: %v", err)
	}
	crashCheck(t, path)
}

func TestCrashMidStepResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "saga.db")
	child := eventkittest.StartChild(t, "^TestSagaCrashChild$", crashEnvDB+"="+path, crashEnvHang+"=step")
	child.WaitLine(t, "HANG step", 2*time.Minute)
	if err := child.Kill(); err != nil {
		t.Fatal(err)
	}
	crashFinish(t, path)
}

func TestCrashMidCompensationResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "saga.db")
	child := eventkittest.StartChild(t, "^TestSagaCrashChild$", crashEnvDB+"="+path, crashEnvHang+"=compensation")
	child.WaitLine(t, "HANG compensation", 2*time.Minute)
	if err := child.Kill(); err != nil {
		t.Fatal(err)
	}
	_, store, _ := crashOpen(t, path)
	if rec, err := store.Load(context.Background(), "orders", crashVictim); err != nil || rec.Status != saga.Compensating {
		t.Fatalf("victim after the kill: %s, %v; want compensating", rec.Status, err)
	}
	crashFinish(t, path)
}

// TestCrashAnywhereResumes kills the child at points that the test does not
// choose (after some events, while it goes on), three times, then
// finishes.
func TestCrashAnywhereResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "saga.db")
	for _, after := range []int{5, 23, 47} {
		child := eventkittest.StartChild(t, "^TestSagaCrashChild$", crashEnvDB+"="+path)
		child.WaitLine(t, "HANDLED "+strconv.Itoa(after), 2*time.Minute)
		if err := child.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	crashFinish(t, path)
}
