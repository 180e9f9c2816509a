#!/usr/bin/env bash
# The reference client for BenchmarkCDCBulkLoad: PostgreSQL's own
# pg_recvlogical (C, writes to /dev/null, decodes nothing) streams the same
# load (50 INSERT ... SELECT of 10,000 rows into the benchmark's table)
# while it runs. Prints the insert rate, the rate at which the walsender
# sent the load (its sent_lsn reaching the end of the load), their ratio,
# the WAL not sent at the end of the load, and the walsender's CPU time per
# row (/proc: the server must run on this machine).
#
#   bench/cdc/recvlogical.sh            # EVENTKIT_POSTGRES_URL or the local default
set -euo pipefail
DSN="${EVENTKIT_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
PG_BIN="${PG_BIN:-$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | tail -1)}"
ROWS=500000 STEP=10000
N="rl$$"
P=(psql "$DSN" -Atq -v ON_ERROR_STOP=1)
TMP=$(mktemp -d)
cleanup() {
  [ -n "${RP:-}" ] && kill "$RP" 2>/dev/null && wait "$RP" 2>/dev/null || true
  sleep 0.5
  "${P[@]}" -c "select pg_drop_replication_slot('${N}_s')" -c "drop publication if exists ${N}_pub" -c "drop table if exists ${N}_t" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT
"${P[@]}" -c "create table ${N}_t (id int primary key, customer text, amount numeric(12,2), created timestamptz)" \
  -c "create publication ${N}_pub for table ${N}_t" -c "select pg_create_logical_replication_slot('${N}_s', 'pgoutput')" >/dev/null
for lo in $(seq 1 $STEP $ROWS); do
  echo "INSERT INTO ${N}_t SELECT g, 'customer-' || g, g * 1.25, now() FROM generate_series($lo, $((lo + STEP - 1))) g;"
done > "$TMP/load.sql"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # clock ticks (1/100 s)
"$PG_BIN/pg_recvlogical" -d "$DSN" --slot "${N}_s" --start -o proto_version=1 -o publication_names="${N}_pub" -f /dev/null &
RP=$!
WS=""
for _ in $(seq 1 100); do
  WS=$("${P[@]}" -c "select active_pid from pg_replication_slots where slot_name = '${N}_s' and active_pid is not null")
  [ -n "$WS" ] && break
  sleep 0.05
done
c0=$(cpu "$WS"); t0=$(date +%s.%N)
"${P[@]}" -f "$TMP/load.sql"
t1=$(date +%s.%N)
END=$("${P[@]}" -c "select pg_current_wal_lsn()")
UNSENT=$("${P[@]}" -c "select pg_current_wal_lsn() - sent_lsn from pg_stat_replication where pid = $WS")
until [ "$("${P[@]}" -c "select pg_wal_lsn_diff(sent_lsn, '$END') >= 0 from pg_stat_replication where pid = $WS")" = t ]; do sleep 0.02; done
t2=$(date +%s.%N); c1=$(cpu "$WS")
awk -v r=$ROWS -v t0="$t0" -v t1="$t1" -v t2="$t2" -v c0="$c0" -v c1="$c1" -v u="$UNSENT" 'BEGIN {
  printf "insert %.0f rows/s; streamed %.0f rows/s; ratio %.3f; unsent at load end %d bytes; walsender cpu %.2f us/row\n",
    r / (t1 - t0), r / (t2 - t0), (t1 - t0) / (t2 - t0), u, (c1 - c0) * 10000 / r }'
