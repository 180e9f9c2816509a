package pgcdc

import (
	"encoding/base64"
	"strconv"
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
	colKeys       [][]byte // `"<name>":` per column
	pk            []int    // indexes of the primary key columns (or the replica identity key)
	// srcMid is the source block from "snapshot" to "txId" (the value of
	// txId excluded), for snapshot "false" and "true".
	srcMid [2][]byte
}

func (st *replStream) newRelation(schema, table string, cols []pgrepl.Column, pk []int) *relInfo {
	rel := &relInfo{schema: schema, table: table, subject: schema + "." + table, cols: cols, pk: pk}
	rel.subjectPtr = &rel.subject
	if !st.src.opts.customTopic {
		rel.topic = st.src.opts.name + "." + sanitize(schema) + "." + sanitize(table)
	}
	rel.colKeys = make([][]byte, len(cols))
	for i, c := range cols {
		rel.colKeys[i] = append(cdc.AppendString(nil, c.Name), ':')
	}
	rel.srcMid[0] = st.appendSrcMid(nil, cdc.SnapshotFalse, schema, table)
	rel.srcMid[1] = st.appendSrcMid(nil, cdc.SnapshotTrue, schema, table)
	return rel
}

// appendSrcHead appends the start of the source block up to the value of
// its ts_ms.
func appendSrcHead(b []byte, name string) []byte {
	b = append(b, `,"source":{"version":`...)
	b = cdc.AppendString(b, SourceVersion)
	b = append(b, `,"connector":"postgresql","name":`...)
	b = cdc.AppendString(b, name)
	return append(b, `,"ts_ms":`...)
}

func (st *replStream) appendSrcMid(b []byte, snapshot, schema, table string) []byte {
	b = append(b, `,"snapshot":`...)
	b = cdc.AppendString(b, snapshot)
	b = append(b, `,"db":`...)
	b = cdc.AppendString(b, st.db)
	b = append(b, `,"schema":`...)
	b = cdc.AppendString(b, schema)
	b = append(b, `,"table":`...)
	b = cdc.AppendString(b, table)
	return append(b, `,"txId":`...)
}

// changeRow is one row change to encode.
type changeRow struct {
	op       cdc.Op
	rel      *relInfo
	snapshot string // cdc.SnapshotFalse, SnapshotTrue or SnapshotLast
	srcMs    int64  // source.ts_ms
	txID     int64  // source.txId (0: null)
	lsn      int64  // source.lsn (0: null)
	nowMs    int64  // ts_ms
	oldKind  byte   // 0: no before image; 'K': key columns only; 'O': the whole row
	old, new pgrepl.Tuple
}

// appendRowEnvelope appends the envelope of r, and reports where its
// before and after images are in b (empty spans when null).
func (st *replStream) appendRowEnvelope(b []byte, r *changeRow) (_ []byte, before, after [2]int) {
	b = append(b, `{"before":`...)
	if r.oldKind != 0 {
		before[0] = len(b)
		b = appendImage(b, r.rel, r.old, r.oldKind == 'K')
		before[1] = len(b)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"after":`...)
	if r.new != nil {
		after[0] = len(b)
		b = appendImage(b, r.rel, r.new, false)
		after[1] = len(b)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, st.srcHead...)
	b = strconv.AppendInt(b, r.srcMs, 10)
	switch r.snapshot {
	case cdc.SnapshotFalse:
		b = append(b, r.rel.srcMid[0]...)
	case cdc.SnapshotTrue:
		b = append(b, r.rel.srcMid[1]...)
	default:
		b = st.appendSrcMid(b, r.snapshot, r.rel.schema, r.rel.table)
	}
	b = appendOptInt(b, r.txID)
	b = append(b, `,"lsn":`...)
	b = appendOptInt(b, r.lsn)
	b = append(b, `,"xmin":null},"op":"`...)
	b = append(b, r.op...)
	b = append(b, `","ts_ms":`...)
	b = strconv.AppendInt(b, r.nowMs, 10)
	return append(b, '}'), before, after
}

func appendOptInt(b []byte, v int64) []byte {
	if v == 0 {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, v, 10)
}

// appendImage appends the JSON object of a row; keyOnly keeps the key
// columns.
func appendImage(b []byte, rel *relInfo, t pgrepl.Tuple, keyOnly bool) []byte {
	b = append(b, '{')
	first := true
	for i, col := range rel.cols {
		if i >= len(t) {
			break
		}
		if keyOnly && !col.Key {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, rel.colKeys[i]...)
		b = appendTupleValue(b, col.TypeOID, t[i])
	}
	return append(b, '}')
}

func appendTupleValue(b []byte, typ uint32, v pgrepl.TupleValue) []byte {
	switch v.Kind {
	case pgrepl.ValueNull:
		return append(b, "null"...)
	case pgrepl.ValueUnchanged:
		return cdc.AppendString(b, cdc.UnavailableValue)
	case pgrepl.ValueBinary: // not requested; kept as base64
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.Data)
		return append(b, '"')
	}
	return appendText(b, typ, v.Data)
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
		b = append(b, rel.colKeys[i]...)
		if i < len(t) {
			b = appendTupleValue(b, rel.cols[i].TypeOID, t[i])
		} else {
			b = append(b, "null"...)
		}
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
		c := &cdc.Change{Op: r.op, TsMs: r.nowMs, Source: cdc.Source{
			Version: SourceVersion, Connector: "postgresql", Name: o.name, TsMs: r.srcMs, Snapshot: r.snapshot,
			DB: st.db, Schema: r.rel.schema, Table: r.rel.table, TxID: r.txID, LSN: r.lsn,
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
