"""Every Qwen3 training recipe, as `llamafactory-ext recipes copy --all DIR profile=cpu` writes it into a
user's project folder (tests/recipes/conftest.py `cpu_project`: ./dataset_info.json -> data/NAME.jsonl),
runs for real for 2 steps on CPU through a `llamafactory-cli train` process with nothing but the model,
max_steps and an output folder on the command line (the laptop route of docs/train.md); the merge recipe
then runs `llamafactory-cli export` on the 2-step QLoRA adapter and the merged model loads without peft.
Each command line is its own process forked from a server that paid LLaMA-Factory's imports once
(tests/forkserver.py: ~7 CPU-s a process against ~1 s of training); tests/e2e/test_packaging.py runs the
same route through the console script of a wheel.

The model is the small-vocabulary tiny Qwen3 (`vocab=small`: Qwen's BPE cut to the shipped texts,
so the samples tokenize as with the full vocabulary). Data: the real converters' output for the
built-in samples, cut to the first rows of each training file (one pack per step); validation files
whole. Recipes for other templates (LLaMA-3) train in their own test file on their own fixture.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from tests.helpers import (
    EXPORT_RECIPES,
    TRAIN_RECIPES,
    assert_lora_adapter,
    load_recipe,
    output_tail,
)

pytestmark = pytest.mark.e2e

SEVEN = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


QWEN_RECIPES = [n for n in TRAIN_RECIPES if str(load_recipe(n).get("template", "")).startswith("qwen3")]
QWEN_EXPORTS = [n for n in EXPORT_RECIPES if str(load_recipe(n).get("template", "")).startswith("qwen3")]


@pytest.fixture(scope="module")
def run_recipe(cpu_project, small_model, tmp_path_factory, forks):
    """`run_recipe(name)` -> (process, output_dir); each recipe trains once per module, in the project."""
    done: dict[str, tuple] = {}

    def run(name: str):
        if name not in done:
            out = tmp_path_factory.mktemp(f"run-{name}") / "out"
            args = ["train", f"recipes/{name}.yaml", f"model_name_or_path={small_model}", "max_steps=2", f"output_dir={out}"]
            done[name] = (forks.run("llamafactory-cli", args, cwd=cpu_project), out)
        return done[name]

    return run


def _logged_ids(stdout: str, name: str) -> list[int]:
    """LLaMA-Factory prints the first encoded training example as `input_ids:` / `label_ids:`."""
    match = re.search(rf"^{name}:\n(\[[-\d, ]*\])", stdout, flags=re.MULTILINE)
    assert match, f"LLaMA-Factory did not log {name}"
    return json.loads(match.group(1))


@pytest.mark.parametrize("name", QWEN_RECIPES)
def test_recipe_trains_two_steps_on_cpu(run_recipe, cpu_project, small_model, name):
    from transformers import AutoTokenizer

    im_start = AutoTokenizer.from_pretrained(small_model).convert_tokens_to_ids("<|im_start|>")
    cfg = load_recipe(name, cpu_project)  # the CPU variant, as trained (cutoff_len 256 instead of 2048, ...)
    proc, out = run_recipe(name)
    assert proc.returncode == 0, output_tail(proc)

    # The adapter is the recipe's LoRA.
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert (adapter["peft_type"], adapter["r"], adapter["lora_alpha"]) == ("LORA", cfg["lora_rank"], cfg["lora_alpha"])
    assert adapter["lora_dropout"] == pytest.approx(cfg["lora_dropout"])
    want_targets = SEVEN if cfg["lora_target"] == "all" else set(cfg["lora_target"].split(","))
    assert set(adapter["target_modules"]) == want_targets  # `all` on Qwen3 = the seven projections
    assert_lora_adapter(out, small_model, want_targets, cfg["lora_rank"])

    # Exactly two optimizer steps, with a finite training loss.
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    results = json.loads((out / "all_results.json").read_text())
    assert math.isfinite(results["train_loss"]) and results["train_loss"] > 0

    input_ids = _logged_ids(proc.stdout, "input_ids")
    if cfg["stage"] == "sft" and cfg.get("packing"):
        # one sequence of exactly the recipe's length holding several conversations
        # (<|im_start|> opens each system / user / assistant turn: 3 per sample)
        assert len(input_ids) == cfg["cutoff_len"]
        assert input_ids.count(im_start) >= 6
    elif cfg["stage"] == "pt":
        # stage pt concatenates articles and cuts blocks; LLaMA-Factory 0.9.5 cuts at cutoff_len - 1
        assert len(input_ids) == cfg["cutoff_len"] - 1
    else:
        assert len(input_ids) <= cfg["cutoff_len"] and input_ids.count(im_start) in (2, 3)  # one conversation
    if cfg.get("eval_dataset"):  # the validation split was evaluated at the end of training
        assert math.isfinite(results["eval_loss"])


@pytest.mark.parametrize("name", QWEN_EXPORTS)
def test_merge_recipe_exports_a_loadable_16bit_model(run_recipe, cpu_project, small_model, tmp_path, forks, name):
    import torch
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = load_recipe(name)
    trained = Path(cfg["adapter_name_or_path"]).name  # saves/gsm8k_synth_qlora -> the QLoRA recipe
    proc, adapter = run_recipe(trained)
    assert proc.returncode == 0, output_tail(proc)

    merged = tmp_path / "merged"
    proc = forks.run("llamafactory-cli", ["export", f"recipes/{name}.yaml", f"model_name_or_path={small_model}",
                                          f"adapter_name_or_path={adapter}", f"export_dir={merged}"], cwd=cpu_project)
    assert proc.returncode == 0, output_tail(proc)

    keys = []
    for shard in merged.glob("*.safetensors"):
        with safe_open(str(shard), "pt") as fh:
            keys += list(fh.keys())
    assert keys and not [k for k in keys if "lora" in k.lower()], "the export still holds LoRA weights"

    model = AutoModelForCausalLM.from_pretrained(merged)  # no peft involved
    assert model.dtype == torch.bfloat16  # infer_dtype: bfloat16 -> a 16-bit model
    tok = AutoTokenizer.from_pretrained(merged)
    # LLaMA-Factory writes the recipe's template into the tokenizer: the merged model's own chat
    # template gives the prompt it was trained on (qwen3, thinking on: ends at the assistant header).
    from llamafactory_ext.prompts import PromptEncoder

    messages = [{"role": "system", "content": "Sei un assistente utile."}, {"role": "user", "content": "Quanto fa 2 + 3?"}]
    own = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    encoder = PromptEncoder(tok, cfg["template"], "think")
    assert own == tok.decode(encoder.encode(messages[1:], system=messages[0]["content"]), skip_special_tokens=False)

    # The merged weights are base + adapter: PEFT's own merge at the base's stored precision (LLaMA-Factory
    # loads the base in its config dtype, fp32 for the tiny model, merges, then casts to infer_dtype),
    # and the adapter is really in them (the base alone differs).
    base = AutoModelForCausalLM.from_pretrained(small_model)
    base_state = {k: v.to(torch.bfloat16) for k, v in base.state_dict().items()}
    reference = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().to(torch.bfloat16)
    ref_state = reference.state_dict()
    changed = 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, ref_state[key]), f"{key} differs from PEFT's merge"
        changed += int(not torch.equal(value, base_state[key]))
    assert changed > 0, "the exported weights are the base's: the adapter was not merged"
    with torch.no_grad():
        ids = tok("Quanto fa 2 + 3?", return_tensors="pt").input_ids
        logits = model(ids).logits
        # same weights; bf16 kernels may round differently between the two loads
        assert torch.isfinite(logits).all() and torch.allclose(logits, reference(ids).logits, atol=2e-2, rtol=0)
