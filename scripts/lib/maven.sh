# shellcheck shell=bash
# What the scripts that run a Java program on a Maven project's classpath
# share (scripts/debezium/run.sh, scripts/interop/run-java.sh). Sourced
# after the script set these variables:
#   here   the directory of the script and its pom.xml
#   dir    the working directory: classpath.txt and mvn.log
#   what   what the classpath is, for the message of a first resolution
#   say    a function that prints a message to stderr
#
# need_java_mvn [ARG]: exits 3, naming them, when java or mvn is missing
# (the tests skip then, and fail under CI=true); ARG "version" needs
# neither.
need_java_mvn() {
  local missing= tool
  for tool in java mvn; do
    command -v $tool >/dev/null 2>&1 || missing="$missing $tool"
  done
  if [ -n "$missing" ] && [ "${1:-}" != version ]; then
    say "missing:$missing (Java 17+ and Maven)"
    exit 3
  fi
}

# classpath writes $dir/classpath.txt, unless it is newer than pom.xml and
# its jars are there: Maven resolves pom.xml from ~/.m2 (offline), else from
# Maven Central. (Maven takes seconds even offline: its answer is kept.)
classpath() {
  local f=$dir/classpath.txt
  if [ -s "$f" ] && [ "$f" -nt "$here/pom.xml" ] && ls $(tr : ' ' <"$f") >/dev/null 2>&1; then
    return 0
  fi
  local args=(-q -B -f "$here/pom.xml" dependency:build-classpath -Dmdep.outputFile="$f")
  mvn -o "${args[@]}" >"$dir/mvn.log" 2>&1 && return 0
  say "resolving $what from Maven Central (mvn dependency:build-classpath)"
  mvn "${args[@]}" >"$dir/mvn.log" 2>&1 || { tail -20 "$dir/mvn.log" >&2; return 1; }
}
