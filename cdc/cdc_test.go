package cdc

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The vectors follow the change event values of Debezium's PostgreSQL
// connector documentation (the customers table: id, first_name, last_name,
// email), with and without the Kafka Connect schema part.
const customersSchema = `{"type":"struct","fields":[
 {"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"}],"optional":true,"name":"PostgreSQL_server.inventory.customers.Value","field":"before"},
 {"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"}],"optional":true,"name":"PostgreSQL_server.inventory.customers.Value","field":"after"},
 {"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"boolean","optional":true,"default":false,"field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},
 {"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"}],
 "optional":false,"name":"PostgreSQL_server.inventory.customers.Envelope"}`

const createPayload = `{
  "before": null,
  "after": {"id": 1, "first_name": "Anne", "last_name": "Kretchmar", "email": "annek@noanswer.org"},
  "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "PostgreSQL_server", "ts_ms": 1559033904863,
    "snapshot": true, "db": "postgres", "sequence": "[\"24023119\",\"24023128\"]", "schema": "public", "table": "customers",
    "txId": 555, "lsn": 24023128, "xmin": null},
  "op": "c",
  "ts_ms": 1559033904863
}`

const updatePayload = `{
  "before": null,
  "after": {"id": 1, "first_name": "Anne Marie", "last_name": "Kretchmar", "email": "annek@noanswer.org"},
  "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "PostgreSQL_server", "ts_ms": 1559033904863,
    "snapshot": "false", "db": "postgres", "schema": "public", "table": "customers", "txId": 556, "lsn": 24023128, "xmin": null},
  "op": "u",
  "ts_ms": 1465584025523
}`

const deletePayload = `{
  "before": {"id": 1},
  "after": null,
  "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "PostgreSQL_server", "ts_ms": 1559033904863,
    "snapshot": false, "db": "postgres", "schema": "public", "table": "customers", "txId": 556, "lsn": 46523128, "xmin": null},
  "op": "d",
  "ts_ms": 1465581902461
}`

const truncatePayload = `{
  "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "PostgreSQL_server", "ts_ms": 1559033904863,
    "snapshot": "false", "db": "postgres", "sequence": "[\"30182824\",\"30182824\"]", "schema": "public", "table": "customers",
    "txId": 556, "lsn": 46523128, "xmin": null},
  "op": "t",
  "ts_ms": 1559033904961
}`

const messagePayload = `{
  "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "PostgreSQL_server", "ts_ms": 1559033904863,
    "snapshot": "false", "db": "postgres", "schema": "", "table": "", "txId": 556, "lsn": 46523128, "xmin": null},
  "op": "m",
  "ts_ms": 1559033904961,
  "message": {"prefix": "foo", "content": "YmFy"}
}`

func TestDecodeDebeziumVectors(t *testing.T) {
	src := Source{Version: "2.7.3.Final", Connector: "postgresql", Name: "PostgreSQL_server", TsMs: 1559033904863,
		DB: "postgres", Schema: "public", Table: "customers"}
	create := src
	create.Snapshot, create.TxID, create.LSN, create.Sequence = SnapshotTrue, 555, 24023128, `["24023119","24023128"]`
	update := src
	update.Snapshot, update.TxID, update.LSN = SnapshotFalse, 556, 24023128
	del := update
	del.LSN = 46523128
	trunc := del
	trunc.Sequence = `["30182824","30182824"]`
	msg := del
	msg.Schema, msg.Table = "", ""

	cases := []struct {
		name    string
		payload string
		want    Change
	}{
		{"create", createPayload, Change{Op: OpCreate, After: json.RawMessage(`{"id": 1, "first_name": "Anne", "last_name": "Kretchmar", "email": "annek@noanswer.org"}`), Source: create, TsMs: 1559033904863}},
		{"update", updatePayload, Change{Op: OpUpdate, After: json.RawMessage(`{"id": 1, "first_name": "Anne Marie", "last_name": "Kretchmar", "email": "annek@noanswer.org"}`), Source: update, TsMs: 1465584025523}},
		{"delete", deletePayload, Change{Op: OpDelete, Before: json.RawMessage(`{"id": 1}`), Source: del, TsMs: 1465581902461}},
		{"truncate", truncatePayload, Change{Op: OpTruncate, Source: trunc, TsMs: 1559033904961}},
		{"message", messagePayload, Change{Op: OpMessage, Source: msg, TsMs: 1559033904961, Message: &Message{Prefix: "foo", Content: []byte("bar")}}},
	}
	for _, c := range cases {
		for _, form := range []string{"payload only", "with schema"} {
			t.Run(c.name+"/"+form, func(t *testing.T) {
				doc := c.payload
				if form == "with schema" {
					doc = `{"schema":` + customersSchema + `,"payload":` + c.payload + `}`
				}
				got, err := Decode([]byte(doc))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Fatalf("Decode =\n%+v\nwant\n%+v", got, c.want)
				}
				// Encode and decode again: the same change (row images compacted).
				enc, err := Encode(&got)
				if err != nil {
					t.Fatal(err)
				}
				if !json.Valid(enc) {
					t.Fatalf("Encode produced invalid JSON: %s", enc)
				}
				again, err := Decode(enc)
				if err != nil {
					t.Fatalf("Decode(Encode): %v\n%s", err, enc)
				}
				if !sameChange(t, got, again) {
					t.Fatalf("round trip:\n%+v\n%+v", got, again)
				}
			})
		}
	}
}

func sameChange(t *testing.T, a, b Change) bool {
	t.Helper()
	ja, jb := a.Before, b.Before
	if !jsonEqual(ja, jb) || !jsonEqual(a.After, b.After) {
		return false
	}
	a.Before, a.After, b.Before, b.After = nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

func jsonEqual(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func TestRow(t *testing.T) {
	var cust struct {
		ID        int    `json:"id"`
		FirstName string `json:"first_name"`
	}
	c, err := Decode([]byte(updatePayload))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Row(&cust); err != nil || cust.ID != 1 || cust.FirstName != "Anne Marie" {
		t.Fatalf("Row = %+v, %v", cust, err)
	}
	d, _ := Decode([]byte(deletePayload))
	cust.ID = 0
	if err := d.Row(&cust); err != nil || cust.ID != 1 {
		t.Fatalf("Row of delete = %+v, %v", cust, err)
	}
	tr, _ := Decode([]byte(truncatePayload))
	if err := tr.Row(&cust); err == nil {
		t.Fatal("Row of a truncate succeeded")
	}
}

func TestDecodeInvalid(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":         `{`,
		"array":            `[]`,
		"no op":            `{"before":null,"after":{"id":1}}`,
		"bad op":           `{"op":"x","after":{"id":1}}`,
		"create no after":  `{"op":"c","before":null,"after":null}`,
		"delete no before": `{"op":"d","after":null}`,
		"message missing":  `{"op":"m"}`,
		"after not object": `{"op":"c","after":[1]}`,
		"bad ts":           `{"op":"t","ts_ms":"x"}`,
		"bad source":       `{"op":"t","source":{"txId":"x"}}`,
	} {
		if _, err := Decode([]byte(doc)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Decode error %v, want ErrInvalid", name, err)
		}
	}
}

func TestEncodeShape(t *testing.T) {
	c := Change{Op: OpCreate, After: json.RawMessage(`{"id":1,"note":"a\"b"}`), TsMs: 5, TsUs: 5001, TsNs: 5001002,
		Source: Source{Version: "v", Connector: "postgresql", Name: "n", TsMs: 4, TsUs: 4003, TsNs: 4003000, DB: "postgres",
			Sequence: `[null,"100"]`, Schema: "public", Table: "t", TxID: 9, LSN: 100}}
	got, err := Encode(&c)
	if err != nil {
		t.Fatal(err)
	}
	// Debezium 3's shape: the times in µs and ns, origin, transaction.
	want := `{"before":null,"after":{"id":1,"note":"a\"b"},"source":{"version":"v","connector":"postgresql","name":"n","ts_ms":4,"snapshot":"false","db":"postgres","sequence":"[null,\"100\"]","ts_us":4003,"ts_ns":4003000,"schema":"public","table":"t","txId":9,"lsn":100,"xmin":null,"origin":null,"origin_lsn":null},"transaction":null,"op":"c","ts_ms":5,"ts_us":5001,"ts_ns":5001002}`
	if string(got) != want {
		t.Fatalf("Encode =\n%s\nwant\n%s", got, want)
	}
	if _, err := Encode(&Change{Op: "z"}); err == nil {
		t.Fatal("Encode accepted an invalid op")
	}
	if _, err := Encode(&Change{Op: OpCreate, After: json.RawMessage(`1`)}); err == nil {
		t.Fatal("Encode accepted a non-object row")
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\s", "\n\r\t\x00\x1f", "é✓😀", "\u2028\u2029", "bad\xffutf8", "<&>"} {
		got := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("AppendString(%q) = %s: %v", s, got, err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if back != want {
			t.Fatalf("AppendString(%q) decodes to %q", s, back)
		}
	}
}

// FuzzDecode checks that Decode never panics and that what it accepts
// encodes to an envelope it accepts again.
func FuzzDecode(f *testing.F) {
	for _, p := range []string{createPayload, updatePayload, deletePayload, truncatePayload, messagePayload,
		`{"schema":{},"payload":` + createPayload + `}`} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			return
		}
		enc, err := Encode(&c)
		if err != nil {
			t.Fatalf("Encode of a decoded change: %v", err)
		}
		if _, err := Decode(enc); err != nil {
			t.Fatalf("Decode(Encode(c)): %v\n%s", err, enc)
		}
	})
}
