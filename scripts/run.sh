#!/usr/bin/env bash
# Install deepfakescan into a virtualenv and start the web app on the embedded defaults (shipped
# models, SQLite history, no other service). It prints the URL to open; Ctrl+C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q .
exec .venv/bin/deepfakescan serve
