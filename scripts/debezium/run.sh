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

missing=
for tool in java mvn; do
  command -v $tool >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ] && [ "${1:-}" != version ]; then
  say "missing:$missing (Java 17+ and Maven)"
  exit 3
fi

# classpath writes $dir/classpath.txt, unless it is newer than pom.xml and
# its jars are there: Maven resolves pom.xml from ~/.m2 (offline), else from
# Maven Central. (Maven takes seconds even offline: its answer is kept.)
classpath() {
  local f=$dir/classpath.txt
  if [ -s "$f" ] && [ "$f" -nt "$here/pom.xml" ] && ls $(tr : ' ' <"$f") >/dev/null 2>&1; then
    return 0
  fi
  local args=(-q -B -f "$here/pom.xml" dependency:build-classpath -Dmdep.outputFile="$dir/classpath.txt")
  mvn -o "${args[@]}" >"$dir/mvn.log" 2>&1 && return 0
  say "resolving Debezium $(version) from Maven Central (mvn dependency:build-classpath)"
  mvn "${args[@]}" >"$dir/mvn.log" 2>&1 || { tail -20 "$dir/mvn.log" >&2; return 1; }
}

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
