#!/usr/bin/env bash
# Regenerate requirements.txt (hash-pinned, amd64 + arm64) from requirements.in, at the
# versions requirements-dev.lock pins, so compose's SES v2 is the moto the tests run.
# uv runs from a throwaway venv, as in tools/lock.sh.
set -euo pipefail
cd "$(dirname "$0")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q uv
# The dev lock's pins without hashes or extras: a constraints file.
grep -E '^[A-Za-z0-9_.-]+(\[[^]]*\])?==' ../../../requirements-dev.lock \
  | sed -E 's/ *\\$//; s/\[[^]]*\]//' >"$tmp/constraints.txt"
"$tmp/venv/bin/uv" pip compile requirements.in -c "$tmp/constraints.txt" --universal \
  --python-version 3.11 --generate-hashes --no-annotate --quiet \
  --custom-compile-command "deploy/compose/moto/lock.sh" -o requirements.txt
echo "wrote deploy/compose/moto/requirements.txt"
