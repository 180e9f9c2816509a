package pgrepl

import (
	"encoding/binary"
	"reflect"
	"testing"
	"time"
)

// enc builds pgoutput messages for the tests, following the documented formats.
type enc []byte

func (e enc) u8(v uint8) enc   { return append(e, v) }
func (e enc) u16(v uint16) enc { return binary.BigEndian.AppendUint16(e, v) }
func (e enc) u32(v uint32) enc { return binary.BigEndian.AppendUint32(e, v) }
func (e enc) u64(v uint64) enc { return binary.BigEndian.AppendUint64(e, v) }
func (e enc) str(s string) enc { return append(append(e, s...), 0) }
func (e enc) tuple(t Tuple) enc {
	e = e.u16(uint16(len(t)))
	for _, v := range t {
		e = e.u8(v.Kind)
		if v.Kind == ValueText || v.Kind == ValueBinary {
			e = append(e.u32(uint32(len(v.Data))), v.Data...)
		}
	}
	return e
}

var (
	ts     = time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	tsUs   = uint64(ToPgTime(ts))
	tuple3 = Tuple{{Kind: ValueText, Data: []byte("42")}, {Kind: ValueNull}, {Kind: ValueUnchanged}}
	tupleB = Tuple{{Kind: ValueBinary, Data: []byte{0, 0, 0, 1}}}
)

func TestParseVectors(t *testing.T) {
	cases := []struct {
		name     string
		data     []byte
		inStream bool
		want     any
	}{
		{"begin", enc{'B'}.u64(0x16B374D848).u64(tsUs).u32(771), false, &Begin{FinalLSN: 0x16B374D848, CommitTime: ts, Xid: 771}},
		{"commit", enc{'C'}.u8(0).u64(10).u64(20).u64(tsUs), false, &Commit{CommitLSN: 10, EndLSN: 20, CommitTime: ts}},
		{"origin", enc{'O'}.u64(99).str("node_a"), false, &Origin{CommitLSN: 99, Name: "node_a"}},
		{"relation", enc{'R'}.u32(16384).str("public").str("orders").u8('f').u16(2).
			u8(1).str("id").u32(23).u32(0xffffffff).
			u8(0).str("note").u32(25).u32(0xffffffff), false,
			&Relation{OID: 16384, Namespace: "public", Name: "orders", ReplicaIdentity: 'f', Columns: []Column{
				{Key: true, Name: "id", TypeOID: 23, TypeMod: -1}, {Name: "note", TypeOID: 25, TypeMod: -1}}}},
		{"relation in stream", enc{'R'}.u32(900).u32(1).str("s").str("t").u8('d').u16(0), true,
			&Relation{Xid: 900, OID: 1, Namespace: "s", Name: "t", ReplicaIdentity: 'd', Columns: []Column{}}},
		{"type", enc{'Y'}.u32(70000).str("public").str("mood"), false, &Type{OID: 70000, Namespace: "public", Name: "mood"}},
		{"insert", enc{'I'}.u32(16384).u8('N').tuple(tuple3), false, &Insert{RelationOID: 16384, New: tuple3}},
		{"insert binary in stream", enc{'I'}.u32(5).u32(16384).u8('N').tuple(tupleB), true, &Insert{Xid: 5, RelationOID: 16384, New: tupleB}},
		{"update no old", enc{'U'}.u32(1).u8('N').tuple(tuple3), false, &Update{RelationOID: 1, New: tuple3}},
		{"update key", enc{'U'}.u32(1).u8('K').tuple(tupleB).u8('N').tuple(tuple3), false, &Update{RelationOID: 1, OldKind: 'K', Old: tupleB, New: tuple3}},
		{"update full", enc{'U'}.u32(1).u8('O').tuple(tuple3).u8('N').tuple(tuple3), false, &Update{RelationOID: 1, OldKind: 'O', Old: tuple3, New: tuple3}},
		{"delete key", enc{'D'}.u32(1).u8('K').tuple(tupleB), false, &Delete{RelationOID: 1, OldKind: 'K', Old: tupleB}},
		{"delete full in stream", enc{'D'}.u32(8).u32(1).u8('O').tuple(tuple3), true, &Delete{Xid: 8, RelationOID: 1, OldKind: 'O', Old: tuple3}},
		{"truncate", enc{'T'}.u32(2).u8(TruncateCascade | TruncateRestartIdentity).u32(10).u32(11), false,
			&Truncate{Options: 3, RelationOIDs: []uint32{10, 11}}},
		{"message", enc{'M'}.u8(1).u64(77).str("orders").u32(3).u8('a').u8('b').u8('c'), false,
			&Message{Transactional: true, LSN: 77, Prefix: "orders", Content: []byte("abc")}},
		{"message non-transactional", enc{'M'}.u8(0).u64(77).str("p").u32(0), false,
			&Message{LSN: 77, Prefix: "p", Content: []byte{}}},
		{"stream start", enc{'S'}.u32(600).u8(1), false, &StreamStart{Xid: 600, FirstSegment: true}},
		{"stream stop", enc{'E'}, true, &StreamStop{}},
		{"stream commit", enc{'c'}.u32(600).u8(0).u64(30).u64(40).u64(tsUs), false, &StreamCommit{Xid: 600, CommitLSN: 30, EndLSN: 40, CommitTime: ts}},
		{"stream abort", enc{'A'}.u32(600).u32(601), false, &StreamAbort{Xid: 600, SubXid: 601}},
		{"stream abort v4", enc{'A'}.u32(600).u32(600).u64(50).u64(tsUs), false, &StreamAbort{Xid: 600, SubXid: 600, AbortLSN: 50, AbortTime: ts}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse(c.data, c.inStream)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Parse = %#v\nwant %#v", got, c.want)
			}
			// Every strict prefix is an error, never a panic or a wrong message.
			for i := 0; i < len(c.data); i++ {
				if c.data[0] == 'A' && i == 9 {
					continue // a version 2 stream abort
				}
				if m, err := Parse(c.data[:i], c.inStream); err == nil {
					t.Fatalf("Parse of %d-byte prefix succeeded: %#v", i, m)
				}
			}
			// Trailing bytes are an error (except for stream abort, whose
			// length differs between protocol versions).
			if c.data[0] != 'A' {
				if _, err := Parse(append(append([]byte(nil), c.data...), 0), c.inStream); err == nil {
					t.Fatal("Parse accepted a trailing byte")
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":            nil,
		"unknown type":     {'Z'},
		"insert kind":      enc{'I'}.u32(1).u8('X').tuple(tuple3),
		"delete kind":      enc{'D'}.u32(1).u8('N').tuple(tuple3),
		"tuple value kind": enc{'I'}.u32(1).u8('N').u16(1).u8('q'),
		"huge tuple":       enc{'I'}.u32(1).u8('N').u16(65535),
		"negative length":  enc{'I'}.u32(1).u8('N').u16(1).u8('t').u32(0xffffffff),
		"huge truncate":    enc{'T'}.u32(0x7fffffff).u8(0),
		"unterminated":     enc{'O'}.u64(1).u8('x'),
	} {
		if m, err := Parse(data, false); err == nil {
			t.Errorf("%s: Parse = %#v, want an error", name, m)
		}
	}
}

func TestDecoderTracksStream(t *testing.T) {
	var d Decoder
	steps := []struct {
		data []byte
		want any
	}{
		{enc{'S'}.u32(7).u8(1), &StreamStart{Xid: 7, FirstSegment: true}},
		{enc{'I'}.u32(7).u32(1).u8('N').tuple(tupleB), &Insert{Xid: 7, RelationOID: 1, New: tupleB}},
		{enc{'E'}, &StreamStop{}},
		{enc{'I'}.u32(1).u8('N').tuple(tupleB), &Insert{RelationOID: 1, New: tupleB}},
	}
	for i, s := range steps {
		got, err := d.Decode(s.data)
		if err != nil || !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d: Decode = %#v, %v; want %#v", i, got, err, s.want)
		}
	}
}

// TestDecoderReuse decodes a sequence with a Decoder that reuses its
// messages and tuples: each message is right until the next Decode, and
// the tuples' arrays are reused.
func TestDecoderReuse(t *testing.T) {
	d := Decoder{Reuse: true}
	long := Tuple{{Kind: ValueText, Data: []byte("1")}, {Kind: ValueText, Data: []byte("2")}, {Kind: ValueNull}, {Kind: ValueText, Data: []byte{}}}
	steps := []struct {
		data []byte
		want any
	}{
		{enc{'B'}.u64(1).u64(tsUs).u32(2), &Begin{FinalLSN: 1, CommitTime: ts, Xid: 2}},
		{enc{'I'}.u32(1).u8('N').tuple(long), &Insert{RelationOID: 1, New: long}},
		{enc{'I'}.u32(1).u8('N').tuple(tuple3), &Insert{RelationOID: 1, New: tuple3}},
		{enc{'U'}.u32(1).u8('O').tuple(long).u8('N').tuple(tupleB), &Update{RelationOID: 1, OldKind: 'O', Old: long, New: tupleB}},
		{enc{'U'}.u32(2).u8('N').tuple(tuple3), &Update{RelationOID: 2, New: tuple3}},
		{enc{'D'}.u32(1).u8('K').tuple(tupleB), &Delete{RelationOID: 1, OldKind: 'K', Old: tupleB}},
		{enc{'C'}.u8(0).u64(10).u64(20).u64(tsUs), &Commit{CommitLSN: 10, EndLSN: 20, CommitTime: ts}},
		{enc{'I'}.u32(1).u8('X'), nil}, // an error leaves nothing behind
		{enc{'I'}.u32(3).u8('N').tuple(tupleB), &Insert{RelationOID: 3, New: tupleB}},
	}
	var prev *Insert
	for i, s := range steps {
		got, err := d.Decode(s.data)
		if s.want == nil {
			if err == nil {
				t.Fatalf("step %d: Decode succeeded", i)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d: Decode = %#v, %v; want %#v", i, got, err, s.want)
		}
		if ins, ok := got.(*Insert); ok {
			if prev != nil && (ins != prev || &ins.New[0] != &prev.New[0]) {
				t.Fatalf("step %d: insert or its tuple not reused", i)
			}
			prev = ins
		}
	}
}

func TestDecoderReuseAllocs(t *testing.T) {
	d := Decoder{Reuse: true}
	ins := enc{'I'}.u32(1).u8('N').tuple(tuple3)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := d.Decode(ins); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Decode of an insert with Reuse: %v allocations, want 0", n)
	}
}

func TestCopyDataAndStatus(t *testing.T) {
	w := enc{'w'}.u64(100).u64(200).u64(tsUs).u8('B')
	m, err := ParseCopyData(w)
	if err != nil {
		t.Fatal(err)
	}
	if want := (&XLogData{WALStart: 100, ServerWAL: 200, ServerTime: ts, Data: []byte{'B'}}); !reflect.DeepEqual(m, want) {
		t.Fatalf("XLogData = %#v, want %#v", m, want)
	}
	// The view shares the payload's memory.
	var x XLogData
	var ka Keepalive
	if v, err := parseCopyDataInto(w, &x, &ka); err != nil || v != &x || &x.Data[0] != &w[25] || x.WALStart != 100 {
		t.Fatalf("parseCopyDataInto = %#v, %v", v, err)
	}
	k, err := ParseCopyData(enc{'k'}.u64(300).u64(tsUs).u8(1))
	if err != nil {
		t.Fatal(err)
	}
	if want := (&Keepalive{ServerWAL: 300, ServerTime: ts, ReplyRequested: true}); !reflect.DeepEqual(k, want) {
		t.Fatalf("Keepalive = %#v, want %#v", k, want)
	}
	for _, bad := range [][]byte{nil, {'w', 1}, {'k', 1}, {'x'}} {
		if _, err := ParseCopyData(bad); err == nil {
			t.Errorf("ParseCopyData(%v) succeeded", bad)
		}
	}
	got := EncodeStandbyStatus(StandbyStatus{Write: 3, Flush: 2, Apply: 1, ClientTime: ts, ReplyRequested: true})
	want := []byte(enc{'r'}.u64(3).u64(2).u64(1).u64(tsUs).u8(1))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("EncodeStandbyStatus = %v, want %v", got, want)
	}
}

func TestLSN(t *testing.T) {
	l, err := ParseLSN("16/B374D848")
	if err != nil || l != 0x16B374D848 || l.String() != "16/B374D848" {
		t.Fatalf("ParseLSN = %v (%s), %v", uint64(l), l, err)
	}
	for _, bad := range []string{"", "16", "x/1", "1/x", "100000000/0"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) succeeded", bad)
		}
	}
}

// FuzzParse checks that no input makes the decoder panic or allocate
// without bound, and that what it accepts re-encodes to the same bytes.
func FuzzParse(f *testing.F) {
	seeds := [][]byte{
		enc{'B'}.u64(1).u64(tsUs).u32(2),
		enc{'C'}.u8(0).u64(10).u64(20).u64(tsUs),
		enc{'O'}.u64(99).str("n"),
		enc{'R'}.u32(1).str("public").str("t").u8('d').u16(1).u8(1).str("id").u32(23).u32(0xffffffff),
		enc{'Y'}.u32(1).str("public").str("mood"),
		enc{'I'}.u32(1).u8('N').tuple(tuple3),
		enc{'U'}.u32(1).u8('O').tuple(tuple3).u8('N').tuple(tuple3),
		enc{'D'}.u32(1).u8('K').tuple(tupleB),
		enc{'T'}.u32(1).u8(0).u32(5),
		enc{'M'}.u8(1).u64(77).str("p").u32(1).u8('x'),
		enc{'S'}.u32(1).u8(1), enc{'E'}, enc{'c'}.u32(1).u8(0).u64(1).u64(2).u64(3), enc{'A'}.u32(1).u32(1),
	}
	for _, s := range seeds {
		f.Add(s, false)
	}
	f.Add([]byte(enc{'I'}.u32(9).u32(1).u8('N').tuple(tupleB)), true)
	reuse := &Decoder{Reuse: true}
	f.Fuzz(func(t *testing.T, data []byte, inStream bool) {
		m, err := Parse(data, inStream)
		// A decoder that reuses its messages decodes the same.
		reuse.inStream = inStream
		rm, rerr := reuse.Decode(data)
		if (err == nil) != (rerr == nil) || err == nil && !reflect.DeepEqual(m, rm) {
			t.Fatalf("Decode with Reuse = %#v, %v; Parse = %#v, %v", rm, rerr, m, err)
		}
		if err != nil {
			return
		}
		if re := encodeForTest(m, inStream); re != nil && string(re) != string(data) {
			t.Fatalf("re-encoding %#v gave %x, want %x", m, re, data)
		}
	})
}

// encodeForTest re-encodes a parsed message (nil for the messages whose
// encoding is not unique: flags bytes that Parse reduces to booleans).
func encodeForTest(m any, inStream bool) []byte {
	x := func(e enc, xid uint32) enc {
		if inStream {
			return e.u32(xid)
		}
		return e
	}
	switch m := m.(type) {
	case *Begin:
		return enc{'B'}.u64(uint64(m.FinalLSN)).u64(uint64(ToPgTime(m.CommitTime))).u32(m.Xid)
	case *Commit:
		return enc{'C'}.u8(m.Flags).u64(uint64(m.CommitLSN)).u64(uint64(m.EndLSN)).u64(uint64(ToPgTime(m.CommitTime)))
	case *Origin:
		return enc{'O'}.u64(uint64(m.CommitLSN)).str(m.Name)
	case *Type:
		return x(enc{'Y'}, m.Xid).u32(m.OID).str(m.Namespace).str(m.Name)
	case *Insert:
		return x(enc{'I'}, m.Xid).u32(m.RelationOID).u8('N').tuple(m.New)
	case *Update:
		e := x(enc{'U'}, m.Xid).u32(m.RelationOID)
		if m.OldKind != 0 {
			e = e.u8(m.OldKind).tuple(m.Old)
		}
		return e.u8('N').tuple(m.New)
	case *Delete:
		return x(enc{'D'}, m.Xid).u32(m.RelationOID).u8(m.OldKind).tuple(m.Old)
	case *Truncate:
		e := x(enc{'T'}, m.Xid).u32(uint32(len(m.RelationOIDs))).u8(m.Options)
		for _, o := range m.RelationOIDs {
			e = e.u32(o)
		}
		return e
	case *StreamCommit:
		return enc{'c'}.u32(m.Xid).u8(m.Flags).u64(uint64(m.CommitLSN)).u64(uint64(m.EndLSN)).u64(uint64(ToPgTime(m.CommitTime)))
	}
	return nil
}

// TestLSNAppendTextKeepsPrefix: AppendText upper-cases the hexadecimal
// digits it writes, not the bytes already in the buffer (it turned
// "audit:" into "AuDit:").
func TestLSNAppendTextKeepsPrefix(t *testing.T) {
	if got := string(LSN(0xAB_0000_00CD).AppendText([]byte("audit:snapshot:"))); got != "audit:snapshot:AB/CD" {
		t.Fatalf("AppendText = %q, want %q", got, "audit:snapshot:AB/CD")
	}
}
