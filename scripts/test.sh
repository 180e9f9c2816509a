#!/usr/bin/env bash
# The project's test command: brings up the servers the tests use (when they
# are installed), then runs every test with the race detector.
#
# Packages that use PostgreSQL run one at a time after the others: the CDC
# tests create replication slots (which wait for every open transaction on
# the server) and restart PostgreSQL once, so they must not overlap with the
# event store's held-open transactions in another package.
# Usage: ./scripts/test.sh [extra go test flags]
set -eu
cd "$(dirname "$0")/.."
bash scripts/services.sh || echo "services: some servers are not up; their tests skip (or fail under CI=true)"
go vet ./...
pg_pkgs=$(go list ./postgres/... ./cmd/eventkit)
other_pkgs=$(go list ./... | grep -v -x -F "$pg_pkgs")
status=0
go test -race -count=1 -timeout 25m "$@" $other_pkgs || status=$?
go test -race -count=1 -timeout 25m -p 1 "$@" $pg_pkgs || status=$?
exit $status
