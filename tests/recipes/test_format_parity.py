"""Training and evaluation prompts are identical, token for token, in every recipe mode.

For each SFT recipe, LLaMA-Factory's own data pipeline (`get_train_args` on the recipe,
`load_tokenizer`, `get_template_and_fix_tokenizer`, `get_dataset`: the code `llamafactory-cli train`
runs) encodes the prepared sample data with the recipe's template and `enable_thinking`. The
masked prefix of every encoded sample (labels == -100) must equal
`prompts.PromptEncoder(tokenizer, template, mode).encode(...)`, the prompt the evaluator sends, for
the mode that sample trains; together the samples must cover every mode the recipe trains
(`prompts.training_modes`): nothink (qwen3 + false), think (qwen3 + true), both (qwen3 + null),
nothink (qwen3_nothink).

Packing is switched off here, and only here: packing concatenates these same per-sample encodings
(the 2-step runs in test_recipes_train.py train the packed recipes for real), and unpacked samples
map one to one onto the rows of the data file. `datasets`' per-map hashing of the 151k-token
tokenizer is switched off (``fast_fingerprints``): it only names cache files.
"""

from __future__ import annotations

import json

import pytest

from llamafactory_ext.thinking import EMPTY_THINK, NOTHINK, THINK, has_thought
from tests.helpers import SFT_RECIPES, load_recipe

IGNORE_INDEX = -100


def _llamafactory_encoded(name: str, tiny_model, dataset_dir, output_dir):
    """(rows of the recipe's data file, LLaMA-Factory's encoded train samples, template, enable_thinking)."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    from llamafactory_ext.runtime import CPU_OVERRIDES

    cfg = load_recipe(name)
    args = {**cfg, **CPU_OVERRIDES, "model_name_or_path": str(tiny_model), "dataset_dir": str(dataset_dir),
            "output_dir": str(output_dir), "packing": False, "neat_packing": False}
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
    info = json.loads((dataset_dir / "dataset_info.json").read_text(encoding="utf-8"))
    rows = []
    for ds in data_args.dataset:
        with open(dataset_dir / info[ds]["file_name"], encoding="utf-8") as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    return rows, module["train_dataset"], cfg["template"], data_args.enable_thinking


def _expected_mode(template: str, enable_thinking, answer: str) -> str:
    """The evaluation mode whose prompt a training sample shares (LLaMA-Factory 0.9.5 rules)."""
    from llamafactory_ext.prompts import is_reasoning_template

    if not is_reasoning_template(template):
        return NOTHINK
    if enable_thinking is None:  # mixed: a trace -> think prompt; none -> masked empty block (nothink)
        return THINK if has_thought(answer) else NOTHINK
    return THINK if enable_thinking else NOTHINK


@pytest.mark.parametrize("name", SFT_RECIPES)
def test_training_prompt_equals_evaluator_prompt(name, prepared_data, tiny_model, tiny_tokenizer, tmp_path, fast_fingerprints):
    from llamafactory_ext.prompts import (
        PromptEncoder,
        is_reasoning_template,
        training_modes,
    )

    rows, encoded, template, enable_thinking = _llamafactory_encoded(name, tiny_model, prepared_data, tmp_path / "out")
    assert len(encoded) == len(rows) > 0, "LLaMA-Factory dropped or added samples"
    modes = training_modes(template, enable_thinking)
    encoders = {mode: PromptEncoder(tiny_tokenizer, template, mode) for mode in modes}
    other = {THINK: NOTHINK, NOTHINK: THINK}
    seen = set()
    for i, (row, sample) in enumerate(zip(rows, encoded)):
        messages = row["messages"]
        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        turns = [m for m in messages if m["role"] != "system"]
        assert turns[-1]["role"] == "assistant"
        labels = sample["labels"]
        n_prompt = next(k for k, label in enumerate(labels) if label != IGNORE_INDEX)
        assert all(label == IGNORE_INDEX for label in labels[:n_prompt])
        train_prompt = sample["input_ids"][:n_prompt]

        mode = _expected_mode(template, enable_thinking, turns[-1]["content"])
        assert mode in modes, f"{name} row {i + 1}: trains mode {mode}, not in training_modes {modes}"
        seen.add(mode)
        eval_prompt = encoders[mode].encode(turns[:-1], system=system)
        assert train_prompt == eval_prompt, (
            f"{name} row {i + 1} ({mode}): training prompt\n{tiny_tokenizer.decode(train_prompt)!r}\n"
            f"!= evaluator prompt\n{tiny_tokenizer.decode(eval_prompt)!r}"
        )
        if is_reasoning_template(template):  # the comparison discriminates: the other mode's prompt differs
            wrong = PromptEncoder(tiny_tokenizer, template, other[mode]).encode(turns[:-1], system=system)
            assert train_prompt != wrong
    assert seen == set(modes), f"{name}: the sample data trains {sorted(seen)}, the recipe's modes are {modes}"


def test_think_and_nothink_prompts_differ_by_the_empty_think_block(tiny_tokenizer):
    """The negative: under qwen3 the two evaluator prompts are different token sequences."""
    from llamafactory_ext.prompts import PromptEncoder

    turns = [{"role": "user", "content": "Qual è la capitale d'Italia?\nA) Roma\nB) Milano"}]
    think = PromptEncoder(tiny_tokenizer, "qwen3", THINK).encode(turns, system="Sei un assistente utile.")
    nothink = PromptEncoder(tiny_tokenizer, "qwen3", NOTHINK).encode(turns, system="Sei un assistente utile.")
    plain = PromptEncoder(tiny_tokenizer, "qwen3_nothink", NOTHINK).encode(turns, system="Sei un assistente utile.")
    assert think != nothink
    assert nothink[: len(think)] == think
    assert tiny_tokenizer.decode(nothink[len(think):]) == EMPTY_THINK
    assert plain == think  # qwen3_nothink adds no think block at all
