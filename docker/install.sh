#!/bin/sh
# Installs workers-core into /app/.venv (or $UV_PROJECT_ENVIRONMENT) exactly as locked in
# uv.lock. The Dockerfile runs it twice per image: `deps` (dependencies only: a layer
# cached until pyproject.toml or uv.lock change), then `project` (the package itself, not
# editable). tests/deploy/test_docker.py runs the same script into a clean directory.
# Usage: install.sh deps|project [EXTRA...]
set -eu
phase="$1"; shift
extras=""
for extra in "$@"; do extras="$extras --extra $extra"; done
export UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE="${UV_COMPILE_BYTECODE:-1}"
case "$phase" in
  # shellcheck disable=SC2086  # one word per --extra flag
  deps) exec python3 -m uv sync --frozen --no-dev --no-install-project $extras ;;
  # shellcheck disable=SC2086
  project) exec python3 -m uv sync --frozen --no-dev --no-editable $extras ;;
  *) echo "install.sh: deps|project [EXTRA...]" >&2; exit 2 ;;
esac
