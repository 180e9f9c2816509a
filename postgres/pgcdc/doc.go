// Package pgcdc is the change data capture source for PostgreSQL: a Source
// reads the changes of tables from a logical replication slot (pgoutput,
// protocol 1 or 2) and publishes them to any eventkit.Publisher as
// CloudEvents carrying Debezium-compatible envelopes (package cdc), in
// commit order and at least once (see Source for what is guaranteed).
//
// The envelopes are, field by field and value for value, those Debezium
// 3.6's PostgreSQL connector writes at its default settings
// (decimal.handling.mode precise, time.precision.mode adaptive,
// binary.handling.mode bytes, interval.handling.mode numeric;
// WithValueModes selects the other modes): dates in days, times and
// timestamps in milli- or microseconds, timestamptz and timetz in UTC text, intervals in
// microseconds, numeric as unscaled bytes, json as text; a change of the
// primary key is a delete and a create. docs/cdc.md lists the mapping and
// the few differences, each with its reason (no tombstones: they have no
// CloudEvents form); the TestDebeziumParity tests run Debezium itself
// (scripts/debezium) beside the source and compare.
//
// The package is named pgcdc, not cdc, so that it can be imported next to
// github.com/eventkit/eventkit/cdc (the driver-free envelope format, which
// consumers use) without an alias. The replication protocol lives in its
// internal package pgrepl; nothing else in the module links it.
//
// Tests need a PostgreSQL server with wal_level=logical:
// EVENTKIT_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). They create
// replication slots and publications and drop them at the end; run the
// PostgreSQL packages' tests one package at a time (go test -p 1).
package pgcdc
