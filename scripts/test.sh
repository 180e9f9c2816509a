#!/usr/bin/env bash
# The project's test command: brings up the servers the tests use (when they
# are installed), then runs every test with the race detector.
#
# Packages that use PostgreSQL run one at a time after the others: the CDC
# tests create replication slots (which wait for every open transaction on
# the server), so they must not overlap with the event store's held-open
# transactions in another package. Tests that restart a server restart one
# of their own (eventkittest.ServerProcess, pgtest.StartPrivate), never the
# shared ones.
#
# Usage:
#   ./scripts/test.sh [extra go test flags]
#       vet, then every package once with -race.
#   ./scripts/test.sh -stress N [packages] [-- extra go test flags]
#       runs the named packages (default: all) N times with -race
#       (go test -count=N), PostgreSQL packages one at a time, and reports
#       every test that failed with its number of failed runs
#       (internal/flakecount reads the go test -json output). No vet.
#       Exit status 1 when any run of any test failed.
#       Example: ./scripts/test.sh -stress 20 ./nats ./hub -- -run Restart
set -eu
cd "$(dirname "$0")/.."

all_pg_pkgs() { go list ./postgres/... ./cmd/eventkit ./saga; }

if [ "${1-}" != "-stress" ]; then
  bash scripts/services.sh || echo "services: some servers are not up; their tests skip (or fail under CI=true)"
  go vet ./...
  pg_pkgs=$(all_pg_pkgs)
  other_pkgs=$(go list ./... | grep -v -x -F "$pg_pkgs")
  status=0
  go test -race -count=1 -timeout 25m "$@" $other_pkgs || status=$?
  go test -race -count=1 -timeout 25m -p 1 "$@" $pg_pkgs || status=$?
  # The interop tests with the official CloudEvents SDKs: a module of its
  # own (interop/go.mod), so that the SDKs never become our users'
  # dependencies (docs/interop.md).
  (cd interop && go vet ./... && go test -race -count=1 -timeout 25m "$@" ./...) || status=$?
  # The web console's browser tests in headless Chromium (chromedp): a
  # module of its own too (e2e/go.mod).
  (cd e2e && go vet ./... && go test -race -count=1 -timeout 10m "$@" ./...) || status=$?
  exit $status
fi

# Stress mode.
shift
runs=${1-}
case "$runs" in
'' | *[!0-9]* | 0) echo "usage: $0 -stress N [packages] [-- go test flags]" >&2; exit 2 ;;
esac
shift
pkg_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do pkg_args+=("$1"); shift; done
[ "${1-}" = "--" ] && shift
[ ${#pkg_args[@]} -eq 0 ] && pkg_args=(./...)

bash scripts/services.sh || echo "services: some servers are not up; their tests skip (or fail under CI=true)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/flakecount" ./internal/flakecount
pkgs=$(go list "${pkg_args[@]}")
pg_all=$(all_pg_pkgs)
pg_pkgs=$(grep -x -F "$pg_all" <<<"$pkgs" || true)
other_pkgs=$(grep -v -x -F "$pg_all" <<<"$pkgs" || true)
# Every run of a package happens in one test binary, one after the other;
# the timeout covers them all.
timeout=$((runs * 10 + 15))m
echo "stress: $runs runs of $(wc -w <<<"$pkgs") packages with -race, timeout $timeout per package"
# A failing go test is expected here: flakecount's report says what failed.
if [ -n "$other_pkgs" ]; then
  go test -race -count="$runs" -timeout "$timeout" -json "$@" $other_pkgs 2>&1 |
    tee "$work/other.json" | "$work/flakecount" -progress >/dev/null || true
fi
if [ -n "$pg_pkgs" ]; then
  go test -race -count="$runs" -timeout "$timeout" -p 1 -json "$@" $pg_pkgs 2>&1 |
    tee "$work/pg.json" | "$work/flakecount" -progress >/dev/null || true
fi
cat "$work"/*.json | "$work/flakecount"
