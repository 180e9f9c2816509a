package cdc_test

import (
	"fmt"

	"github.com/eventkit/eventkit/cdc"
)

// Decode reads a Debezium change event, here with its Kafka Connect schema
// part, into a Change; Row decodes the row image into a struct.
func ExampleDecode() {
	value := []byte(`{"schema": {"type": "struct", "fields": []},
	  "payload": {"before": null,
	    "after": {"id": 1, "first_name": "Anne", "email": "annek@noanswer.org"},
	    "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "PostgreSQL_server",
	      "ts_ms": 1559033904863, "snapshot": "false", "db": "postgres", "schema": "public",
	      "table": "customers", "txId": 555, "lsn": 24023128, "xmin": null},
	    "op": "c", "ts_ms": 1559033904863}}`)
	c, err := cdc.Decode(value)
	if err != nil {
		fmt.Println(err)
		return
	}
	var customer struct {
		ID        int    `json:"id"`
		FirstName string `json:"first_name"`
	}
	if err := c.Row(&customer); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Op, c.Source.Schema+"."+c.Source.Table, c.Source.TxID, customer.ID, customer.FirstName)
	// Output: c public.customers 555 1 Anne
}

// Encode writes the envelope of a change.
func ExampleEncode() {
	c := cdc.Change{
		Op:    cdc.OpUpdate,
		After: []byte(`{"id":1,"note":"b","big":"` + cdc.UnavailableValue + `"}`),
		Source: cdc.Source{Version: "eventkit-cdc/1", Connector: "postgresql", Name: "shop", TsMs: 1700000000000,
			DB: "shop", Schema: "public", Table: "notes", TxID: 771, LSN: 24023128},
		TsMs: 1700000000042,
	}
	b, _ := cdc.Encode(&c)
	fmt.Println(string(b))
	// Output: {"before":null,"after":{"id":1,"note":"b","big":"__debezium_unavailable_value"},"source":{"version":"eventkit-cdc/1","connector":"postgresql","name":"shop","ts_ms":1700000000000,"snapshot":"false","db":"shop","schema":"public","table":"notes","txId":771,"lsn":24023128,"xmin":null,"origin":null,"origin_lsn":null},"transaction":null,"op":"u","ts_ms":1700000000042}
}
