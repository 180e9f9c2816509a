package pgcdc

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/eventkit/eventkit/cdc"
	"github.com/eventkit/eventkit/postgres/pgcdc/internal/pgrepl"
)

// The encoding of row changes, on the decoder goroutine: each change's
// Debezium envelope is appended straight from the decoded tuple to a
// reused buffer, with the parts that do not change from one row to the
// next (the source block's constant fields, the column names as JSON, the
// topic, the subject) prepared once per source, relation or transaction.
// The bytes are those of cdc.AppendEncode for the same change
// (TestCDCEnvelopeSameAsCDCEncode).

// relInfo is what the stream knows of a table.
type relInfo struct {
	schema, table string
	subject       string
	subjectPtr    *string // &subject, shared by the relation's events
	topic         string  // the default topic ("" when WithTopic is set)
	cols          []pgrepl.Column
	convs         []*valueConv // the value mapping of each column
	colKeys       [][]byte     // `"<name>":` per column
	pk            []int        // indexes of the primary key columns (or the replica identity key)
	// srcSnap is the source block's `,"snapshot":...,"db":...` for
	// snapshot "false" and "true"; srcTable its `,"schema":...,"table":...,"txId":`.
	srcSnap  [2][]byte
	srcTable []byte
}

func (st *replStream) newRelation(schema, table string, cols []pgrepl.Column, pk []int) *relInfo {
	rel := &relInfo{schema: schema, table: table, subject: schema + "." + table, cols: cols, pk: pk}
	rel.subjectPtr = &rel.subject
	if !st.src.opts.customTopic {
		rel.topic = st.src.opts.name + "." + sanitize(schema) + "." + sanitize(table)
	}
	rel.colKeys = make([][]byte, len(cols))
	rel.convs = make([]*valueConv, len(cols))
	for i, c := range cols {
		rel.colKeys[i] = append(cdc.AppendString(nil, c.Name), ':')
		rel.convs[i] = newValueConv(c.TypeOID, c.TypeMod, st.src.opts.values)
		if elem := st.userArrays[c.TypeOID]; elem != 0 && rel.convs[i].kind == kString {
			rel.convs[i] = &valueConv{kind: kArray, elem: newValueConv(elem, c.TypeMod, ValueModes{Decimal: DecimalString})}
		}
	}
	rel.srcSnap[0] = st.appendSrcSnap(nil, cdc.SnapshotFalse)
	rel.srcSnap[1] = st.appendSrcSnap(nil, cdc.SnapshotTrue)
	rel.srcTable = appendSrcTable(nil, schema, table)
	return rel
}

// lookupTypes learns which of the columns' types that the mapping does
// not know are arrays (of enums, of domains, of other types created in
// the database), and of what, for newRelation.
func (st *replStream) lookupTypes(ctx context.Context, cols []pgrepl.Column) error {
	if st.meta == nil {
		return nil
	}
	var unknown []string
	for _, c := range cols {
		if _, seen := st.userArrays[c.TypeOID]; !seen && c.TypeOID >= firstUserOID {
			unknown = append(unknown, strconv.FormatUint(uint64(c.TypeOID), 10))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	if st.userArrays == nil {
		st.userArrays = map[uint32]uint32{}
	}
	for _, oid := range unknown {
		n, _ := strconv.ParseUint(oid, 10, 32)
		st.userArrays[uint32(n)] = 0
	}
	rr := st.meta.ExecParams(ctx, `SELECT oid, typelem FROM pg_type WHERE oid = ANY($1::oid[]) AND typcategory = 'A'`,
		[][]byte{[]byte("{" + strings.Join(unknown, ",") + "}")}, nil, nil, nil)
	for rr.NextRow() {
		oid, _ := strconv.ParseUint(string(rr.Values()[0]), 10, 32)
		elem, _ := strconv.ParseUint(string(rr.Values()[1]), 10, 32)
		st.userArrays[uint32(oid)] = uint32(elem)
	}
	if _, err := rr.Close(); err != nil {
		return fmt.Errorf("postgres: cdc: column types: %w", err)
	}
	return nil
}

// firstUserOID is the first OID of objects created in a database
// (FirstNormalObjectId).
const firstUserOID = 16384

// appendSrcHead appends the start of the source block up to the value of
// its ts_ms.
func appendSrcHead(b []byte, name string) []byte {
	b = append(b, `,"source":{"version":`...)
	b = cdc.AppendString(b, SourceVersion)
	b = append(b, `,"connector":"postgresql","name":`...)
	b = cdc.AppendString(b, name)
	return append(b, `,"ts_ms":`...)
}

func (st *replStream) appendSrcSnap(b []byte, snapshot string) []byte {
	b = append(b, `,"snapshot":`...)
	b = cdc.AppendString(b, snapshot)
	b = append(b, `,"db":`...)
	return cdc.AppendString(b, st.db)
}

func appendSrcTable(b []byte, schema, table string) []byte {
	b = append(b, `,"schema":`...)
	b = cdc.AppendString(b, schema)
	b = append(b, `,"table":`...)
	b = cdc.AppendString(b, table)
	return append(b, `,"txId":`...)
}

// sequence returns Debezium's source.sequence, the JSON array
// ["<end of the last commit before>","<lsn>"] (null when no commit was
// seen before) as a string.
func sequence(lastCommit, lsn int64) string {
	return string(appendSequence(nil, lastCommit, lsn, `"`))
}

// appendSequence appends the sequence with q for its quotes (`\"` inside
// a JSON string).
func appendSequence(b []byte, lastCommit, lsn int64, q string) []byte {
	b = append(b, '[')
	if lastCommit == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, q...)
		b = strconv.AppendInt(b, lastCommit, 10)
		b = append(b, q...)
	}
	b = append(b, ',')
	b = append(b, q...)
	b = strconv.AppendInt(b, lsn, 10)
	b = append(b, q...)
	return append(b, ']')
}

// changeRow is one row change to encode.
type changeRow struct {
	op         cdc.Op
	rel        *relInfo
	snapshot   string // cdc.SnapshotFalse, SnapshotTrue or SnapshotLast
	srcUs      int64  // source.ts_us (ts_ms and ts_ns follow)
	txID       int64  // source.txId (0: null)
	lsn        int64  // source.lsn (0: null)
	lastCommit int64  // the end of the last commit before (source.sequence; 0: null)
	nowNs      int64  // ts_ns (ts_ms and ts_us follow)
	oldKind    byte   // 0: no before image; 'K': key columns only; 'O': the whole row
	old, new   pgrepl.Tuple
}

// appendRowEnvelope appends the envelope of r, and reports where its
// before and after images are in b (empty spans when null).
func (st *replStream) appendRowEnvelope(b []byte, r *changeRow) (_ []byte, before, after [2]int) {
	b = append(b, `{"before":`...)
	if r.oldKind != 0 {
		before[0] = len(b)
		b = appendImage(b, r.rel, r.old)
		before[1] = len(b)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"after":`...)
	if r.new != nil {
		after[0] = len(b)
		b = appendImage(b, r.rel, r.new)
		after[1] = len(b)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, st.srcHead...)
	b = strconv.AppendInt(b, r.srcUs/1000, 10)
	switch r.snapshot {
	case cdc.SnapshotFalse:
		b = append(b, r.rel.srcSnap[0]...)
	case cdc.SnapshotTrue:
		b = append(b, r.rel.srcSnap[1]...)
	default:
		b = st.appendSrcSnap(b, r.snapshot)
	}
	b = append(b, `,"sequence":"`...)
	b = appendSequence(b, r.lastCommit, r.lsn, `\"`)
	b = append(b, '"')
	b = cdc.AppendTimes(b, r.srcUs, r.srcUs*1000)
	b = append(b, r.rel.srcTable...)
	b = appendOptInt(b, r.txID)
	b = append(b, `,"lsn":`...)
	b = appendOptInt(b, r.lsn)
	b = append(b, `,"xmin":null,"origin":null,"origin_lsn":null},"transaction":null,"op":"`...)
	b = append(b, r.op...)
	b = append(b, `","ts_ms":`...)
	b = strconv.AppendInt(b, r.nowNs/1e6, 10)
	b = cdc.AppendTimes(b, r.nowNs/1000, r.nowNs)
	return append(b, '}'), before, after
}

func appendOptInt(b []byte, v int64) []byte {
	if v == 0 {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, v, 10)
}

// appendImage appends the JSON object of a row, every column (those the
// server did not send, as in an old key tuple, are null).
func appendImage(b []byte, rel *relInfo, t pgrepl.Tuple) []byte {
	b = append(b, '{')
	for i := range rel.cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendColumn(b, rel, t, i)
	}
	return append(b, '}')
}

// appendColumn appends `"name":value` for column i of a row; a column the
// server did not send (as in an old key tuple) is null.
func appendColumn(b []byte, rel *relInfo, t pgrepl.Tuple, i int) []byte {
	b = append(b, rel.colKeys[i]...)
	if i < len(t) {
		return appendTupleValue(b, rel.convs[i], t[i])
	}
	return append(b, "null"...)
}

func appendTupleValue(b []byte, conv *valueConv, v pgrepl.TupleValue) []byte {
	switch v.Kind {
	case pgrepl.ValueNull:
		return append(b, "null"...)
	case pgrepl.ValueUnchanged:
		return cdc.AppendString(b, cdc.UnavailableValue)
	case pgrepl.ValueBinary: // not requested; kept as base64
		return appendBase64(b, v.Data)
	}
	return conv.appendText(b, v.Data)
}

// appendKey appends the partition key of a row: subject ":" the key as
// JSON (the subject alone for a table without a key).
func appendKey(b []byte, rel *relInfo, t pgrepl.Tuple) []byte {
	b = append(b, rel.subject...)
	if len(rel.pk) == 0 {
		return b
	}
	b = append(b, ":{"...)
	for j, i := range rel.pk {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendColumn(b, rel, t, i)
	}
	return append(b, '}')
}

// appendID appends the event id of the next change of the transaction
// (or of the snapshot) and counts it.
func (st *replStream) appendID(b []byte) []byte {
	b = append(b, st.txIDHead...)
	b = strconv.AppendInt(b, int64(st.txSeq), 10)
	st.txSeq++
	return b
}

// setTxIDHead prepares the ids of a transaction's changes,
// "<name>:<end LSN>:", or of the snapshot's rows, "<name>:snapshot:<LSN>:".
func (st *replStream) setTxIDHead(snapshot bool, lsn pgrepl.LSN) {
	b := append(st.txIDHead[:0], st.src.opts.name...)
	b = append(b, ':')
	if snapshot {
		b = append(b, "snapshot:"...)
	}
	b = lsn.AppendText(b)
	st.txIDHead = append(b, ':')
}

// rowEvent encodes a row change and makes its event; it returns the topic.
func (st *replStream) rowEvent(r *changeRow) (string, event.Event) {
	o := &st.src.opts
	var before, after [2]int
	st.ebuf, before, after = st.appendRowEnvelope(st.ebuf[:0], r)
	data := append([]byte(nil), st.ebuf...)

	// The id and the partition key share one string.
	kb := st.appendID(st.kbuf[:0])
	idLen := len(kb)
	keyTuple := r.new
	if keyTuple == nil {
		keyTuple = r.old
	}
	kb = appendKey(kb, r.rel, keyTuple)
	st.kbuf = kb
	idKey := string(kb)

	typ, topic := ChangeType, r.rel.topic
	if o.customType || o.customTopic {
		c := &cdc.Change{Op: r.op, TsMs: r.nowNs / 1e6, TsUs: r.nowNs / 1000, TsNs: r.nowNs, Source: cdc.Source{
			Version: SourceVersion, Connector: "postgresql", Name: o.name, TsMs: r.srcUs / 1000, Snapshot: r.snapshot,
			DB: st.db, Sequence: sequence(r.lastCommit, r.lsn), TsUs: r.srcUs, TsNs: r.srcUs * 1000,
			Schema: r.rel.schema, Table: r.rel.table, TxID: r.txID, LSN: r.lsn,
		}}
		if before[1] > 0 {
			c.Before = data[before[0]:before[1]:before[1]]
		}
		if after[1] > 0 {
			c.After = data[after[0]:after[1]:after[1]]
		}
		typ, topic = o.changeType(c), o.topicFn(c)
	}
	return topic, st.newEvent(idKey[:idLen], typ, r.rel.subjectPtr, st.txTime, idKey[idLen:], data)
}

// changeEvent encodes a change of another kind than a row (truncate,
// message) with cdc.AppendEncode and makes its event; it returns the
// topic.
func (st *replStream) changeEvent(c *cdc.Change, subject, key string) (string, event.Event) {
	o := &st.src.opts
	var id []byte
	if c.Op == cdc.OpMessage && c.Source.TxID == 0 {
		// A message outside transactions: "<name>:<LSN>:m".
		id = append(id, o.name...)
		id = append(id, ':')
		id = pgrepl.LSN(c.Source.LSN).AppendText(id)
		id = append(id, ":m"...)
	} else {
		id = st.appendID(id)
	}
	// The images are built as JSON objects and the op is valid, so that
	// encoding cannot fail.
	data, _ := cdc.AppendEncode(make([]byte, 0, 256), c)
	tm := &types.Timestamp{Time: time.UnixMilli(c.Source.TsMs).UTC()}
	var subj *string
	if subject != "" {
		subj = &subject
	}
	return o.topicFn(c), st.newEvent(string(id), o.changeType(c), subj, tm, key, data)
}

// newEvent makes an event. The context is built directly (the source URL
// parsed once): the setters of event.Event parse and validate on every
// call. Its time and subject may be shared between events: nothing
// changes them in place (the setters of the SDK replace them).
func (st *replStream) newEvent(id, typ string, subject *string, tm *types.Timestamp, key string, data []byte) event.Event {
	ec := &event.EventContextV1{
		ID:              id,
		Source:          st.src.ceSource,
		Type:            typ,
		DataContentType: &jsonContentType,
		Time:            tm,
		Subject:         subject,
	}
	if key != "" {
		ec.Extensions = map[string]any{"partitionkey": key}
	}
	return event.Event{Context: ec, DataEncoded: data}
}

// keyChanged reports whether an update changed the row's primary key:
// the server sends the old key ('K') only then; with the whole old row
// ('O', REPLICA IDENTITY FULL) the key columns are compared.
func keyChanged(rel *relInfo, oldKind byte, old, new pgrepl.Tuple) bool {
	switch oldKind {
	case 'K':
		return true
	case 'O':
		for _, i := range rel.pk {
			if i >= len(old) || i >= len(new) {
				return false
			}
			o, n := old[i], new[i]
			if n.Kind == pgrepl.ValueUnchanged {
				continue
			}
			if o.Kind != n.Kind || string(o.Data) != string(n.Data) {
				return true
			}
		}
	}
	return false
}
