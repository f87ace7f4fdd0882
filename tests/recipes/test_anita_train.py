"""The LLaMAntino-3-ANITA recipes (``recipes/anita_*.yaml``) run for real, as the chain of docs/anita.md,
on the tiny LLaMA-3 (``arch=llama3 vocab=small``) on CPU, each as ``recipes copy --all DIR profile=cpu``
writes it into a user's project folder (tests/recipes/conftest.py ``cpu_project``), through
``llamafactory-cli`` with ONLY the model, max_steps and output folder (train) or the model / adapter /
export-dir paths (export):

    SFT (2 steps)  ->  merge (export)  ->  DPO (2 steps) on the merged SFT model  ->  merge (export)
    Italian pt (2 steps), next to the SFT run (it stands on the tiny base instead of the merged DPO model)
    recipes/wikipedia_it_pt.yaml (2 steps), the further pre-training of ANITA, next to the SFT merge

Every training recipe with ``template: llama3`` runs here (tests/recipes/test_recipes_train.py trains
the Qwen3 ones on the tiny Qwen3).

Data: the real converters' output for the built-in samples (``prepare_samples``), in the project. Two processes run at
once with one thread each (``cpu_env(threads=1)``). ``llamafactory-ext plan`` on the DPO recipe gives
the trainable-parameter count that LLaMA-Factory logs. Each command line is its own process forked from
a server that paid LLaMA-Factory's imports once (tests/forkserver.py).
"""

from __future__ import annotations

import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import (
    EXPORT_RECIPES,
    RECIPES,
    REPO,
    load_recipe,
    output_tail,
)

pytestmark = pytest.mark.e2e

ANITA = sorted(name for name in RECIPES if name.startswith("anita_"))
ANITA_TRAIN = [name for name in ANITA if name not in EXPORT_RECIPES]
ANITA_EXPORT = [name for name in ANITA if name in EXPORT_RECIPES]
LLAMA3_TRAIN = [name for name in RECIPES if name not in EXPORT_RECIPES and load_recipe(name).get("template") == "llama3"]


def test_the_chain_is_complete():
    assert ANITA_TRAIN == ["anita_dpo_qlora", "anita_italian_qlora", "anita_sft_qlora"]
    assert LLAMA3_TRAIN == [*ANITA_TRAIN, "wikipedia_it_pt"]
    assert ANITA_EXPORT == ["anita_dpo_merge", "anita_sft_merge"]
    stages = {name: load_recipe(name).get("stage") for name in ANITA_TRAIN}
    assert stages == {"anita_sft_qlora": "sft", "anita_dpo_qlora": "dpo", "anita_italian_qlora": "pt"}
    # each stage starts where the previous one's merge ends
    assert load_recipe("anita_sft_merge")["adapter_name_or_path"] == load_recipe("anita_sft_qlora")["output_dir"]
    assert load_recipe("anita_dpo_qlora")["model_name_or_path"] == load_recipe("anita_sft_merge")["export_dir"]
    assert load_recipe("anita_dpo_merge")["model_name_or_path"] == load_recipe("anita_sft_merge")["export_dir"]
    assert load_recipe("anita_dpo_merge")["adapter_name_or_path"] == load_recipe("anita_dpo_qlora")["output_dir"]
    assert load_recipe("anita_italian_qlora")["model_name_or_path"] == load_recipe("anita_dpo_merge")["export_dir"]
    for name in ANITA:
        assert load_recipe(name)["template"] == "llama3"
        assert "trust_remote_code" not in load_recipe(name)
    assert "adapter_name_or_path" not in load_recipe("anita_dpo_qlora")  # a new LoRA on the merged model (see its header)


class Chain:
    """Every ANITA recipe run once per module: (process, output dir, wall seconds) per name."""

    def __init__(self, model: Path, data: Path, root: Path, forks) -> None:
        self.model, self.data, self.root, self.forks = model, data, root, forks
        self.runs: dict[str, tuple] = {}

    def _run(self, name: str, entry: str, args: list, out: Path | None, threads: int | None, cwd: Path | None = None) -> None:
        from llamafactory_ext.runtime import cpu_env

        start = time.perf_counter()
        proc = self.forks.run(entry, args, cwd=cwd or self.data, env=cpu_env(threads=threads), timeout=600)
        self.runs[name] = (proc, out, time.perf_counter() - start)

    def train(self, name: str, model: Path, threads: int | None):
        out = self.root / name
        self._run(name, "llamafactory-cli", ["train", f"recipes/{name}.yaml", f"model_name_or_path={model}", "max_steps=2",
                                             f"output_dir={out}"], out, threads)

    def export(self, name: str, model: Path, adapter: Path, threads: int | None):
        out = self.root / name
        self._run(name, "llamafactory-cli", ["export", f"recipes/{name}.yaml", f"model_name_or_path={model}",
                                             f"adapter_name_or_path={adapter}", f"export_dir={out}"], out, threads)

    def plan(self) -> None:  # the shipped recipe (QLoRA), not its CPU variant: the same trainable count
        self._run("plan", "llamafactory-ext", ["plan", "recipes/anita_dpo_qlora.yaml", f"model_name_or_path={self.model}",
                                               "format=json"], None, None, cwd=REPO)

    def ok(self, name: str) -> tuple:
        proc, out, _ = self.runs[name]
        assert proc.returncode == 0, f"{name}\n{output_tail(proc)}"
        return proc, out


@pytest.fixture(scope="module")
def chain(small_llama3, cpu_project, tmp_path_factory, forks) -> Chain:
    c = Chain(small_llama3, cpu_project, tmp_path_factory.mktemp("anita-runs"), forks)
    with ThreadPoolExecutor(max_workers=2) as pool:  # SFT next to the Italian pt run (+ the planner, no torch)
        jobs = [pool.submit(c.train, "anita_sft_qlora", small_llama3, 1), pool.submit(c.train, "anita_italian_qlora", small_llama3, 1)]
        c.plan()
        for job in jobs:
            job.result()
    c.ok("anita_sft_qlora")
    with ThreadPoolExecutor(max_workers=2) as pool:  # the SFT merge next to the Wikipedia pt run
        jobs = [pool.submit(c.export, "anita_sft_merge", small_llama3, c.root / "anita_sft_qlora", 1),
                pool.submit(c.train, "wikipedia_it_pt", small_llama3, 1)]
        for job in jobs:
            job.result()
    _, sft_merged = c.ok("anita_sft_merge")
    c.train("anita_dpo_qlora", sft_merged, None)  # DPO starts from the merged SFT model, as the recipe does
    c.ok("anita_dpo_qlora")
    c.export("anita_dpo_merge", sft_merged, c.root / "anita_dpo_qlora", None)
    print("ANITA chain wall seconds: " + ", ".join(f"{k} {v[2]:.1f}" for k, v in c.runs.items()))
    return c


def _logged(stdout: str, name: str) -> list[int]:
    """LLaMA-Factory prints the first encoded example: ``input_ids:`` (sft / pt), ``chosen_input_ids:`` (pairs)."""
    match = re.search(rf"^{name}:\n(\[[-\d, ]*\])", stdout, flags=re.MULTILINE)
    assert match, f"LLaMA-Factory did not log {name}"
    return json.loads(match.group(1))


def _trainable(stdout: str) -> tuple[int, int]:
    match = re.search(r"trainable params: ([\d,]+) \|\| all params: ([\d,]+)", stdout)
    assert match, "LLaMA-Factory did not log its trainable-parameter count"
    return int(match.group(1).replace(",", "")), int(match.group(2).replace(",", ""))


def _ids(model: Path) -> dict[str, int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model))
    return {t: tok.convert_tokens_to_ids(t) for t in ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|eot_id|>")}


@pytest.mark.parametrize("name", LLAMA3_TRAIN)
def test_llama3_recipe_trains_two_steps_on_cpu(chain, small_llama3, name):
    cfg = load_recipe(name, chain.data)  # the CPU variant, as trained
    proc, out = chain.ok(name)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert (adapter["peft_type"], adapter["r"], adapter["lora_alpha"]) == ("LORA", cfg["lora_rank"], cfg["lora_alpha"])
    assert adapter["lora_dropout"] == pytest.approx(cfg["lora_dropout"])
    assert set(adapter["target_modules"]) == set(cfg["lora_target"].split(","))
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    results = json.loads((out / "all_results.json").read_text())
    assert math.isfinite(results["train_loss"]) and results["train_loss"] > 0
    ids = _ids(small_llama3)
    if cfg["stage"] == "sft":  # one llama3 chat: <|begin_of_text|>, header tokens, answers closed by <|eot_id|>
        input_ids = _logged(proc.stdout, "input_ids")
        assert input_ids[0] == ids["<|begin_of_text|>"] and input_ids[-1] == ids["<|eot_id|>"]
        assert input_ids.count(ids["<|start_header_id|>"]) in (2, 3) and len(input_ids) <= cfg["cutoff_len"]
    elif cfg["stage"] == "pt":  # packed Italian pages / articles, each ended by Llama-3's document token; blocks of cutoff_len - 1
        input_ids = _logged(proc.stdout, "input_ids")
        assert len(input_ids) == cfg["cutoff_len"] - 1 and ids["<|end_of_text|>"] in input_ids
        assert ids["<|start_header_id|>"] not in input_ids
    else:  # dpo: a pair, and the reference is the merged SFT model itself (the new LoRA switched off)
        chosen = _logged(proc.stdout, "chosen_input_ids")
        assert chosen[0] == ids["<|begin_of_text|>"] and chosen[-1] == ids["<|eot_id|>"]
        # LoRA B starts at 0 and lr is 5e-6: policy == reference, so the sigmoid DPO loss is -log(sigmoid(0)) = ln 2
        assert results["train_loss"] == pytest.approx(math.log(2), abs=1e-3)
        log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
        assert log and log[-1]["current_steps"] == 2


def test_plan_counts_the_dpo_recipes_trainable_params_as_llamafactory_logs(chain):
    proc, _ = chain.ok("plan")
    plan = json.loads(proc.stdout)
    assert (plan["stage"], plan["method"]) == ("dpo", "qlora")
    dpo_proc, _ = chain.ok("anita_dpo_qlora")
    trainable, total = _trainable(dpo_proc.stdout + dpo_proc.stderr)  # LLaMA-Factory logs to either, by its logging set-up
    assert plan["trainable_params"] == trainable == 32_768  # r 16 on the 7 projections of 2 tiny layers
    assert plan["total_params"] == total


@pytest.mark.parametrize("name", ANITA_EXPORT)
def test_anita_merge_exports_base_plus_adapter_in_16_bit(chain, name):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = load_recipe(name)
    _, merged = chain.ok(name)
    trained = Path(cfg["adapter_name_or_path"]).name
    base_dir = chain.model if trained == "anita_sft_qlora" else chain.root / "anita_sft_merge"
    model = AutoModelForCausalLM.from_pretrained(str(merged))
    assert model.dtype == torch.bfloat16 and not [k for k in model.state_dict() if "lora" in k.lower()]
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base_dir)), str(chain.root / trained))
    ref_state = reference.merge_and_unload().to(torch.bfloat16).state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, ref_state[key]), f"{key} differs from PEFT's merge of {trained}"
    # the merged tokenizer carries the llama3 chat template: the DPO stage's prompts are the SFT stage's
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments

    tok = AutoTokenizer.from_pretrained(str(merged))
    messages = [{"role": "system", "content": "Sei un assistente utile."}, {"role": "user", "content": "Ciao!"}]
    own = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    template = get_template_and_fix_tokenizer(tok, DataArguments(template="llama3"))
    prompt, _ = template.encode_oneturn(tok, [*messages[1:], {"role": "assistant", "content": "x"}], system=messages[0]["content"])
    assert tok.encode(own, add_special_tokens=False) == prompt
