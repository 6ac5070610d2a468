#!/usr/bin/env bash
# Idempotent setup for a fresh Debian/Ubuntu machine: system packages (apt), uv, and the
# locked Python environment in .venv. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${WORKERS_PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' || {
  echo "setup: Python 3.11 is required (set WORKERS_PYTHON to its path)" >&2; exit 2; }

# System packages: redis-server (the job store), Debian's chromium (pdf.render drives it
# through Playwright; no browser download) and fonts with Romanian diacritics (PDF and OCR).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || missing+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
[ -d /usr/share/fonts/truetype/liberation ] || missing+=(fonts-liberation)
# Prometheus and promtool: alert rules are checked and unit-tested with promtool, and an
# integration test scrapes the platform with a real Prometheus (its service is not used).
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# Optional: Chromium's headless shell renders PDFs ~2x faster per job than full Chromium
# (pdf.render prefers it when present); skipped quietly where the distribution lacks it.
if ! command -v chromium-headless-shell >/dev/null 2>&1 \
    && apt-cache show chromium-headless-shell >/dev/null 2>&1; then
  missing+=(chromium-headless-shell)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} with apt-get"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# uv (from PyPI), then the environment exactly as locked in uv.lock.
if ! "$PYTHON" -m uv --version >/dev/null 2>&1; then
  echo "setup: installing uv"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"
fi
export UV_PYTHON_DOWNLOADS=never
"$PYTHON" -m uv sync --frozen --python "$PYTHON" --extra dev --extra bench --extra ocr --extra pdf --extra parquet
echo "setup: ready (.venv)"
