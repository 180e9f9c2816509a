#!/usr/bin/env bash
# Runs Interop.java beside this file, the CloudEvents Java SDK side of
# eventkit's interop tests (interop/foreign_test.go), on the classpath of
# pom.xml, resolved by Maven from Maven Central into ~/.m2 (nothing is
# downloaded from anywhere else). One JVM serves every case: it reads
# commands on stdin and answers on stdout (see Interop.java).
#
# Usage:
#   scripts/interop/run-java.sh run        run the program until stdin closes
#   scripts/interop/run-java.sh classpath  resolve the classpath, print the
#                                          path of its file
#   scripts/interop/run-java.sh version    the SDK's version
#
# Exit status 3: java or mvn is missing (the message names them); the tests
# skip then (fail under CI=true).
#
# Environment:
#   EVENTKIT_INTEROP_DIR   working directory (default /tmp/eventkit-interop):
#                          the classpath file and Maven's log
#   INTEROP_JVM_OPTS       the JVM's options (default: -Xmx256m, serial GC,
#                          the first JIT tier only: the test machines are
#                          small and the program is short)
# Needs java (17 or newer) and mvn on PATH.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
say() { printf 'interop-java: %s\n' "$*" >&2; }
version() { sed -n 's:.*<cloudevents.version>\(.*\)</cloudevents.version>.*:\1:p' "$here/pom.xml"; }

# The working directory and the classpath step (scripts/lib/maven.sh).
dir=${EVENTKIT_INTEROP_DIR:-/tmp/eventkit-interop}
what="the CloudEvents Java SDK $(version)"
# shellcheck source=../lib/maven.sh
. "$here/../lib/maven.sh"
need_java_mvn "${1:-}"
mkdir -p "$dir"

run() {
  classpath
  local jvm=${INTEROP_JVM_OPTS:--Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}
  # exec: the test's signal reaches the JVM. Logs (SLF4J simple) go to
  # stderr.
  # shellcheck disable=SC2086 # the options are a list of words
  exec java $jvm -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$(cat "$dir/classpath.txt")" "$here/Interop.java"
}

case "${1:-}" in
classpath) classpath && echo "$dir/classpath.txt" ;;
version) version ;;
run) run ;;
*) echo "usage: $0 run | classpath | version" >&2 && exit 2 ;;
esac
