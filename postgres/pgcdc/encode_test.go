package pgcdc

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/eventkit/eventkit/cdc"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/postgres/pgcdc/internal/pgrepl"
)

// The reference: how events were made before cdc_encode.go (a cdc.Change
// per row, its images built value by value with appendValue, encoded
// with cdc.AppendEncode, the event's attributes built one by one). The
// encoder must give the same bytes and attributes.

type refModel struct {
	o        *settings
	ceSource types.URIRef
	db       string
	txID     uint32
	txEnd    pgrepl.LSN
	txCommit time.Time
	txSeq    int
	// lastCommit is the end of the last commit (source.sequence).
	lastCommit pgrepl.LSN
}

type refEvent struct {
	topic  string
	ev     event.Event
	change cdc.Change
}

func (r *refModel) source(lsn pgrepl.LSN, schema, table string) cdc.Source {
	seq := "[null"
	if r.lastCommit != 0 {
		seq = fmt.Sprintf(`["%d"`, r.lastCommit)
	}
	return cdc.Source{
		Version: SourceVersion, Connector: "postgresql", Name: r.o.name,
		TsMs: r.txCommit.UnixMilli(), Snapshot: cdc.SnapshotFalse, DB: r.db,
		Sequence: fmt.Sprintf(`%s,"%d"]`, seq, lsn), TsUs: r.txCommit.UnixMicro(), TsNs: r.txCommit.UnixMicro() * 1000,
		Schema: schema, Table: table, TxID: int64(r.txID), LSN: int64(lsn),
	}
}

// now sets the envelope's times from ns (read back from the encoder's).
func now(c *cdc.Change, ns int64) *cdc.Change {
	c.TsMs, c.TsUs, c.TsNs = ns/1e6, ns/1000, ns
	return c
}

// image is the JSON object of a row: every column, those not in t null
// (as Debezium writes an old key).
func (r *refModel) image(rel *relInfo, t pgrepl.Tuple) []byte {
	b := []byte{'{'}
	for i, col := range rel.cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = cdc.AppendString(b, col.Name)
		b = append(b, ':')
		if i < len(t) {
			b = refValue(b, rel.convs[i], t[i])
		} else {
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}

func refValue(b []byte, conv *valueConv, v pgrepl.TupleValue) []byte {
	switch v.Kind {
	case pgrepl.ValueNull, pgrepl.ValueUnchanged, pgrepl.ValueBinary:
		return appendTupleValue(b, conv, v)
	}
	return conv.appendValue(b, string(v.Data))
}

func (r *refModel) key(rel *relInfo, t pgrepl.Tuple) string {
	if len(rel.pk) == 0 {
		return rel.subject
	}
	b := append([]byte(rel.subject), ":{"...)
	for j, i := range rel.pk {
		if j > 0 {
			b = append(b, ',')
		}
		b = cdc.AppendString(b, rel.cols[i].Name)
		b = append(b, ':')
		if i < len(t) {
			b = refValue(b, rel.convs[i], t[i])
		} else {
			b = append(b, "null"...)
		}
	}
	return string(append(b, '}'))
}

func (r *refModel) event(c *cdc.Change, subject, key string) refEvent {
	var id []byte
	id = append(id, r.o.name...)
	id = append(id, ':')
	if c.Source.Snapshot != cdc.SnapshotFalse {
		id = append(id, "snapshot:"...)
		id = pgrepl.LSN(c.Source.LSN).AppendText(id)
		id = append(id, ':')
		id = strconv.AppendInt(id, int64(r.txSeq), 10)
		r.txSeq++
	} else if c.Op == cdc.OpMessage && c.Source.TxID == 0 {
		id = pgrepl.LSN(c.Source.LSN).AppendText(id)
		id = append(id, ":m"...)
	} else {
		id = r.txEnd.AppendText(id)
		id = append(id, ':')
		id = strconv.AppendInt(id, int64(r.txSeq), 10)
		r.txSeq++
	}
	data, err := cdc.AppendEncode(nil, c)
	if err != nil {
		panic(err)
	}
	ec := &event.EventContextV1{ID: string(id), Source: r.ceSource, Type: r.o.changeType(c), DataContentType: &jsonContentType,
		Time: &types.Timestamp{Time: time.UnixMilli(c.Source.TsMs).UTC()}}
	if subject != "" {
		ec.Subject = &subject
	}
	if key != "" {
		ec.Extensions = map[string]any{"partitionkey": key}
	}
	return refEvent{topic: r.o.topicFn(c), ev: event.Event{Context: ec, DataEncoded: data}, change: *c}
}

// row is the reference event of a row change; nowNs is the ts_ns the
// encoder used (read back from its envelope).
func (r *refModel) row(op cdc.Op, lsn pgrepl.LSN, rel *relInfo, oldKind byte, old, new pgrepl.Tuple, nowNs int64) refEvent {
	c := now(&cdc.Change{Op: op, Source: r.source(lsn, rel.schema, rel.table)}, nowNs)
	if oldKind != 0 {
		c.Before = r.image(rel, old)
	}
	if new != nil {
		c.After = r.image(rel, new)
	}
	k := new
	if k == nil {
		k = old
	}
	return r.event(c, rel.subject, r.key(rel, k))
}

func sameEvent(t *testing.T, what string, gotTopic string, got event.Event, want refEvent) {
	t.Helper()
	if string(got.Data()) != string(want.ev.Data()) {
		t.Fatalf("%s: data\n got %s\nwant %s", what, got.Data(), want.ev.Data())
	}
	if gotTopic != want.topic {
		t.Fatalf("%s: topic %q, want %q", what, gotTopic, want.topic)
	}
	g, w := got.Context.(*event.EventContextV1), want.ev.Context.(*event.EventContextV1)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: context\n got %+v\nwant %+v", what, g, w)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// envChange decodes an envelope (for its ts_ms, ts_ns).
func envChange(t *testing.T, data []byte) cdc.Change {
	t.Helper()
	c, err := cdc.Decode(data)
	if err != nil {
		t.Fatalf("%v in %s", err, data)
	}
	return c
}

// testValues are text forms of values, some for their type, some not.
var testValues = []string{
	"", "0", "-", "-1", "42", "9007199254740993", "12x", "1.5", "-1.5e-07", "NaN", "Infinity", "-Infinity", "1e400",
	"t", "f", "true", "{}", "[1,2]", `{"a": [1, 2]}`, "null",
	"2024-02-29 13:14:15.123456+00", "2024-02-29 13:14:15+02", "2024-02-29 13:14:15-05", "2024-02-29 13:14:15+05:30",
	"2024-02-29 13:14:15", "0001-01-01 00:00:00+00 BC", "infinity", "-infinity", "2024-02-29", "+00", "x+00",
	`\x00ff10`, `\x`, `\xzz`, "{1,NULL,3}", `{"a b","c\"d",NULL}`, "{{1,2},{3,4}}", "[0:1]={5,6}", "{t,f}",
	`{"2024-01-01 00:00:00+00"}`, `{"\\x0102"}`, "{1,2", "{1,,2}", `{"{\"x\":1}"}`, "{1.50,NaN}",
	"customer-123", "h\"é\n", "tab\there", "back\\slash", "\x7f", "\x01", "é", "\xff\xfe", "\u2028", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	"P1Y2M3DT4H5M6S", "12:34:56", "12:34:56+02", "happy", strings.Repeat("long text ", 20), strings.Repeat("é", 40),
	"123456789012345.12345", "-0.00",
}

// testOIDs are the type OIDs the mapping knows, and some it does not.
var testOIDs = []uint32{16, 17, 20, 21, 23, 26, 114, 700, 701, 1114, 1184, 1700, 3802, 25, 1043, 1042, 19, 2950, 1082,
	1083, 1266, 1186, 869, 650, 829, 1000, 1001, 1005, 1007, 1016, 1028, 199, 3807, 1021, 1022, 1115, 1185, 1231, 1009,
	1015, 1014, 1003, 2951, 1182, 1183, 1270, 1187, 1041, 651, 1040, 0, 99999}

// TestCDCAppendTextSameAsValue checks the byte path of the value mapping
// against the string path, for every known type and many values.
func TestCDCAppendTextSameAsValue(t *testing.T) {
	for _, typ := range testOIDs {
		for _, v := range testValues {
			want := string(appendValue([]byte("x"), typ, v))
			if got := string(appendText([]byte("x"), typ, []byte(v))); got != want {
				t.Errorf("type %d, %q: got %s, want %s", typ, v, got, want)
			}
		}
	}
}

func FuzzCDCAppendText(f *testing.F) {
	for _, v := range testValues {
		f.Add(uint32(1184), v)
	}
	f.Add(uint32(23), "12")
	f.Add(uint32(25), "abc")
	f.Fuzz(func(t *testing.T, typ uint32, v string) {
		if typ%3 == 0 && len(testOIDs) > 0 {
			typ = testOIDs[int(typ/3)%len(testOIDs)]
		}
		want := string(appendValue(nil, typ, v))
		if got := string(appendText(nil, typ, []byte(v))); got != want {
			t.Fatalf("type %d, %q: got %s, want %s", typ, v, got, want)
		}
	})
}

// TestCDCArrayElem checks the array types against the map they were
// kept in before.
func TestCDCArrayElem(t *testing.T) {
	want := map[uint32]uint32{
		1000: oidBool, 1001: oidBytea, 1005: oidInt2, 1007: oidInt4, 1016: oidInt8,
		1028: oidOID, 199: oidJSON, 3807: oidJSONB, 1021: oidFloat4, 1022: oidFloat8,
		1115: oidTimestamp, 1185: oidTimestamptz, 1231: oidNumeric,
		1009: 25, 1015: 1043, 1014: 1042, 1003: 19, 2951: 2950, 1182: 1082, 1183: 1083, 1270: 1266,
		1187: 1186, 1041: 869, 651: 650, 1040: 829,
		// Added with Debezium's mapping: money[], point[], bit[], varbit[].
		791: oidMoney, 1017: oidPoint, 1561: oidBit, 1563: oidVarbit,
	}
	for typ := uint32(0); typ < 10000; typ++ {
		e, ok := arrayElem(typ)
		if we, wok := want[typ]; e != we || ok != wok {
			t.Errorf("arrayElem(%d) = %d, %v; want %d, %v", typ, e, ok, we, wok)
		}
	}
}

// testStream is a stream with no server: relations are set directly.
func testStream(tb testing.TB, opts ...Option) (*replStream, *refModel) {
	tb.Helper()
	opts = append([]Option{WithName("shop"), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	src, err := New("postgres://x@127.0.0.1/db", newCDCRecorder(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	st := newCDCStream(src, nil, "shop db")
	return st, &refModel{o: &src.opts, ceSource: src.ceSource, db: st.db}
}

func testRelation(st *replStream, oid uint32, schema, table string, cols []pgrepl.Column, pk []int) *relInfo {
	rel := st.newRelation(schema, table, cols, pk)
	st.rels[oid] = rel
	return rel
}

func tuple(vals ...any) pgrepl.Tuple {
	t := make(pgrepl.Tuple, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			t[i] = pgrepl.TupleValue{Kind: pgrepl.ValueNull}
		case byte:
			t[i] = pgrepl.TupleValue{Kind: v}
		case []byte:
			t[i] = pgrepl.TupleValue{Kind: pgrepl.ValueBinary, Data: v}
		case string:
			t[i] = pgrepl.TupleValue{Kind: pgrepl.ValueText, Data: []byte(v)}
		}
	}
	return t
}

// drain returns the events of the units handed over so far.
func (st *replStream) drainForTest() (topics []string, evs []event.Event, units []txUnit) {
	for {
		select {
		case u := <-st.units:
			for _, e := range u.events {
				topics = append(topics, u.topic)
				evs = append(evs, e)
			}
			units = append(units, u)
		default:
			return
		}
	}
}

// TestCDCEnvelopeSameAsCDCEncode drives the decoder's handling of
// pgoutput messages (no server) and compares every event with the
// reference: bytes of the data, id, attributes, topic.
func TestCDCEnvelopeSameAsCDCEncode(t *testing.T) {
	for _, custom := range []bool{false, true} {
		t.Run(fmt.Sprintf("custom=%v", custom), func(t *testing.T) {
			var seen []*cdc.Change
			var opts []Option
			if custom {
				opts = append(opts,
					WithType(func(c *cdc.Change) string { seen = append(seen, c); return "t." + string(c.Op) }),
					WithTopic(func(c *cdc.Change) string { return "x." + c.Source.Table + "." + string(c.Op) }))
			}
			st, ref := testStream(t, append(opts, WithBatch(4), WithMessagePrefixes("keep"))...)
			st.units = make(chan txUnit, 1000)
			st.free = make(chan []event.Event, 10)
			ctx := context.Background()
			cols := []pgrepl.Column{
				{Key: true, Name: "id", TypeOID: 20}, {Name: "name", TypeOID: 25}, {Name: "amount", TypeOID: 1700},
				{Name: "at", TypeOID: 1184}, {Name: "js", TypeOID: 3802}, {Name: "tags", TypeOID: 1009},
				{Name: "ok", TypeOID: 16}, {Name: "f", TypeOID: 701}, {Name: "by", TypeOID: 17}, {Name: `we"ird é`, TypeOID: 1083},
			}
			testRelation(st, 100, "public", "orders", cols, []int{0})
			testRelation(st, 200, "sales", "no key", []pgrepl.Column{{Name: "v", TypeOID: 23}}, nil)
			testRelation(st, 300, "public", "two keys", []pgrepl.Column{{Key: true, Name: "a", TypeOID: 23},
				{Key: true, Name: "b", TypeOID: 25}, {Name: "c", TypeOID: 25}}, []int{0, 1})

			row1 := tuple("1", "ada", "19.90", "2024-02-29 11:14:15.123456+00", `{"a": 1}`, `{x,"y z",NULL}`, "t", "0.1", `\x00ff`, "12:00:00")
			row2 := tuple("9007199254740993", "h\"é\n", nil, "infinity", byte(pgrepl.ValueUnchanged), "{}", "f", "NaN", []byte{1, 2}, nil)
			row3 := tuple("3", strings.Repeat("é", 50)) // shorter than the relation
			key1 := tuple("1", nil, nil, nil, nil, nil, nil, nil, nil, nil)
			commit := time.Date(2024, 2, 29, 11, 14, 15, 987654321, time.UTC)

			type step struct {
				lsn pgrepl.LSN
				msg any
			}
			steps := []step{
				{0x10, &pgrepl.Begin{FinalLSN: 0x1_0000_00F0, CommitTime: commit, Xid: 771}},
				{0x20, &pgrepl.Insert{RelationOID: 100, New: row1}},
				{0x30, &pgrepl.Insert{RelationOID: 100, New: row2}},
				{0x40, &pgrepl.Update{RelationOID: 100, New: row1}},
				{0x50, &pgrepl.Update{RelationOID: 100, OldKind: 'K', Old: key1, New: row2}},
				{0x60, &pgrepl.Update{RelationOID: 100, OldKind: 'O', Old: row1, New: row2}},
				{0x70, &pgrepl.Delete{RelationOID: 100, OldKind: 'K', Old: key1}},
				{0x80, &pgrepl.Delete{RelationOID: 100, OldKind: 'O', Old: row2}},
				{0x90, &pgrepl.Insert{RelationOID: 200, New: tuple("5")}},
				{0x98, &pgrepl.Insert{RelationOID: 100, New: row3}},
				{0xA0, &pgrepl.Insert{RelationOID: 300, New: tuple("1", "b", "c")}},
				{0xA8, &pgrepl.Delete{RelationOID: 300, OldKind: 'K', Old: tuple("1", "b", nil)}},
				{0xB0, &pgrepl.Message{Transactional: true, LSN: 0xB0, Prefix: "keep", Content: []byte("in tx")}},
				{0xB8, &pgrepl.Message{Transactional: true, LSN: 0xB8, Prefix: "drop", Content: []byte("filtered")}},
				{0xC0, &pgrepl.Truncate{RelationOIDs: []uint32{100, 200}}},
				{0xD0, &pgrepl.Commit{CommitLSN: 0x1_0000_00F0, EndLSN: 0x1_0000_0100, CommitTime: commit}},
				{0x1_0000_0200, &pgrepl.Message{LSN: 0x1_0000_0200, Prefix: "keep", Content: []byte{0, 0xff}}},
				{0x1_0000_0300, &pgrepl.Begin{FinalLSN: 0x1_0000_0400, CommitTime: commit.Add(time.Second), Xid: 772}},
				{0x1_0000_0310, &pgrepl.Insert{RelationOID: 200, New: tuple("6")}},
				{0x1_0000_0320, &pgrepl.Commit{CommitLSN: 0x1_0000_0400, EndLSN: 0x1_0000_0410, CommitTime: commit.Add(time.Second)}},
			}
			var got []event.Event
			var gotTopics []string
			var want []refEvent
			for i, s := range steps {
				if err := st.handle(ctx, s.lsn, s.msg); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				tp, evs, units := st.drainForTest()
				got, gotTopics = append(got, evs...), append(gotTopics, tp...)
				// Units hold at most the batch, of one topic; a commit or a
				// message outside transactions hands its position over at
				// once, after the events before it.
				for _, u := range units {
					if len(u.events) > 4 {
						t.Fatalf("step %d: unit of %d events", i, len(u.events))
					}
				}
				var wantPos pgrepl.LSN
				var wantTxs int64
				switch m := s.msg.(type) {
				case *pgrepl.Commit:
					wantPos, wantTxs = m.EndLSN, 1
				case *pgrepl.Message:
					if !m.Transactional {
						wantPos = m.LSN
					}
				}
				if wantPos != 0 {
					if len(units) == 0 || units[len(units)-1].pos != wantPos || units[len(units)-1].txs != wantTxs || !st.unit.empty() {
						t.Fatalf("step %d: units %+v, left %+v; want the position %s handed over", i, units, st.unit, wantPos)
					}
				} else {
					for _, u := range units {
						if u.pos != 0 || u.txs != 0 {
							t.Fatalf("step %d: position %s handed over", i, u.pos)
						}
					}
				}
			}
			seenByEncoder := append([]*cdc.Change(nil), seen...)
			// The reference events, in the same order, ts_ns taken from the
			// encoder's (the only value that depends on the clock).
			nowNs := func() int64 { return envChange(t, got[len(want)].Data()).TsNs }
			r := ref
			begin := func(b *pgrepl.Begin) { r.txID, r.txEnd, r.txCommit, r.txSeq = b.Xid, b.FinalLSN, b.CommitTime, 0 }
			for _, s := range steps {
				switch m := s.msg.(type) {
				case *pgrepl.Begin:
					begin(m)
				case *pgrepl.Commit:
					r.lastCommit = m.EndLSN
				case *pgrepl.Insert:
					want = append(want, r.row(cdc.OpCreate, s.lsn, st.rels[m.RelationOID], 0, nil, m.New, nowNs()))
				case *pgrepl.Update:
					rel := st.rels[m.RelationOID]
					if m.OldKind == 'K' || m.OldKind == 'O' && string(m.Old[0].Data) != string(m.New[0].Data) {
						// A key change: a delete of the old key, then a create.
						want = append(want, r.row(cdc.OpDelete, s.lsn, rel, m.OldKind, m.Old, nil, nowNs()))
						want = append(want, r.row(cdc.OpCreate, s.lsn, rel, 0, nil, m.New, nowNs()))
						continue
					}
					want = append(want, r.row(cdc.OpUpdate, s.lsn, rel, m.OldKind, m.Old, m.New, nowNs()))
				case *pgrepl.Delete:
					want = append(want, r.row(cdc.OpDelete, s.lsn, st.rels[m.RelationOID], m.OldKind, m.Old, nil, nowNs()))
				case *pgrepl.Truncate:
					for _, oid := range m.RelationOIDs {
						rel := st.rels[oid]
						c := now(&cdc.Change{Op: cdc.OpTruncate, Source: r.source(s.lsn, rel.schema, rel.table)}, nowNs())
						want = append(want, r.event(c, rel.subject, rel.subject))
					}
				case *pgrepl.Message:
					if m.Prefix != "keep" {
						continue
					}
					// Messages have ts_ms only, as Debezium's.
					c := &cdc.Change{Op: cdc.OpMessage, Message: &cdc.Message{Prefix: m.Prefix, Content: m.Content},
						TsMs: envChange(t, got[len(want)].Data()).TsMs}
					if !m.Transactional {
						r.lastCommit = m.LSN // as Debezium: the message is the last commit
					}
					c.Source = r.source(m.LSN, "", "")
					if !m.Transactional {
						// Before, a message outside transactions took the txId
						// of the previous transaction, and an id from it that a
						// resend after a restart did not repeat.
						c.Source.TxID, c.Source.TsMs, c.Source.TsUs, c.Source.TsNs = 0, c.TsMs, c.TsMs*1000, c.TsMs*1e6
					}
					want = append(want, r.event(c, m.Prefix, m.Prefix))
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d events, want %d", len(got), len(want))
			}
			for i := range want {
				sameEvent(t, fmt.Sprintf("event %d", i), gotTopics[i], got[i], want[i])
			}
			if custom {
				// The functions saw the same changes as before.
				if len(seenByEncoder) != len(want) {
					t.Fatalf("type function called %d times, want %d", len(seenByEncoder), len(want))
				}
				for i, c := range seenByEncoder {
					w := want[i].change
					if c.Op != w.Op || string(c.Before) != string(w.Before) || string(c.After) != string(w.After) ||
						c.Source != w.Source || c.TsMs != w.TsMs || c.TsUs != w.TsUs || c.TsNs != w.TsNs || !reflect.DeepEqual(c.Message, w.Message) {
						t.Fatalf("change %d given to the type function:\n got %+v\nwant %+v", i, c, w)
					}
				}
			}
		})
	}
}

// BenchmarkCDCClientPath measures this process's share of the work per
// row, with no server: pgoutput messages of the bulk-load benchmark's
// table (10,000-row transactions of int, text, numeric, timestamptz) are
// decoded, encoded into events, handed to the publisher goroutine and
// published to the memory bus, where a subscriber receives and acks each
// event. cpu-ns/row is the process's CPU time per row (the decoder, the
// publisher and the subscriber run on three goroutines; ns/op is the
// elapsed time).
//
//	go test -run '^$' -bench CDCClientPath ./postgres
func BenchmarkCDCClientPath(b *testing.B) {
	st, _ := testStream(b, WithName("bench"))
	bus := memory.New()
	defer bus.Close()
	ctx := context.Background()
	sub, err := bus.Subscribe(ctx, "bench.>", memory.WithPolicy(memory.Block))
	if err != nil {
		b.Fatal(err)
	}
	st.src.pub = bus
	var got atomic.Int64
	go func() {
		for m := range sub.Messages() {
			_ = m.Ack()
			got.Add(1)
		}
	}()
	st.rels[1] = st.newRelation("public", "orders", []pgrepl.Column{{Key: true, Name: "id", TypeOID: 23},
		{Name: "customer", TypeOID: 25}, {Name: "amount", TypeOID: 1700}, {Name: "created", TypeOID: 1184}}, []int{0})
	n := max(st.src.opts.buffer/st.src.opts.batch, 1)
	st.units = make(chan txUnit, n)
	st.free = make(chan []event.Event, n+2)
	st.replyNow = make(chan struct{}, 1)
	var start pgrepl.LSN
	pubDone := make(chan error, 1)
	go func() { pubDone <- st.publish(ctx, &start) }()

	ts := uint64(pgrepl.ToPgTime(time.Now()))
	be := func(u64s ...uint64) []byte {
		var b []byte
		for _, v := range u64s {
			b = binary.BigEndian.AppendUint64(b, v)
		}
		return b
	}
	begin := append([]byte{'B'}, be(1<<32, ts)...)
	begin = binary.BigEndian.AppendUint32(begin, 771)
	commit := append([]byte{'C', 0}, be(1<<32, 1<<32+8, ts)...)
	insert := func(i int) []byte {
		m := []byte{'I', 0, 0, 0, 1, 'N', 0, 4}
		for _, v := range []string{strconv.Itoa(i), "customer-" + strconv.Itoa(i), strconv.Itoa(i) + ".25", "2026-11-22 21:06:01.123456+00"} {
			m = append(m, 't')
			m = binary.BigEndian.AppendUint32(m, uint32(len(v)))
			m = append(m, v...)
		}
		return m
	}
	inserts := make([][]byte, 1000)
	for i := range inserts {
		inserts[i] = insert(100000 + i)
	}
	dec := pgrepl.Decoder{Reuse: true}
	handle := func(data []byte) {
		msg, err := dec.Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.handle(ctx, 0x100, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, cpuOK := selfCPU()
	for i := 0; i < b.N; i++ {
		if i%10000 == 0 {
			if i > 0 {
				handle(commit)
			}
			handle(begin)
		}
		handle(inserts[i%len(inserts)])
	}
	handle(commit)
	for got.Load() < int64(b.N) {
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	if cpu1, ok := selfCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/row")
	}
	close(st.units)
	if err := <-pubDone; err != nil {
		b.Fatal(err)
	}
	sub.Close()
}

// TestCDCSnapshotRowSameAsCDCEncode compares the snapshot's rows (op "r",
// snapshot "true", the last one "last") with the reference.
func TestCDCSnapshotRowSameAsCDCEncode(t *testing.T) {
	st, r := testStream(t)
	rel := st.newRelation("public", "orders", []pgrepl.Column{{Key: true, Name: "id", TypeOID: 23}, {Name: "v", TypeOID: 25}}, []int{0})
	start := time.Now()
	lsn := pgrepl.LSN(0x2_0000_0010)
	st.begin(0, lsn, start, true)
	r.txID, r.txEnd, r.txCommit, r.txSeq = 0, lsn, start, 0
	for i, snap := range []string{cdc.SnapshotTrue, cdc.SnapshotTrue, cdc.SnapshotLast} {
		tup := tuple(strconv.Itoa(i), "v"+strconv.Itoa(i))
		row := changeRow{op: cdc.OpRead, rel: rel, snapshot: snap, srcUs: start.UnixMicro(), lsn: int64(lsn), nowNs: time.Now().UnixNano(), new: tup}
		topic, ev := st.rowEvent(&row)
		c := now(&cdc.Change{Op: cdc.OpRead, Source: r.source(lsn, rel.schema, rel.table), After: r.image(rel, tup)}, row.nowNs)
		c.Source.Snapshot = snap
		sameEvent(t, fmt.Sprintf("row %d", i), topic, ev, r.event(c, rel.subject, r.key(rel, tup)))
	}
}

// TestCDCRowEventAllocs bounds the allocations of a row's event: its
// data, its context, one string for its id and partition key, and the
// extensions map (with the boxed key).
func TestCDCRowEventAllocs(t *testing.T) {
	st, _ := testStream(t)
	rel := st.newRelation("public", "orders", []pgrepl.Column{{Key: true, Name: "id", TypeOID: 23},
		{Name: "customer", TypeOID: 25}, {Name: "amount", TypeOID: 1700}, {Name: "created", TypeOID: 1184}}, []int{0})
	st.begin(771, 0x100, time.Now(), false)
	tup := tuple("100001", "customer-100001", "125001.25", "2026-11-22 21:06:01.123456+00")
	row := changeRow{op: cdc.OpCreate, rel: rel, snapshot: cdc.SnapshotFalse, srcUs: 1000, txID: 771, lsn: 0x90, nowNs: 2e6, new: tup}
	st.rowEvent(&row) // the buffers grow once
	n := testing.AllocsPerRun(1000, func() { st.rowEvent(&row) })
	t.Logf("%v allocations per row event", n)
	if n > 6 {
		t.Fatalf("%v allocations per row event, want at most 6", n)
	}
}

// TestCDCEventIDKeepsName: the event ids start with the source name as
// given (ids were "AuDit:snApshot:…" for --name audit, "EvEntkit:…" by
// default), for snapshot rows and for changes.
func TestCDCEventIDKeepsName(t *testing.T) {
	for _, name := range []string{"audit", "", "facade"} {
		var opts []Option
		want := name
		if name != "" {
			opts = append(opts, WithName(name))
		} else {
			want = "eventkit"
		}
		st, _ := testStream(t, opts...)
		if name == "" {
			// testStream names its source "shop": undo that.
			st.src.opts.name = "eventkit"
		}
		rel := st.newRelation("public", "orders", []pgrepl.Column{{Key: true, Name: "id", TypeOID: 23}}, []int{0})
		lsn := pgrepl.LSN(0xA_0000_00BC)
		st.begin(0, lsn, time.Now(), true)
		row := changeRow{op: cdc.OpRead, rel: rel, snapshot: cdc.SnapshotTrue, lsn: int64(lsn), new: tuple("1")}
		if _, ev := st.rowEvent(&row); ev.ID() != want+":snapshot:A/BC:0" {
			t.Errorf("name %q: snapshot row id %q, want %q", name, ev.ID(), want+":snapshot:A/BC:0")
		}
		st.begin(771, lsn, time.Now(), false)
		row = changeRow{op: cdc.OpCreate, rel: rel, snapshot: cdc.SnapshotFalse, txID: 771, lsn: int64(lsn), new: tuple("1")}
		if _, ev := st.rowEvent(&row); ev.ID() != want+":A/BC:0" {
			t.Errorf("name %q: change id %q, want %q", name, ev.ID(), want+":A/BC:0")
		}
	}
}
