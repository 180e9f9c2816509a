#!/usr/bin/env bash
# Runs interop.py beside this file, the CloudEvents Python SDK side of
# eventkit's interop tests (interop/foreign_test.go), in a virtualenv made
# from requirements.txt (pinned versions, from PyPI; nothing is downloaded
# from anywhere else).
#
# Usage:
#   scripts/interop/run-python.sh write   send the events described on stdin
#   scripts/interop/run-python.sh read    receive events, print them
#   scripts/interop/run-python.sh setup   only make the virtualenv
#   scripts/interop/run-python.sh version the SDK's version
#
# Exit status 3: python3 (3.10+) or its venv module is missing (the message
# names them); the tests skip then (fail under CI=true).
#
# Environment:
#   EVENTKIT_INTEROP_DIR   working directory (default /tmp/eventkit-interop):
#                          the virtualenv (one per requirements.txt) and
#                          pip's log
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${EVENTKIT_INTEROP_DIR:-/tmp/eventkit-interop}
mkdir -p "$dir"
say() { printf 'interop-python: %s\n' "$*" >&2; }

if ! command -v python3 >/dev/null 2>&1; then
  say "missing: python3 (Python 3.10 or newer)"
  exit 3
fi
if ! python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  say "missing: Python 3.10+ with its venv and ensurepip modules (Debian: python3-venv)"
  exit 3
fi

# The virtualenv is named after requirements.txt's content: a changed pin
# makes a new one.
sum=$(cksum <"$here/requirements.txt" | cut -d' ' -f1)
venv=$dir/venv-$sum
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  say "installing $(grep -v '^#' "$here/requirements.txt" | tr '\n' ' ')from PyPI into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt" >"$dir/pip.log" 2>&1 ||
    { tail -20 "$dir/pip.log" >&2; exit 1; }
  touch "$venv/.complete"
fi

case "${1:-}" in
setup) ;;
version) "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("cloudevents"))' ;;
read | write) exec "$venv/bin/python" -u "$here/interop.py" "$1" ;;
*) echo "usage: $0 read | write | setup | version" >&2 && exit 2 ;;
esac
