#!/usr/bin/env bash
# Regenerate requirements.lock (runtime, used by the Dockerfile) and requirements-dev.lock
# from pyproject.toml, and requirements-tools.lock (checkov, for .venv-tools) from
# requirements-tools.in. uv runs from a throwaway venv so the project's .venv is untouched.
# --universal: one lock valid on linux/amd64 and linux/arm64 (the ARM64 Fargate option).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q uv
common=(--universal --python-version 3.11 --generate-hashes --quiet --custom-compile-command "tools/lock.sh")
"$tmp/venv/bin/uv" pip compile pyproject.toml "${common[@]}" -o requirements.lock "$@"
"$tmp/venv/bin/uv" pip compile pyproject.toml --extra dev --extra local "${common[@]}" -o requirements-dev.lock "$@"
"$tmp/venv/bin/uv" pip compile requirements-tools.in "${common[@]}" -o requirements-tools.lock "$@"
deploy/compose/moto/lock.sh
echo "wrote requirements.lock, requirements-dev.lock, requirements-tools.lock and deploy/compose/moto/requirements.txt"
