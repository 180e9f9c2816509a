#!/usr/bin/env bash
# Runs Apache Pulsar standalone for eventkit's tests: the broker, one bookie
# and the metadata store (RocksDB) in one JVM, on 127.0.0.1:6650 (HTTP admin
# on 127.0.0.1:8091). Pulsar and its dependencies come from Maven Central
# through pom.xml beside this file (Maven resolves them into ~/.m2).
#
# Usage:
#   scripts/pulsar/start.sh         start unless 6650 answers, wait until the
#                                   broker is ready, exit 0 then
#   scripts/pulsar/start.sh stop    stop the JVM this script started
#
# Each start wipes the data of an earlier run.
#
# Environment:
#   EVENTKIT_PULSAR_DIR  working directory (default /tmp/eventkit-pulsar)
#   PULSAR_HEAP_OPTS     the JVM's memory (default -Xmx512m -Xms128m
#                        -XX:MaxDirectMemorySize=256m)
# Needs java (17 or newer) and mvn on PATH.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${EVENTKIT_PULSAR_DIR:-/tmp/eventkit-pulsar}
port=6650 http=8091
mkdir -p "$dir"
say() { printf 'pulsar: %s\n' "$*" >&2; }
up() { (echo >"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

case "${1:-start}" in
start) ;;
stop)
  # SIGTERM, then SIGKILL if it has not ended within 60 s.
  if pid=$(cat "$dir/pulsar.pid" 2>/dev/null) && kill "$pid" 2>/dev/null; then
    timeout 60 tail --pid="$pid" -f /dev/null || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pulsar.pid"
  exit 0
  ;;
*) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

up $port && { say "something already answers on 127.0.0.1:$port"; exit 0; }
for tool in java mvn; do
  command -v $tool >/dev/null 2>&1 || { say "$tool not found: install Java 17+ and Maven"; exit 1; }
done
sum=$(sha256sum "$here/pom.xml" | cut -d' ' -f1)
if [ ! -s "$dir/classpath.txt" ] || [ "$(cat "$dir/classpath.sum" 2>/dev/null)" != "$sum" ]; then
  say "resolving Pulsar from Maven Central (mvn dependency:build-classpath)"
  mvn -q -B -f "$here/pom.xml" dependency:build-classpath \
    -Dmdep.outputFile="$dir/classpath.txt" >"$dir/mvn.log" 2>&1 ||
    { tail -20 "$dir/mvn.log" >&2; exit 1; }
  echo "$sum" >"$dir/classpath.sum"
fi

rm -rf "$dir/data"
mkdir -p "$dir/data"
cat >"$dir/standalone.conf" <<EOF
# Written by eventkit's scripts/pulsar/start.sh: Pulsar standalone for tests.
clusterName=standalone
advertisedAddress=127.0.0.1
bindAddress=127.0.0.1
brokerServicePort=$port
webServicePort=$http
managedLedgerDefaultEnsembleSize=1
managedLedgerDefaultWriteQuorum=1
managedLedgerDefaultAckQuorum=1
allowAutoTopicCreation=true
functionsWorkerEnabled=false
transactionCoordinatorEnabled=false
dbStorage_writeCacheMaxSizeMb=32
dbStorage_readAheadCacheMaxSizeMb=32
dbStorage_rocksDB_blockCacheSize=16777216
journalMaxGroupWaitMSec=1
acknowledgmentAtBatchIndexLevelEnabled=true
EOF

heap=${PULSAR_HEAP_OPTS:--Xmx512m -Xms128m -XX:MaxDirectMemorySize=256m}
say "starting Pulsar standalone (127.0.0.1:$port, admin http://127.0.0.1:$http, $heap, log: $dir/pulsar.log)"
# shellcheck disable=SC2086 # the options are lists of words
setsid nohup java $heap -XX:+UseSerialGC -Djava.awt.headless=true -cp "$(cat "$dir/classpath.txt")" \
  org.apache.pulsar.PulsarStandaloneStarter --config "$dir/standalone.conf" \
  --no-functions-worker --no-stream-storage --wipe-data --bookkeeper-port 3191 \
  --bookkeeper-dir "$dir/data/bookkeeper" --metadata-dir "$dir/data/metadata" \
  >"$dir/pulsar.log" 2>&1 </dev/null &
echo $! >"$dir/pulsar.pid"
for _ in $(seq 720); do # 180 s
  if up $port && grep -q 'messaging service is ready' "$dir/pulsar.log"; then exit 0; fi
  kill -0 "$(cat "$dir/pulsar.pid")" 2>/dev/null || break
  sleep 0.25
done
say "Pulsar did not start; the end of $dir/pulsar.log:"
tail -20 "$dir/pulsar.log" >&2
exit 1
