#!/usr/bin/env bash
# Create or reuse .venv inside the checkout and install the pinned stack (constraints.txt).
# Idempotent: a stamp file records the hash of pyproject.toml + constraints.txt, so a second
# call with nothing changed returns in a second. Usage: scripts/setup_venv.sh [EXTRAS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
extras="${1:-dev}"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3
"$py" -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 required"' || exit 1
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($py --version)"
  "$py" -m venv .venv
fi
stamp=".venv/.llamafactory-ext-$extras.stamp"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[setup] installing pinned dependencies (first run: several GB, a few minutes)"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=24" setuptools wheel
# -c pins every transitive package to the tested version; the extras add deepspeed, pytest,
# playwright and ray for the test suite.
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[$extras]"
echo "$want" > "$stamp"
