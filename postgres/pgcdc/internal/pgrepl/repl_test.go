package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/postgres/internal/pgtest"
	"github.com/jackc/pgx/v5/pgconn"
)

func sqlConn(t *testing.T, dsn string) *pgconn.PgConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func mustExec(t *testing.T, c *pgconn.PgConn, sql string) []*pgconn.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Exec(ctx, sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return res
}

// setup creates a table and a publication for it, and a replication
// connection with a slot that is dropped at the end of the test.
func setup(t *testing.T, params map[string]string) (dsn, table, pub, slot string, sq *pgconn.PgConn, rc *Conn, info Slot) {
	t.Helper()
	dsn = pgtest.URL(t)
	sq = sqlConn(t, dsn)
	table = eventkittest.UniqueName("pgrepl_t_")
	pub = eventkittest.UniqueName("pgrepl_p_")
	slot = eventkittest.UniqueName("pgrepl_s_")
	mustExec(t, sq, fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, note text)", table))
	mustExec(t, sq, fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s", pub, table))
	t.Cleanup(func() {
		c := sqlConn(t, dsn)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// The walsender may still be exiting: retry until the slot is inactive.
		for i := 0; i < 100; i++ {
			_, err := c.Exec(ctx, fmt.Sprintf("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '%s'", slot)).ReadAll()
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.Exec(ctx, fmt.Sprintf("DROP PUBLICATION IF EXISTS %s; DROP TABLE IF EXISTS %s", pub, table)).ReadAll()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	rc, err = Connect(ctx, dsn, params)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close(context.Background()) })
	sys, err := rc.IdentifySystem(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sys.SystemID == "" || sys.XLogPos == 0 || sys.DBName == "" || sys.Timeline < 1 {
		t.Fatalf("IdentifySystem = %+v", sys)
	}
	info, err = rc.CreateSlot(ctx, slot, "pgoutput", SlotOptions{Snapshot: ExportSnapshot})
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != slot || info.ConsistentPoint == 0 || info.SnapshotName == "" || info.OutputPlugin != "pgoutput" {
		t.Fatalf("CreateSlot = %+v", info)
	}
	return
}

// collect receives pgoutput messages until stop returns true.
// startStream starts replication from slot with o, within a context that
// ends after 30 s; the stream is closed when the test ends.
func startStream(t *testing.T, rc *Conn, slot string, o PgoutputOptions) (context.Context, *Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	s, err := rc.StartReplication(ctx, slot, 0, o.Args())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return ctx, s
}

func collect(t *testing.T, s *Stream, stop func(any) bool) []any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var d Decoder
	var out []any
	for {
		m, err := s.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv: %v (after %d messages)", err, len(out))
		}
		x, ok := m.(*XLogData)
		if !ok {
			continue
		}
		msg, err := d.Decode(x.Data)
		if err != nil {
			t.Fatalf("Decode(%x): %v", x.Data, err)
		}
		out = append(out, msg)
		if stop(msg) {
			return out
		}
	}
}

func kinds(ms []any) string {
	var b strings.Builder
	for _, m := range ms {
		b.WriteString(strings.TrimPrefix(fmt.Sprintf("%T ", m), "*pgrepl."))
	}
	return strings.TrimSpace(b.String())
}

func TestReplicationV1(t *testing.T) {
	_, table, pub, slot, sq, rc, info := setup(t, nil)
	// The exported snapshot can be imported while the replication
	// connection runs no other command.
	mustExec(t, sq, "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '"+info.SnapshotName+"'; COMMIT")

	ctx, s := startStream(t, rc, slot, PgoutputOptions{ProtoVersion: 1, Publications: []string{pub}, Messages: true})
	for _, sql := range []string{`BEGIN;
		INSERT INTO %[1]s VALUES (1, 'a');
		UPDATE %[1]s SET note = 'b' WHERE id = 1;
		UPDATE %[1]s SET id = 2 WHERE id = 1;
		SELECT pg_logical_emit_message(true, 'tx', 'in tx');
		DELETE FROM %[1]s WHERE id = 2;
		COMMIT`,
		`SELECT pg_logical_emit_message(false, 'nontx', '\x00ff'::bytea)`,
		`ALTER TABLE %[1]s REPLICA IDENTITY FULL`,
		`INSERT INTO %[1]s VALUES (3, 'c')`,
		`UPDATE %[1]s SET note = 'd' WHERE id = 3`,
		`TRUNCATE %[1]s`,
	} {
		mustExec(t, sq, strings.ReplaceAll(sql, "%[1]s", table))
	}
	var commits int
	msgs := collect(t, s, func(m any) bool {
		if _, ok := m.(*Commit); ok {
			commits++
		}
		return commits == 4
	})
	// The server sends a Relation before the first change of a table and
	// again whenever its cache entry was invalidated (concurrent DDL
	// anywhere can do that): compare the other messages in order.
	var rels []*Relation
	var ms []any
	for _, m := range msgs {
		if r, ok := m.(*Relation); ok {
			rels = append(rels, r)
			continue
		}
		ms = append(ms, m)
	}
	want := "Begin Insert Update Update Message Delete Commit Message " +
		"Begin Insert Commit Begin Update Commit Begin Truncate Commit"
	if got := kinds(ms); got != want {
		t.Fatalf("messages:\n got %s\nwant %s", got, want)
	}
	if _, ok := msgs[1].(*Relation); !ok {
		t.Fatalf("second message %T, want the Relation", msgs[1])
	}
	rel := rels[0]
	if rel.Namespace != "public" || rel.Name != table || rel.ReplicaIdentity != 'd' || len(rel.Columns) != 2 ||
		!rel.Columns[0].Key || rel.Columns[0].Name != "id" || rel.Columns[0].TypeOID != 23 || rel.Columns[1].Key || rel.Columns[1].TypeOID != 25 {
		t.Fatalf("Relation = %+v", rel)
	}
	if ins := ms[1].(*Insert); ins.RelationOID != rel.OID || string(ins.New[0].Data) != "1" || string(ins.New[1].Data) != "a" {
		t.Fatalf("Insert = %+v", ins)
	}
	if u := ms[2].(*Update); u.OldKind != 0 || string(u.New[1].Data) != "b" {
		t.Fatalf("Update (default identity, same key) = %+v", u)
	}
	if u := ms[3].(*Update); u.OldKind != 'K' || string(u.Old[0].Data) != "1" || u.Old[1].Kind != ValueNull || string(u.New[0].Data) != "2" {
		t.Fatalf("Update (key changed) = %+v", u)
	}
	if m := ms[4].(*Message); !m.Transactional || m.Prefix != "tx" || string(m.Content) != "in tx" {
		t.Fatalf("Message = %+v", m)
	}
	if d := ms[5].(*Delete); d.OldKind != 'K' || string(d.Old[0].Data) != "2" {
		t.Fatalf("Delete = %+v", d)
	}
	begin, commit := ms[0].(*Begin), ms[6].(*Commit)
	if begin.FinalLSN != commit.CommitLSN || commit.EndLSN <= commit.CommitLSN || begin.Xid == 0 || commit.CommitTime.IsZero() {
		t.Fatalf("Begin %+v / Commit %+v", begin, commit)
	}
	if m := ms[7].(*Message); m.Transactional || m.Prefix != "nontx" || string(m.Content) != "\x00\xff" {
		t.Fatalf("non-transactional Message = %+v", m)
	}
	if last := rels[len(rels)-1]; last.ReplicaIdentity != 'f' {
		t.Fatalf("Relation after REPLICA IDENTITY FULL = %+v", last)
	}
	if u := ms[12].(*Update); u.OldKind != 'O' || string(u.Old[1].Data) != "c" || string(u.New[1].Data) != "d" {
		t.Fatalf("Update (full identity) = %+v", u)
	}
	if tr := ms[15].(*Truncate); len(tr.RelationOIDs) != 1 || tr.RelationOIDs[0] != rel.OID {
		t.Fatalf("Truncate = %+v", tr)
	}

	// Confirm everything; the slot's confirmed_flush_lsn follows.
	last := msgs[len(msgs)-1].(*Commit).EndLSN
	if err := s.SendStatus(ctx, StandbyStatus{Write: last, Flush: last, Apply: last}); err != nil {
		t.Fatal(err)
	}
	waitConfirmed(t, sq, slot, last)
}

func waitConfirmed(t *testing.T, sq *pgconn.PgConn, slot string, want LSN) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := mustExec(t, sq, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '"+slot+"'")
		if len(res[0].Rows) == 1 {
			got, err := ParseLSN(string(res[0].Rows[0][0]))
			if err == nil && got >= want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s: confirmed_flush_lsn did not reach %s: %v", slot, want, res[0].Rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReplicationV2Streaming(t *testing.T) {
	// A small logical_decoding_work_mem makes the server stream the big
	// transaction before it commits.
	_, table, pub, slot, sq, rc, _ := setup(t, map[string]string{"logical_decoding_work_mem": "64kB"})
	_, s := startStream(t, rc, slot, PgoutputOptions{ProtoVersion: 2, Publications: []string{pub}, Streaming: true})
	mustExec(t, sq, fmt.Sprintf(`BEGIN; INSERT INTO %[1]s SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g; ROLLBACK;
		BEGIN; INSERT INTO %[1]s SELECT g, repeat('y', 100) FROM generate_series(1, 5000) g; COMMIT;`, table))
	var starts, stops int
	inserts := map[uint32]int{}
	var abort *StreamAbort
	var commit *StreamCommit
	var xids = map[uint32]bool{}
	collect(t, s, func(m any) bool {
		switch m := m.(type) {
		case *StreamStart:
			starts++
			xids[m.Xid] = true
		case *StreamStop:
			stops++
		case *Insert:
			if m.Xid == 0 {
				t.Fatalf("streamed Insert without xid: %+v", m)
			}
			inserts[m.Xid]++
		case *StreamAbort:
			abort = m
		case *StreamCommit:
			commit = m
		}
		return commit != nil
	})
	if abort == nil || commit == nil || abort.Xid == commit.Xid || !xids[abort.Xid] || !xids[commit.Xid] {
		t.Fatalf("abort %+v commit %+v xids %v", abort, commit, xids)
	}
	// The aborted transaction's tail was never streamed; the committed one
	// arrived whole.
	if starts < 2 || starts != stops || inserts[commit.Xid] != 5000 || inserts[abort.Xid] >= 5000 || commit.EndLSN <= commit.CommitLSN {
		t.Fatalf("starts %d stops %d inserts %d commit %+v", starts, stops, inserts, commit)
	}
}

func TestKeepaliveReplyAndTimer(t *testing.T) {
	// With a short wal_sender_timeout, the server asks for replies; the
	// stream must keep working across several of them.
	_, table, pub, slot, sq, rc, _ := setup(t, nil)
	mustExec(t, sq, "SELECT 1")
	ctx, s := startStream(t, rc, slot, PgoutputOptions{Publications: []string{pub}})
	// Ask the server for a keepalive: it answers a status update that
	// requests a reply.
	if err := s.SendStatus(ctx, StandbyStatus{ReplyRequested: true}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := s.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if k, ok := m.(*Keepalive); ok {
			if k.ServerWAL == 0 || k.ServerTime.IsZero() {
				t.Fatalf("keepalive %+v", k)
			}
			break
		}
	}
	mustExec(t, sq, fmt.Sprintf("INSERT INTO %s VALUES (1, 'a')", table))
	collect(t, s, func(m any) bool { _, ok := m.(*Commit); return ok })
}

func TestErrors(t *testing.T) {
	_, _, pub, slot, _, rc, _ := setup(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var pgErr *pgconn.PgError
	if _, err := rc.CreateSlot(ctx, slot, "pgoutput", SlotOptions{}); !errors.As(err, &pgErr) || pgErr.Code != "42710" {
		t.Fatalf("CreateSlot of an existing slot: %v, want duplicate_object", err)
	}
	_, err := rc.StartReplication(ctx, "no_such_slot_x", 0, PgoutputOptions{Publications: []string{pub}}.Args())
	if !errors.As(err, &pgErr) || pgErr.Code != "42704" {
		t.Fatalf("StartReplication on a missing slot: %v, want undefined_object", err)
	}
}

func TestCreateDropTemporarySlot(t *testing.T) {
	dsn := pgtest.URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := Connect(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(context.Background())
	name := eventkittest.UniqueName("pgrepl_tmp_")
	if _, err := rc.CreateSlot(ctx, name, "pgoutput", SlotOptions{Temporary: true}); err != nil {
		t.Fatal(err)
	}
	sq := sqlConn(t, dsn)
	res := mustExec(t, sq, "SELECT temporary FROM pg_replication_slots WHERE slot_name = '"+name+"'")
	if len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != "t" {
		t.Fatalf("temporary slot: %v", res[0].Rows)
	}
	if err := rc.DropSlot(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	res = mustExec(t, sq, "SELECT 1 FROM pg_replication_slots WHERE slot_name = '"+name+"'")
	if len(res[0].Rows) != 0 {
		t.Fatal("slot still exists after DropSlot")
	}
}

// TestSetTextForms: the settings that fix the text forms of values are set
// on a configuration without startup parameters, and replace what a DSN
// gave, keeping its other parameters.
func TestSetTextForms(t *testing.T) {
	cfg, err := pgconn.ParseConfig("postgres://u@127.0.0.1/db?DateStyle=SQL&application_name=app")
	if err != nil {
		t.Fatal(err)
	}
	SetTextForms(cfg)
	want := map[string]string{"DateStyle": "ISO", "TimeZone": "UTC", "IntervalStyle": "iso_8601", "extra_float_digits": "3", "application_name": "app"}
	for k, v := range want {
		if cfg.RuntimeParams[k] != v {
			t.Errorf("%s = %q, want %q", k, cfg.RuntimeParams[k], v)
		}
	}
	empty := &pgconn.Config{}
	SetTextForms(empty)
	if empty.RuntimeParams["TimeZone"] != "UTC" {
		t.Fatalf("no startup parameters: %v", empty.RuntimeParams)
	}
}
