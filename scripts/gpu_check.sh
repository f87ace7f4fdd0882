#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go (about 10-20 minutes on one H100; nothing downloaded):
#   1. `llamafactory-ext plan RECIPE measure=true` on recipes/v3_mixed.yaml (+ generate=true),
#      the same with DeepSpeed ZeRO-2 on one GPU (FORCE_TORCHRUN=1, needs deepspeed),
#      recipes/gsm8k_synth_qlora.yaml and recipes/wikipedia_it_pt.yaml (QLoRA: need bitsandbytes):
#      random weights from the shipped config.json facts, synthetic rows of cutoff_len tokens;
#   2. a few real `llamafactory-cli train` steps of the tiny model (`llamafactory-ext fixture`) in
#      bf16 with ds_configs/zero2.json (needs deepspeed), then `llamafactory-ext eval` (ITALIC,
#      HF backend, no vLLM) on the result;
#   3. one Markdown table (recipe | term | estimated | measured | error) in the file named below.
# A step whose package is missing is skipped with a message (and listed under the table).
#
#   bash scripts/gpu_check.sh                 # writes gpu_check.md
#   bash scripts/gpu_check.sh results/gpu.md  # another output file
#   GPU_CHECK_DIR=/big/disk KEEP=1 bash scripts/gpu_check.sh   # work folder (~33 GB of random
#                                             # weights: Qwen3-8B + Llama-3-8B) kept afterwards
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-gpu_check.md}"
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
ext=("$py" -m llamafactory_ext.cli)
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false DISABLE_VERSION_CHECK=1

if ! "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU is visible (torch.cuda.is_available() is false): nothing to check here" >&2
  exit 2
fi
has() { "$py" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('$1') else 1)"; }
work="${GPU_CHECK_DIR:-$(mktemp -d -t gpu-check-XXXXXX)}"
mkdir -p "$work/results" "$work/models"
notes=()
note() { echo "gpu_check: $*" >&2; notes+=(--note "$*"); }
device="$("$py" -c "import torch; print(torch.cuda.get_device_name())")"
note "device: $device; work folder: $work"

measure() {  # NAME RECIPE MODEL_DIR [key=value ...]
  local name="$1" recipe="$2" model_dir="$3"; shift 3
  echo "gpu_check: measuring $name ..." >&2
  local start=$SECONDS
  if "${ext[@]}" plan "$recipe" measure=true steps=4 model_dir="$model_dir" format=json "$@" \
       >"$work/results/$name.json" 2>"$work/results/$name.log"; then
    note "$name: measured in $((SECONDS - start)) s (plan $recipe $*)"
  else
    note "$name: FAILED after $((SECONDS - start)) s; last lines of $work/results/$name.log:"
    tail -n 5 "$work/results/$name.log" >&2
    rm -f "$work/results/$name.json"
  fi
}

# 1. the recipes
measure v3_mixed recipes/v3_mixed.yaml "$work/models/qwen3-8b" generate=true batch_size=8
if has deepspeed; then
  FORCE_TORCHRUN=1 measure v3_mixed_zero2 recipes/v3_mixed.yaml "$work/models/qwen3-8b" deepspeed=ds_configs/zero2.json
else
  note "skipped v3_mixed with ZeRO-2: deepspeed is not importable (pip install deepspeed)"
fi
if has bitsandbytes; then
  measure gsm8k_synth_qlora recipes/gsm8k_synth_qlora.yaml "$work/models/qwen3-8b" gpu_mem=12GB
  measure wikipedia_it_pt recipes/wikipedia_it_pt.yaml "$work/models/llama3-8b" gpu_mem=8GB
else
  note "skipped gsm8k_synth_qlora and wikipedia_it_pt: bitsandbytes is not importable (pip install bitsandbytes): QLoRA needs it"
fi

# 2. tiny model: real llamafactory-cli train steps in bf16 with ZeRO-2, then the evaluator
tiny="$work/tiny"
"${ext[@]}" fixture out_dir="$tiny" >/dev/null
"$py" - "$work/tiny_data" "$work/italic.jsonl" <<'EOF'
import json, sys
from llamafactory_ext.plan import synthetic
synthetic.write_dataset(sys.argv[1], {"stage": "sft", "cutoff_len": 256}, 64)
letters = "ABCD"
with open(sys.argv[2], "w", encoding="utf-8") as fh:  # ITALIC's GitHub schema, 8 questions
    for i in range(8):
        row = {"question": f"Domanda di prova numero {i}: quale opzione è giusta?",
               "options": [{k: f"opzione {k.lower()}"} for k in letters], "answer": letters[i % 4],
               "category": "syntax", "macro_category": "language capability"}
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
EOF
if has deepspeed; then
  start=$SECONDS
  if FORCE_TORCHRUN=1 "$(dirname "$py")/llamafactory-cli" train recipes/v3_mixed.yaml model_name_or_path="$tiny" \
       dataset_dir="$work/tiny_data" dataset=plan_measure output_dir="$work/tiny_out" overwrite_output_dir=true \
       max_steps=4 cutoff_len=256 per_device_train_batch_size=2 gradient_accumulation_steps=1 packing=false \
       neat_packing=false bf16=true deepspeed=ds_configs/zero2.json report_to=none save_steps=1000 plot_loss=false \
       >"$work/tiny_train.log" 2>&1; then
    note "tiny model: 4 llamafactory-cli train steps, bf16 + ZeRO-2: OK in $((SECONDS - start)) s"
    start=$SECONDS
    if "${ext[@]}" eval task=italic source="$work/italic.jsonl" model_name_or_path="$tiny" \
         adapter_name_or_path="$work/tiny_out" template=qwen3 limit=8 max_new_tokens=32 device=cuda \
         output_dir="$work/tiny_eval" >"$work/tiny_eval.log" 2>&1; then
      note "tiny model: eval task=italic (HF backend, 8 questions, both thinking modes): OK in $((SECONDS - start)) s"
    else
      note "tiny model: eval FAILED; see $work/tiny_eval.log"; tail -n 5 "$work/tiny_eval.log" >&2
    fi
  else
    note "tiny model: llamafactory-cli train with ZeRO-2 FAILED; see $work/tiny_train.log"; tail -n 5 "$work/tiny_train.log" >&2
  fi
else
  note "skipped the tiny-model ZeRO-2 train + eval: deepspeed is not importable (pip install deepspeed)"
fi

# 3. the table
shopt -s nullglob
"$py" -m llamafactory_ext.plan.report "$out" "${notes[@]}" "$work"/results/*.json
if [ "${KEEP:-0}" != 1 ] && [ -z "${GPU_CHECK_DIR:-}" ]; then
  rm -rf "$work"
fi
