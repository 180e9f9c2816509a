#!/usr/bin/env bash
# The project's test command: brings up the servers the tests use (when they
# are installed), then runs every test with the race detector.
# Usage: ./scripts/test.sh [extra go test flags]
set -eu
cd "$(dirname "$0")/.."
bash scripts/services.sh || echo "services: some servers are not up; their tests skip (or fail under CI=true)"
go vet ./...
exec go test -race -count=1 -timeout 25m "$@" ./...
