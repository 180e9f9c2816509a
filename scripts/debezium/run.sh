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
# Environment:
#   EVENTKIT_DEBEZIUM_DIR   working directory (default /tmp/eventkit-debezium):
#                           the classpath file and Maven's log
#   DEBEZIUM_HEAP_OPTS      the JVM's heap (default -Xmx256m: the test
#                           machines are small)
#   EVENTKIT_DEBEZIUM_MVN_OFFLINE=1  Maven resolves offline (from ~/.m2 only)
# Needs java (17 or newer) and mvn on PATH.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${EVENTKIT_DEBEZIUM_DIR:-/tmp/eventkit-debezium}
mkdir -p "$dir"

say() { printf 'debezium: %s\n' "$*" >&2; }
version() { sed -n 's:.*<debezium.version>\(.*\)</debezium.version>.*:\1:p' "$here/pom.xml"; }

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
  [ "${EVENTKIT_DEBEZIUM_MVN_OFFLINE:-}" = 1 ] && offline=-o from="~/.m2 (offline)"
  say "resolving Debezium $(version) from $from (mvn dependency:build-classpath)"
  mvn -q -B $offline -f "$here/pom.xml" dependency:build-classpath \
    -Dmdep.outputFile="$dir/classpath.txt.new" >"$dir/mvn.log" 2>&1 ||
    { tail -20 "$dir/mvn.log" >&2; return 1; }
  mv "$dir/classpath.txt.new" "$dir/classpath.txt"
  echo "$sum" >"$dir/classpath.sum"
}

case "${1:-}" in
classpath)
  classpath
  echo "$dir/classpath.txt"
  exit 0
  ;;
version)
  version
  exit 0
  ;;
"" | -*)
  echo "usage: $0 <connector.properties> | classpath | version" >&2
  exit 2
  ;;
esac

command -v java >/dev/null 2>&1 || { say "java not found: install Java 17 or newer"; exit 1; }
classpath
heap=${DEBEZIUM_HEAP_OPTS:--Xmx256m}
# exec: the test's signal reaches the JVM. DEBEZIUM_JVM_OPTS: other JVM
# options (default: serial GC, the first JIT tier only; the machines are
# small). Logs (SLF4J simple) go to stderr.
# shellcheck disable=SC2086 # the heap options are a list of words
jvm=${DEBEZIUM_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1}
# shellcheck disable=SC2086
exec java $heap $jvm -Djava.awt.headless=true \
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
  -cp "$(cat "$dir/classpath.txt")" "$here/Runner.java" "$1"
