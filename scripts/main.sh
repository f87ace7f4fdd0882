#!/usr/bin/env bash
# The README's main command: set up .venv (pinned) and run the demo pipeline on CPU.
# Extra arguments go to `llamafactory-ext demo` (e.g. output_dir=demo_out).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_venv.sh dev
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/llamafactory-ext demo "$@"
