#!/usr/bin/env bash
# The README's test command: set up .venv (pinned), Debian's chromium for the browser test
# (when we are root and it is missing), then the whole pytest suite on two workers. Arguments go to pytest.
# Under CI=true nothing may be missing: a failed chromium install stops here, and a skipped test is
# a failure (tests/ci_skips.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ci="$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')"
bash scripts/setup_venv.sh dev
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing Debian's chromium for the web UI browser test"
  if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); then
    if [ "$ci" = true ]; then
      echo "[setup] error: CI=true and Debian's chromium could not be installed (apt-get update && apt-get install -y chromium failed): the browser tests need it" >&2
      exit 1
    fi
    echo "[setup] could not install chromium: the browser tests will skip (outside CI)"
  fi
fi
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Two pytest workers, one per core; every process single-threaded: two processes with two OpenMP
# threads each on two cores wait on each other's barriers (benchmarks/bench_demo.py measures 2.4-3x
# slower steps). Each module runs on one worker (its fixtures are built once), heaviest modules
# first, to whichever worker is nearly idle (tests/conftest.py: the order, and the models / data /
# adapter built once per run for both workers). PYTEST_WORKERS=0: serial.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
workers="${PYTEST_WORKERS:-2}"
if [ "$workers" -gt 0 ]; then
  exec .venv/bin/python -m pytest -n "$workers" --dist loadscope --no-loadscope-reorder "$@"
fi
exec .venv/bin/python -m pytest "$@"
