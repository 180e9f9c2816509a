package pgrepl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The messages of the pgoutput plugin ("Logical Replication Message
// Formats"). Parse returns one of these pointer types.
type (
	// Begin starts a transaction.
	Begin struct {
		FinalLSN   LSN // the LSN of the transaction's commit record
		CommitTime time.Time
		Xid        uint32
	}
	// Commit ends a transaction.
	Commit struct {
		Flags      uint8
		CommitLSN  LSN // the LSN of the commit record
		EndLSN     LSN // the end LSN of the transaction
		CommitTime time.Time
	}
	// Origin names the replication origin of the transaction.
	Origin struct {
		CommitLSN LSN // commit LSN on the origin server
		Name      string
	}
	// Relation describes a table before the first change to it that a
	// stream carries (and again after it changed).
	Relation struct {
		Xid             uint32 // streaming only (v2), else 0
		OID             uint32
		Namespace       string
		Name            string
		ReplicaIdentity uint8 // 'd' default, 'n' nothing, 'f' full, 'i' index
		Columns         []Column
	}
	// Type describes a non-built-in data type.
	Type struct {
		Xid       uint32
		OID       uint32
		Namespace string
		Name      string
	}
	// Insert is a new row.
	Insert struct {
		Xid         uint32
		RelationOID uint32
		New         Tuple
	}
	// Update is a changed row. Old is the key ('K', when the replica
	// identity key changed) or the full old row ('O', REPLICA IDENTITY
	// FULL); OldKind is 0 when no old tuple was sent.
	Update struct {
		Xid         uint32
		RelationOID uint32
		OldKind     byte
		Old         Tuple
		New         Tuple
	}
	// Delete is a deleted row: its key ('K') or full old row ('O').
	Delete struct {
		Xid         uint32
		RelationOID uint32
		OldKind     byte
		Old         Tuple
	}
	// Truncate truncated tables.
	Truncate struct {
		Xid          uint32
		Options      uint8 // TruncateCascade | TruncateRestartIdentity
		RelationOIDs []uint32
	}
	// Message is a logical decoding message (pg_logical_emit_message).
	Message struct {
		Xid           uint32
		Transactional bool
		LSN           LSN
		Prefix        string
		Content       []byte
	}
	// StreamStart starts a block of changes of an in-progress transaction (v2).
	StreamStart struct {
		Xid          uint32
		FirstSegment bool
	}
	// StreamStop ends a block of streamed changes (v2).
	StreamStop struct{}
	// StreamCommit commits a streamed transaction (v2).
	StreamCommit struct {
		Xid        uint32
		Flags      uint8
		CommitLSN  LSN
		EndLSN     LSN
		CommitTime time.Time
	}
	// StreamAbort aborts a streamed (sub)transaction (v2). AbortLSN and
	// AbortTime are sent by protocol version 4 only.
	StreamAbort struct {
		Xid       uint32
		SubXid    uint32
		AbortLSN  LSN
		AbortTime time.Time
	}
)

// Truncate options.
const (
	TruncateCascade         = 1
	TruncateRestartIdentity = 2
)

// Column is a column of a Relation.
type Column struct {
	Key     bool // part of the replica identity key
	Name    string
	TypeOID uint32
	TypeMod int32
}

// Tuple is the data of a row.
type Tuple []TupleValue

// Kinds of TupleValue.
const (
	ValueNull      = 'n' // NULL
	ValueUnchanged = 'u' // unchanged TOASTed value, not sent
	ValueText      = 't' // text form
	ValueBinary    = 'b' // binary form
)

// TupleValue is one column value of a Tuple.
type TupleValue struct {
	Kind byte   // ValueNull, ValueUnchanged, ValueText or ValueBinary
	Data []byte // for ValueText and ValueBinary
}

// ErrShort reports a message shorter than its format requires.
var ErrShort = errors.New("pgrepl: message too short")

type reader struct {
	b        []byte
	err      error
	inStream bool // inside a streamed transaction: messages carry an xid
}

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if len(r.b) < n {
		r.err = ErrShort
		return false
	}
	return true
}

// next takes the next n bytes (n >= 0), or nil with r.err set when fewer
// are left.
func (r *reader) next(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.next(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.next(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.next(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.next(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) lsn() LSN        { return LSN(r.u64()) }
func (r *reader) time() time.Time { return PgTime(int64(r.u64())) }

func (r *reader) str() string {
	if r.err != nil {
		return ""
	}
	for i, c := range r.b {
		if c == 0 {
			s := string(r.b[:i])
			r.b = r.b[i+1:]
			return s
		}
	}
	r.err = fmt.Errorf("pgrepl: unterminated string: %w", ErrShort)
	return ""
}

func (r *reader) bytes(n int) []byte {
	if n < 0 {
		r.err = fmt.Errorf("pgrepl: negative length %d", n)
		return nil
	}
	return r.next(n)
}

// tuple reads a tuple into dst's backing array when it is large enough
// (dst may be nil).
func (r *reader) tuple(dst Tuple) Tuple {
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	// Each column takes at least one byte: bound the allocation by the input.
	if n > len(r.b) {
		r.err = fmt.Errorf("pgrepl: tuple of %d columns in %d bytes: %w", n, len(r.b), ErrShort)
		return nil
	}
	var t Tuple
	if dst != nil && cap(dst) >= n {
		t = dst[:n]
	} else {
		t = make(Tuple, n)
	}
	for i := range t {
		k := r.u8()
		t[i].Kind = k
		t[i].Data = nil
		switch k {
		case ValueNull, ValueUnchanged:
		case ValueText, ValueBinary:
			t[i].Data = r.bytes(int(int32(r.u32())))
		default:
			if r.err == nil {
				r.err = fmt.Errorf("pgrepl: unknown tuple value kind %q", k)
			}
		}
		if r.err != nil {
			return nil
		}
	}
	return t
}

// Parse decodes one pgoutput message. inStream tells whether the message is
// inside a StreamStart/StreamStop block (protocol version 2), where the
// data messages carry the transaction id. The returned values may share
// memory with data.
func Parse(data []byte, inStream bool) (any, error) {
	return parse(data, inStream, nil)
}

// parse is Parse; with d non-nil and d.Reuse set, the frequent messages
// are stored in d.
func parse(data []byte, inStream bool, d *Decoder) (any, error) {
	if len(data) == 0 {
		return nil, ErrShort
	}
	if d != nil && !d.Reuse {
		d = nil
	}
	r := &reader{b: data[1:], inStream: inStream}
	var msg any
	switch data[0] {
	case 'B':
		m := reused(d, func(d *Decoder) *Begin { return &d.begin })
		*m = Begin{FinalLSN: r.lsn(), CommitTime: r.time(), Xid: r.u32()}
		msg = m
	case 'C':
		m := reused(d, func(d *Decoder) *Commit { return &d.commit })
		*m = Commit{Flags: r.u8(), CommitLSN: r.lsn(), EndLSN: r.lsn(), CommitTime: r.time()}
		msg = m
	case 'O':
		msg = &Origin{CommitLSN: r.lsn(), Name: r.str()}
	case 'R':
		msg = r.relation()
	case 'Y':
		msg = &Type{Xid: r.xid(), OID: r.u32(), Namespace: r.str(), Name: r.str()}
	case 'I':
		msg = r.insert(d)
	case 'U':
		msg = r.update(d)
	case 'D':
		msg = r.delete(d)
	case 'T':
		msg = r.truncate()
	case 'M':
		m := &Message{Xid: r.xid()}
		m.Transactional = r.u8()&1 != 0
		m.LSN = r.lsn()
		m.Prefix = r.str()
		m.Content = r.bytes(int(int32(r.u32())))
		msg = m
	case 'S':
		msg = &StreamStart{Xid: r.u32(), FirstSegment: r.u8() == 1}
	case 'E':
		msg = &StreamStop{}
	case 'c':
		msg = &StreamCommit{Xid: r.u32(), Flags: r.u8(), CommitLSN: r.lsn(), EndLSN: r.lsn(), CommitTime: r.time()}
	case 'A':
		m := &StreamAbort{Xid: r.u32(), SubXid: r.u32()}
		if r.err == nil && len(r.b) >= 16 {
			m.AbortLSN = r.lsn()
			m.AbortTime = r.time()
		}
		msg = m
	default:
		return nil, fmt.Errorf("pgrepl: unknown pgoutput message type %q", data[0])
	}
	if r.err != nil {
		return nil, fmt.Errorf("pgrepl: parse %q message: %w", data[0], r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("pgrepl: parse %q message: %d trailing bytes", data[0], len(r.b))
	}
	return msg, nil
}

// reused returns the message of d that field picks, or a new one when d
// is nil (no reuse).
func reused[M any](d *Decoder, field func(*Decoder) *M) *M {
	if d == nil {
		return new(M)
	}
	return field(d)
}

// xid reads the transaction id that messages carry inside a streamed
// transaction (0 outside one).
func (r *reader) xid() uint32 {
	if r.inStream {
		return r.u32()
	}
	return 0
}

// tupleInto reads a tuple into d.tuples[i] when d is not nil (keeping the
// larger array it may have grown), into a new one otherwise.
func (r *reader) tupleInto(d *Decoder, i int) Tuple {
	if d == nil {
		return r.tuple(nil)
	}
	t := r.tuple(d.tuples[i])
	if cap(t) > cap(d.tuples[i]) {
		d.tuples[i] = t
	}
	return t
}

func (r *reader) relation() *Relation {
	m := &Relation{Xid: r.xid(), OID: r.u32(), Namespace: r.str(), Name: r.str(), ReplicaIdentity: r.u8()}
	n := int(r.u16())
	if r.err == nil && n > len(r.b) {
		r.err = fmt.Errorf("pgrepl: relation of %d columns in %d bytes: %w", n, len(r.b), ErrShort)
	}
	if r.err == nil {
		m.Columns = make([]Column, n)
		for i := range m.Columns {
			m.Columns[i] = Column{Key: r.u8()&1 != 0, Name: r.str(), TypeOID: r.u32(), TypeMod: int32(r.u32())}
		}
	}
	return m
}

func (r *reader) insert(d *Decoder) *Insert {
	m := reused(d, func(d *Decoder) *Insert { return &d.insert })
	*m = Insert{Xid: r.xid(), RelationOID: r.u32()}
	if k := r.u8(); r.err == nil && k != 'N' {
		r.err = fmt.Errorf("pgrepl: insert: tuple kind %q, want 'N'", k)
	}
	m.New = r.tupleInto(d, 0)
	return m
}

func (r *reader) update(d *Decoder) *Update {
	m := reused(d, func(d *Decoder) *Update { return &d.update })
	*m = Update{Xid: r.xid(), RelationOID: r.u32()}
	k := r.u8()
	if k == 'K' || k == 'O' {
		m.OldKind = k
		m.Old = r.tupleInto(d, 1)
		k = r.u8()
	}
	if r.err == nil && k != 'N' {
		r.err = fmt.Errorf("pgrepl: update: tuple kind %q, want 'N'", k)
	}
	m.New = r.tupleInto(d, 0)
	return m
}

func (r *reader) delete(d *Decoder) *Delete {
	m := reused(d, func(d *Decoder) *Delete { return &d.delete })
	*m = Delete{Xid: r.xid(), RelationOID: r.u32()}
	m.OldKind = r.u8()
	if r.err == nil && m.OldKind != 'K' && m.OldKind != 'O' {
		r.err = fmt.Errorf("pgrepl: delete: tuple kind %q, want 'K' or 'O'", m.OldKind)
	}
	m.Old = r.tupleInto(d, 1)
	return m
}

func (r *reader) truncate() *Truncate {
	m := &Truncate{Xid: r.xid()}
	n := int(r.u32())
	m.Options = r.u8()
	if r.err == nil && (n < 0 || n > len(r.b)/4) {
		r.err = fmt.Errorf("pgrepl: truncate of %d relations in %d bytes: %w", n, len(r.b), ErrShort)
	}
	if r.err == nil {
		m.RelationOIDs = make([]uint32, n)
		for i := range m.RelationOIDs {
			m.RelationOIDs[i] = r.u32()
		}
	}
	return m
}

// Decoder parses a sequence of pgoutput messages, tracking whether it is
// inside a streamed block (StreamStart … StreamStop).
type Decoder struct {
	// Reuse makes Decode return the messages that come once per row or
	// per transaction (Begin, Commit, Insert, Update, Delete) in storage
	// of the Decoder, with tuples whose backing arrays it reuses: such a
	// message is valid only until the next call of Decode. Without Reuse
	// every message is new. Either way, tuple values share memory with the
	// data given to Decode.
	Reuse bool

	inStream bool
	begin    Begin
	commit   Commit
	insert   Insert
	update   Update
	delete   Delete
	tuples   [2]Tuple // new, old
}

// Decode parses the next message.
func (d *Decoder) Decode(data []byte) (any, error) {
	m, err := parse(data, d.inStream, d)
	if err != nil {
		return nil, err
	}
	switch m.(type) {
	case *StreamStart:
		d.inStream = true
	case *StreamStop:
		d.inStream = false
	}
	return m, nil
}
