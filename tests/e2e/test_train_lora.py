"""A real `llamafactory-cli train` subprocess: tiny Qwen3, LoRA, template qwen3, CPU,
data registered in the project's top-level dataset_info.json.

The model is the small-vocabulary tiny Qwen3 (`small_model`): the same Qwen BPE strings, so the
logged prompt and labels decode to the same text, at a twentieth of the full vocabulary's step cost;
the think tags are checked by the ids this tokenizer gives them (Qwen3's own ids are checked on the
full-vocabulary fixture in tests/test_fixtures.py and tests/eval/test_real_data.py)."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from llamafactory_ext.thinking import format_thinking
from tests.helpers import assert_lora_adapter, output_tail, run_cmd

pytestmark = pytest.mark.e2e

SYSTEM = "Sei un assistente utile."
QUESTION = "Qual è la capitale d'Italia?\nA) Roma\nB) Milano\n\nRispondi con la lettera."
TRACE = "La capitale è Roma, quindi la risposta è A."


def _logged_ids(stdout: str, name: str) -> list[int]:
    """LLaMA-Factory prints the first encoded training example as `input_ids:` / `label_ids:`."""
    match = re.search(rf"^{name}:\n(\[[-\d, ]*\])", stdout, flags=re.MULTILINE)
    assert match, f"LLaMA-Factory did not log {name}"
    return json.loads(match.group(1))


def test_llamafactory_cli_trains_lora_adapter(tmp_path, small_model, repo_root):
    from transformers import AutoTokenizer

    from llamafactory_ext.runtime import llamafactory_cli, tiny_train_overrides

    tokenizer = AutoTokenizer.from_pretrained(str(small_model))

    dataset_dir = tmp_path / "ds"
    (dataset_dir / "data").mkdir(parents=True)
    shutil.copy(repo_root / "dataset_info.json", dataset_dir / "dataset_info.json")
    info = json.loads((dataset_dir / "dataset_info.json").read_text())
    assert info["multit_mixed"]["formatting"] == "sharegpt"
    rows = []
    for i in range(6):
        answer = format_thinking(TRACE, "A") if i % 2 == 0 else "A"
        rows.append({"messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"[{i}] {QUESTION}"},
            {"role": "assistant", "content": answer},
        ]})
    with open(dataset_dir / info["multit_mixed"]["file_name"], "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "stage: sft\ndo_train: true\nfinetuning_type: lora\nlora_rank: 4\nlora_alpha: 8\nlora_target: all\n"
        "dataset: multit_mixed\ntemplate: qwen3\nenable_thinking: null\ncutoff_len: 256\n"
        "per_device_train_batch_size: 2\nlearning_rate: 1.0e-3\nlogging_steps: 1\nsave_steps: 100\n"
    )
    out = tmp_path / "out"
    proc = run_cmd([llamafactory_cli(), "train", recipe, *tiny_train_overrides(small_model, dataset_dir, out, max_steps=2)])
    assert proc.returncode == 0, output_tail(proc)

    # The adapter exists and is the LoRA we asked for.
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["peft_type"] == "LORA"
    assert_lora_adapter(out, small_model, {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, 4)
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2

    # The first example LLaMA-Factory encoded: the thinking row.
    input_ids = _logged_ids(proc.stdout, "input_ids")
    label_ids = _logged_ids(proc.stdout, "label_ids")
    assert len(input_ids) == len(label_ids)
    n_prompt = next(i for i, label in enumerate(label_ids) if label != -100)
    prompt = tokenizer.decode(input_ids[:n_prompt], skip_special_tokens=False)
    trained = tokenizer.decode([t for t in label_ids if t != -100], skip_special_tokens=False)
    # Prompt tokens are masked and end at the assistant header (no empty think block).
    assert prompt == f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n[0] {QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    assert all(label == -100 for label in label_ids[:n_prompt])
    # The trace and the answer are trained, think tags included, each one token.
    assert trained == f"<think>\n{TRACE}\n</think>\n\nA<|im_end|>\n"
    think, close = tokenizer.convert_tokens_to_ids(["<think>", "</think>"])
    assert label_ids[n_prompt] == think and label_ids.count(close) == 1
