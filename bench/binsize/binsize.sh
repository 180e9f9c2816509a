#!/usr/bin/env bash
# Builds the minimal program of each transport (the directories next to this
# script: publish one event, receive and ack one) and prints, per program,
# the binary size as `go build` makes it, the size stripped of symbols
# (-ldflags='-s -w'), the number of modules and of non-standard packages
# linked, and the heavy modules linked that the program does not need.
#
# Usage: bench/binsize/binsize.sh [eventkit-root]
#   eventkit-root: the checkout whose packages are built (default: this
#   one). The programs are built in a temporary module that requires
#   github.com/eventkit/eventkit replaced by eventkit-root, with its go.mod's
#   requirements and go.sum, so that any commit can be measured with the
#   same programs (for example a second worktree at an older commit). The
#   go.mod next to this script only marks the directory as its own module
#   (out of the root module's ./...); the build does not use it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "${1:-$here/../..}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cp -r "$here"/internal "$work"/
programs=(memory router nats redis postgres kafka amqp mqtt cehttp)
for p in "${programs[@]}"; do cp -r "$here/$p" "$work/"; done
{
  printf 'module github.com/eventkit/eventkit/bench/binsize\n\ngo 1.26.0\n\n'
  printf 'require github.com/eventkit/eventkit v0.0.0\n\n'
  printf 'replace github.com/eventkit/eventkit => %s\n\n' "$root"
  sed -n '/^require/,$p' "$root/go.mod"
} >"$work/go.mod"
cp "$root/go.sum" "$work/go.sum"

heavy='go.opentelemetry.io/otel|github.com/prometheus/client_golang|github.com/santhosh-tekuri/jsonschema|github.com/sony/gobreaker|github.com/nats-io/nats-server|github.com/cenkalti/backoff'
echo "# eventkit at $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "$root"), $(go version | cut -d' ' -f3), $(date -u +%FT%TZ)"
printf '| %-8s | %9s | %9s | %7s | %8s | %s |\n' program 'size MB' 'stripped' modules packages 'heavy modules linked'
printf '|%s|%s|%s|%s|%s|%s|\n' ---------- ----------: ----------: --------: ---------: ---
cd "$work"
for p in "${programs[@]}"; do
  go build -o "$work/bin-$p" "./$p"
  go build -ldflags='-s -w' -o "$work/strip-$p" "./$p"
  size=$(stat -c %s "$work/bin-$p")
  ssize=$(stat -c %s "$work/strip-$p")
  mods=$(go version -m "$work/bin-$p" | grep -c $'^\tdep' || true)
  pkgs=$(go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' "./$p" | grep -c . || true)
  linked=$(go version -m "$work/bin-$p" | awk '$1 == "dep" {print $2}' | grep -E "$heavy" |
    sed -E 's#^(go.opentelemetry.io/otel).*#\1#; s#^github.com/##' | sort -u | paste -sd, - || true)
  printf '| %-8s | %9.2f | %9.2f | %7d | %8d | %s |\n' "$p" \
    "$(echo "$size / 1000000" | bc -l)" "$(echo "$ssize / 1000000" | bc -l)" "$mods" "$pkgs" "${linked:-none}"
done
