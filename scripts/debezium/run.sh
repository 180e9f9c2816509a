#!/usr/bin/env bash
# Runs Debezium's PostgreSQL connector in its embedded engine for eventkit's
# parity tests (postgres/pgcdc/debezium_*_test.go): Runner.java beside this
# file, on the classpath of pom.xml, resolved by Maven from Maven Central
# into ~/.m2 (nothing is downloaded from anywhere else). Each change event is
# written to stdout as one JSON line (see Runner.java).
#
# Usage:
#   scripts/debezium/run.sh <connector.properties>   run the engine until
#                                                    stdin closes or SIGTERM
#   scripts/debezium/run.sh classpath                resolve the classpath,
#                                                    print the path of its file
#   scripts/debezium/run.sh version                  the Debezium version
#
# Exit status 3: java or mvn is missing (the message names them); the tests
# skip then (fail under CI=true).
#
# Environment:
#   EVENTKIT_DEBEZIUM_DIR   working directory (default /tmp/eventkit-debezium):
#                           the classpath file and Maven's log
#   DEBEZIUM_HEAP_OPTS      the JVM's heap (default -Xmx256m: the test
#                           machines are small)
#   DEBEZIUM_JVM_OPTS       other JVM options (default: serial GC, the first
#                           JIT tier only)
# Needs java (17 or newer) and mvn on PATH.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${EVENTKIT_DEBEZIUM_DIR:-/tmp/eventkit-debezium}
mkdir -p "$dir"

say() { printf 'debezium: %s\n' "$*" >&2; }
version() { sed -n 's:.*<debezium.version>\(.*\)</debezium.version>.*:\1:p' "$here/pom.xml"; }

what="Debezium $(version)"
# shellcheck source=../lib/maven.sh
. "$here/../lib/maven.sh"
need_java_mvn "${1:-}"

# run runs the engine on a properties file.
run() {
  classpath
  local heap=${DEBEZIUM_HEAP_OPTS:--Xmx256m}
  local jvm=${DEBEZIUM_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1}
  # exec: the test's signal reaches the JVM. Logs (SLF4J simple) go to
  # stderr.
  # shellcheck disable=SC2086 # the options are lists of words
  exec java $heap $jvm -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$(cat "$dir/classpath.txt")" "$here/Runner.java" "$1"
}

case "${1:-}" in
classpath) classpath && echo "$dir/classpath.txt" ;;
version) version ;;
"" | -*) echo "usage: $0 <connector.properties> | classpath | version" >&2 && exit 2 ;;
*) run "$1" ;;
esac
