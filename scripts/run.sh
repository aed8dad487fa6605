#!/usr/bin/env bash
# Install deepfakescan into a virtualenv and run it on the embedded defaults (shipped models,
# no other service). Until the web app lands this lists the installed models.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q .
exec .venv/bin/deepfakescan models
