package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cdc"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/kafka"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// cdcDB connects to the test PostgreSQL (skipping without one), runs
// setup (a format with the unique name as %[1]s), and returns the server's
// address, the connection and the name; teardown (the same kind of format)
// runs and the connection closes at the end of t.
func cdcDB(t *testing.T, prefix, setup, teardown string) (dsn string, conn *pgx.Conn, name string) {
	t.Helper()
	dsn = eventkittest.ServerAddr(t, "EVENTKIT_POSTGRES_URL", eventkittest.DefaultPostgresURL, eventkittest.DialProbe)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	name = eventkittest.UniqueName(prefix)
	if _, err := conn.Exec(ctx, fmt.Sprintf(setup, name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(ctx, fmt.Sprintf(teardown, name)) })
	return dsn, conn, name
}

// dropSlotCommand drops the slot of name with "eventkit cdc --drop-slot",
// retried (up to 30s) while the walsender of a stopped source exits; it
// returns the last failed run's stderr, or "" once the slot is dropped.
func dropSlotCommand(dsn, name string) string {
	var stderr eventkittest.SyncBuffer
	for i := 0; i < 300; i++ {
		stderr = eventkittest.SyncBuffer{}
		if run(context.Background(), []string{"cdc", "--dsn", dsn, "--name", name, "--drop-slot"}, io.Discard, &stderr) == 0 {
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "could not drop the slot: " + stderr.String()
}

func TestCDCCommandStdout(t *testing.T) {
	dsn, conn, name := cdcDB(t, "cdccli", "CREATE TABLE %[1]s_orders (id int PRIMARY KEY, total numeric(10,2)); INSERT INTO %[1]s_orders VALUES (1, 9.50)",
		"DROP TABLE IF EXISTS %s_orders")
	ctx := context.Background()
	table := name + "_orders"

	var stdout, stderr eventkittest.SyncBuffer
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		done <- run(rctx, []string{"cdc", "--dsn", dsn, "--tables", "public." + table, "--name", name,
			"--to", "stdout", "--messages", "", "--progress", "100ms", "--heartbeat", "200ms"}, &stdout, &stderr)
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("eventkit cdc exited with %d: %s", code, stderr.String())
			}
		}
	}
	defer func() {
		stop()
		// The slot retains WAL until dropped: drop it with the command.
		if msg := dropSlotCommand(dsn, name); msg != "" {
			t.Error(msg)
		}
		var n int
		conn.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", "eventkit_"+name).Scan(&n)
		if n != 0 {
			t.Errorf("slot still exists after --drop-slot")
		}
	}()

	lines := func() []string {
		var out []string
		sc := bufio.NewScanner(strings.NewReader(stdout.String()))
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		return out
	}
	// The snapshot row, then the streamed insert.
	deadline := time.Now().Add(90 * time.Second)
	inserted := false
	for len(lines()) < 2 {
		if len(lines()) == 1 && !inserted {
			if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES (2, 20.00)", table)); err != nil {
				t.Fatal(err)
			}
			inserted = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("stdout %q\nstderr %s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Wait for a progress line counting both.
	for !strings.Contains(stderr.String(), "eventkit cdc: 2 rows") {
		if time.Now().After(deadline) {
			t.Fatalf("no progress line: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	want := []struct {
		op    cdc.Op
		after string
	}{ // numeric(10,2) as Debezium's default: the unscaled 950 and 2000 in base64
		{cdc.OpRead, `{"id":1,"total":"A7Y="}`}, {cdc.OpCreate, `{"id":2,"total":"B9A="}`}}
	got := lines()
	if len(got) != 2 {
		t.Fatalf("%d lines: %q", len(got), got)
	}
	for i, line := range got {
		e, err := eventkit.UnmarshalEvent([]byte(line))
		if err != nil {
			t.Fatalf("line %d: %v: %s", i, err, line)
		}
		c, err := cdc.Decode(e.Data())
		if err != nil {
			t.Fatal(err)
		}
		if c.Op != want[i].op || string(c.After) != want[i].after || e.Subject() != "public."+table {
			t.Fatalf("line %d: op %s after %s subject %s", i, c.Op, c.After, e.Subject())
		}
	}
	if !strings.Contains(stderr.String(), "lag ") || !strings.Contains(stderr.String(), " bytes, ") {
		t.Fatalf("progress line without lag: %s", stderr.String())
	}
}

func TestCDCCommandUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"cdc"}, &out, &errb); code != 2 {
		t.Fatalf("no --dsn: exit %d, want 2 (%s)", code, errb.String())
	}
	if code := run(context.Background(), []string{"cdc", "--dsn", "postgres://x@127.0.0.1/db", "--to", "mqtt://x"}, &out, &errb); code != 2 {
		t.Fatalf("bad --to: exit %d, want 2 (%s)", code, errb.String())
	}
	for _, flag := range []string{"--decimal-handling", "--time-precision", "--binary-handling", "--interval-handling"} {
		errb.Reset()
		if code := run(context.Background(), []string{"cdc", "--dsn", "postgres://x@127.0.0.1/db", flag, "nano"}, &out, &errb); code != 2 ||
			!strings.Contains(errb.String(), `"nano"`) {
			t.Fatalf("bad %s: exit %d, want 2 (%s)", flag, code, errb.String())
		}
	}
}

func TestCDCCommandKafka(t *testing.T) {
	dsn := eventkittest.ServerAddr(t, "EVENTKIT_POSTGRES_URL", eventkittest.DefaultPostgresURL, eventkittest.DialProbe)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx := context.Background()
	_, _, name := cdcDB(t, "cdcclik", "CREATE TABLE %[1]s_orders (id int PRIMARY KEY); INSERT INTO %[1]s_orders VALUES (7)", "DROP TABLE IF EXISTS %s_orders")
	table := name + "_orders"

	sub, err := kafka.Dial(ctx, strings.Join(cluster.ListenAddrs(), ","), kafka.WithTopicCreation(1, 1, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	topic := name + ".public." + table
	s, err := sub.Subscribe(ctx, topic, eventkit.WithGroup("test"), eventkit.FromStart())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	m := cdcCommandFirst(t, dsn, name, s, topic, "--tables", table, "--messages", "",
		"--to", "kafka://"+strings.Join(cluster.ListenAddrs(), ","), "--kafka-partitions", "1", "--progress", "0")
	c, err := cdc.Decode(m.Event.Data())
	if err != nil {
		t.Fatal(err)
	}
	if c.Op != cdc.OpRead || string(c.After) != `{"id":7}` || m.Event.Subject() != "public."+table {
		t.Fatalf("got %s %s from %s", c.Op, c.After, m.Topic)
	}
}

func TestCDCCommandNATS(t *testing.T) {
	natsURL := eventkittest.ServerAddr(t, "EVENTKIT_NATS_URL", eventkittest.DefaultNATSURL, eventkittest.DialProbe)
	ctx := context.Background()
	dsn, _, name := cdcDB(t, "cdcclin", "CREATE TABLE %[1]s_orders (id int PRIMARY KEY); INSERT INTO %[1]s_orders VALUES (8)", "DROP TABLE IF EXISTS %s_orders")
	table := name + "_orders"

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tr, err := eknats.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	s, err := tr.Subscribe(ctx, name+".>", eventkit.WithGroup("test"), eventkit.FromStart())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	m := cdcCommandFirst(t, dsn, name, s, name+".>", "--tables", table, "--messages", "",
		"--to", natsURL, "--progress", "0")
	c, err := cdc.Decode(m.Event.Data())
	if err != nil {
		t.Fatal(err)
	}
	if c.Op != cdc.OpRead || string(c.After) != `{"id":8}` || m.Topic != name+".public."+table {
		t.Fatalf("got %s %s from %s", c.Op, c.After, m.Topic)
	}
}

// cdcCommandFirst runs "eventkit cdc --dsn dsn --name name args..." until s
// (subscribed to where) receives its first event, which it acks and
// returns; then it stops the command, which must exit 0, and drops the
// slot.
func cdcCommandFirst(t *testing.T, dsn, name string, s eventkit.Subscription, where string, args ...string) *eventkit.Message {
	t.Helper()
	ctx := context.Background()
	var stderr eventkittest.SyncBuffer
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(rctx, append([]string{"cdc", "--dsn", dsn, "--name", name}, args...), io.Discard, &stderr)
	}()
	defer func() {
		if msg := dropSlotCommand(dsn, name); msg != "" {
			t.Error(msg)
		}
	}()
	var m *eventkit.Message
	select {
	case m = <-s.Messages():
		_ = m.Ack()
	case <-time.After(90 * time.Second):
		t.Fatalf("nothing on %s; stderr: %s", where, stderr.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	return m
}

// TestCDCCommandConfigErrorExits: errors a retry cannot fix end the
// command at once with a clear message and exit status 1: a user without
// the REPLICATION attribute (it was retried forever, a warning every 5 s,
// and the command exited 0 when stopped), and an unknown table.
func TestCDCCommandConfigErrorExits(t *testing.T) {
	dsn, conn, name := cdcDB(t, "cdccfg",
		"CREATE TABLE %[1]s_orders (id int PRIMARY KEY); CREATE ROLE %[1]s_norepl LOGIN NOREPLICATION NOSUPERUSER; CREATE PUBLICATION eventkit_%[1]s FOR TABLE %[1]s_orders",
		"DROP PUBLICATION IF EXISTS eventkit_%[1]s; DROP TABLE IF EXISTS %[1]s_orders; DROP ROLE IF EXISTS %[1]s_norepl")
	ctx := context.Background()
	table, role := name+"_orders", name+"_norepl"
	user := conn.Config().User
	noRepl := strings.Replace(dsn, "://"+user+"@", "://"+role+"@", 1)
	if !strings.Contains(noRepl, role) {
		t.Skipf("cannot set the user of %s", dsn)
	}
	for _, c := range []struct {
		what string
		args []string
		want []string
	}{
		{"no REPLICATION attribute", []string{"--dsn", noRepl, "--tables", table}, []string{"42501", "REPLICATION", "not retried"}},
		{"unknown table", []string{"--dsn", dsn, "--tables", name + "_nosuch", "--publication", "eventkit_" + name + "_nosuch"}, []string{"42P01", "tables", "not retried"}},
	} {
		var stderr eventkittest.SyncBuffer
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		start := time.Now()
		code := run(rctx, append([]string{"cdc", "--name", name, "--progress", "0"}, c.args...), io.Discard, &stderr)
		expired := rctx.Err() != nil
		cancel()
		if code != 1 || expired {
			t.Errorf("%s: exit %d after %v (context expired: %v), want 1 at once; stderr: %s", c.what, code, time.Since(start), expired, stderr.String())
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%s: stderr does not mention %q: %s", c.what, w, stderr.String())
			}
		}
	}
}

// TestCDCCommandSecondRunOtherTable: a second run with the same name on
// another table streams that table (it streamed nothing before, silently:
// "initial snapshot done tables=0", the publication of the first run
// lacking the table), and says that the publication changed.
func TestCDCCommandSecondRunOtherTable(t *testing.T) {
	dsn, _, name := cdcDB(t, "cdccli2",
		"CREATE TABLE %[1]s_first (id int PRIMARY KEY); INSERT INTO %[1]s_first VALUES (1); CREATE TABLE %[1]s_second (id int PRIMARY KEY); INSERT INTO %[1]s_second VALUES (2)",
		"DROP TABLE IF EXISTS %[1]s_first, %[1]s_second")
	ctx := context.Background()
	first, second := name+"_first", name+"_second"
	defer func() {
		if msg := dropSlotCommand(dsn, name); msg != "" {
			t.Error(msg)
		}
	}()
	// runUntil runs the command on table until stdout has a line with
	// want, then stops it (it must exit 0) and returns stderr.
	runUntil := func(table, want string) string {
		var stdout, stderr eventkittest.SyncBuffer
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan int, 1)
		go func() {
			done <- run(rctx, []string{"cdc", "--dsn", dsn, "--name", name, "--tables", "public." + table,
				"--messages", "", "--progress", "0", "--heartbeat", "200ms"}, &stdout, &stderr)
		}()
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(stdout.String(), want) {
			select {
			case code := <-done:
				t.Fatalf("%s: exited %d: %s", table, code, stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no %s on stdout after 60s; stderr: %s", table, want, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("%s: exit %d: %s", table, code, stderr.String())
		}
		return stderr.String()
	}
	// The partitionkey extension names the table and the row.
	runUntil(first, first+`:{\"id\":1}"`)
	log := runUntil(second, second+`:{\"id\":2}"`)
	if !strings.Contains(log, "publication changed") || !strings.Contains(log, "added=public."+second) || !strings.Contains(log, "dropped=public."+first) {
		t.Fatalf("the change of the publication is not logged: %s", log)
	}
}
