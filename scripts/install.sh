#!/usr/bin/env bash
# Creates .venv and installs caseconf (and, with --test, what the tests need) plus GOV.UK Frontend.
# Shared by scripts/up and scripts/test.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

# Papers packs are drawn as PDF with Pango; Debian ships it as system libraries.
pdf_packages="libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-liberation"
if command -v dpkg >/dev/null; then
  missing=$(for p in $pdf_packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "Installing the libraries for PDF papers: $(echo $missing)…"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
      echo "PDF papers need these Debian packages: sudo apt-get install $(echo $missing)" >&2
      exit 1
    fi
  fi
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "caseconf needs Python 3.11 or newer as '$python' (set PYTHON=/path/to/python3.11)." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv || { echo "Could not create a virtual environment: install python3-venv." >&2; exit 1; }
fi
echo "Installing caseconf into .venv (the first time takes a minute or two)…"
# Pinned versions (constraints.txt) are the set known to work with Prefect 3.8.8.
# (Some machines list package folders that do not exist; pip's notes about them are noise.)
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".${extras}" 2>&1 \
  | { grep -v "^WARNING: Location '.*' is ignored" || true; }

if ! command -v npm >/dev/null; then
  echo "npm is needed to install GOV.UK Frontend: install Node.js (apt-get install nodejs npm)." >&2
  exit 1
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --silent --no-audit --no-fund
fi
