#!/usr/bin/env bash
# Runs Apache Kafka for eventkit's tests: one KRaft node that is both broker
# and controller, on 127.0.0.1:9092 (controller on 127.0.0.1:9093). Kafka and
# its dependencies come from Maven Central through pom.xml beside this file
# (Maven resolves them into ~/.m2; nothing is downloaded from anywhere else).
#
# Usage:
#   scripts/kafka/start.sh            start the node unless 9092 answers, wait
#                                     for it, exit 0 when it answers
#   scripts/kafka/start.sh stop       stop the node this script started
#   scripts/kafka/start.sh classpath  print the path of a file that holds the
#                                     broker's Java classpath (tests that start
#                                     their own brokers run `java -cp` on it)
#   scripts/kafka/start.sh version    print the Kafka version of pom.xml
#
# Each start formats a new, empty node: the data of an earlier run is deleted.
#
# Environment:
#   EVENTKIT_KAFKA_DIR  working directory (default /tmp/eventkit-kafka): the
#                       classpath file, server.properties, data/, server.log
#   KAFKA_HEAP_OPTS     the JVM's heap (default -Xmx512m -Xms128m: the test
#                       machines are small)
#   KAFKA_JVM_OPTS      other JVM options (default: serial GC)
#   EVENTKIT_KAFKA_MVN_OFFLINE=1  Maven resolves offline (from ~/.m2 only)
# Needs java (17 or newer) and mvn on PATH.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${EVENTKIT_KAFKA_DIR:-/tmp/eventkit-kafka}
port=9092
cport=9093
mkdir -p "$dir"

say() { printf 'kafka: %s\n' "$*" >&2; }
up() { (echo >"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

version() { sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml"; }

# classpath writes $dir/classpath.txt with Maven unless it is there for this
# pom.xml already (its checksum is kept beside it) and its jars exist.
classpath() {
  local sum cp
  sum=$(sha256sum "$here/pom.xml" | cut -d' ' -f1)
  if [ -s "$dir/classpath.txt" ] && [ "$(cat "$dir/classpath.sum" 2>/dev/null)" = "$sum" ]; then
    cp=$(cat "$dir/classpath.txt")
    if ls ${cp//:/ } >/dev/null 2>&1; then return 0; fi
  fi
  command -v mvn >/dev/null 2>&1 || { say "mvn not found: install Maven"; return 1; }
  local offline= from="Maven Central"
  [ "${EVENTKIT_KAFKA_MVN_OFFLINE:-}" = 1 ] && offline=-o from="~/.m2 (offline)"
  say "resolving Kafka $(version) from $from (mvn dependency:build-classpath)"
  mvn -q -B $offline -f "$here/pom.xml" dependency:build-classpath \
    -Dmdep.outputFile="$dir/classpath.txt.new" >"$dir/mvn.log" 2>&1 ||
    { tail -20 "$dir/mvn.log" >&2; return 1; }
  mv "$dir/classpath.txt.new" "$dir/classpath.txt"
  echo "$sum" >"$dir/classpath.sum"
}

case "${1:-start}" in
classpath)
  classpath
  echo "$dir/classpath.txt"
  exit 0
  ;;
version)
  version
  exit 0
  ;;
stop)
  # The node shuts down cleanly on SIGTERM; SIGKILL after 60 s.
  pid=$(cat "$dir/kafka.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 240); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/kafka.pid"
  exit 0
  ;;
start) ;;
*)
  echo "usage: $0 [start|stop|classpath|version]" >&2
  exit 2
  ;;
esac

if up $port; then
  say "something already answers on 127.0.0.1:$port"
  exit 0
fi
command -v java >/dev/null 2>&1 || { say "java not found: install Java 17 or newer"; exit 1; }
classpath
cp=$(cat "$dir/classpath.txt")

# A new node each time: settings for a one-node test cluster.
rm -rf "$dir/data"
cat >"$dir/server.properties" <<EOF
# Written by eventkit's scripts/kafka/start.sh: one KRaft node for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
# One node: the internal topics have one replica (and fewer partitions than
# the defaults, so that they are created quickly).
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# The tests use short session timeouts (the broker's default minimum is 6 s)
# and want a group to start at once.
group.min.session.timeout.ms=500
group.initial.rebalance.delay.ms=0
EOF
cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF

heap=${KAFKA_HEAP_OPTS:--Xmx512m -Xms128m}
jvm=${KAFKA_JVM_OPTS:--XX:+UseSerialGC -Djava.awt.headless=true}
java_run() { # main class and arguments
  # shellcheck disable=SC2086 # the options are lists of words
  java $heap $jvm -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$cp" "$@"
}

# A fixed cluster id: the base64url of the 16 bytes "eventkit-tests-1".
java_run kafka.tools.StorageTool format -t ZXZlbnRraXQtdGVzdHMtMQ \
  -c "$dir/server.properties" >"$dir/format.log" 2>&1 ||
  { say "formatting the storage failed:"; tail -20 "$dir/format.log" >&2; exit 1; }

say "starting Kafka $(version) (KRaft, 127.0.0.1:$port, heap: $heap, log: $dir/server.log)"
# setsid: the node outlives this script and the shell that ran it.
# shellcheck disable=SC2086
setsid nohup java $heap $jvm -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$cp" \
  kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 </dev/null &
echo $! >"$dir/kafka.pid"
# Ready when the node says so (its port opens a little earlier).
for _ in $(seq 480); do # 120 s
  if up $port && grep -q 'Kafka Server started' "$dir/server.log" 2>/dev/null; then exit 0; fi
  kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null || break
  sleep 0.25
done
say "Kafka did not start; the end of $dir/server.log:"
tail -20 "$dir/server.log" "$dir/stdout.log" >&2 2>/dev/null
exit 1
