#!/usr/bin/env bash
# Install everything the test suite needs (Debian packages, a virtualenv with the package and
# its [dev,train,eval,scale,provenance] extras) and run the whole suite. Used by the README and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server and postgresql: the scale-out tests start their own servers (never the system ones)
DEBIAN_PACKAGES=(espeak-ng chromium redis-server postgresql)
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev,train,eval,scale,provenance]'
# one command per line: under `set -e` a failure inside an `a && b` list does not stop the script
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest -q "$@"
