"""Synthetic training rows for ``plan measure=true``: every sequence LLaMA-Factory builds from them
is as long as the recipe allows, so the measured peak is the worst case.

Each message is longer than ``cutoff_len`` (``cutoff_len + 16`` words, each at least one token);
LLaMA-Factory's own processors then cut them: ``infer_seqlen`` truncates prompt and response to
exactly ``cutoff_len`` tokens (sft; dpo: chosen and rejected each), a packed sft row fills its
pack (``cutoff_len - 1`` tokens + 1 pad: with packing, DataArguments lowers ``cutoff_len`` by one),
and stage pt cuts the concatenated text into blocks of ``cutoff_len`` (``cutoff_len - 1`` when
the recipe sets ``packing: true`` itself). :func:`sequence_length` is that length; ``tests/test_plan_measure.py`` runs the rows
through ``llamafactory.data.get_dataset`` and checks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llamafactory_ext.io import atomic_write_json, ensure_dir, write_jsonl

DATASET = "plan_measure"
WORDS = (" ciao", " mondo")  # each a whole word: at least one token with any tokenizer
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
        "system_tag": "system"}


def sequence_length(recipe: dict[str, Any]) -> int:
    """Tokens in every sequence LLaMA-Factory makes from :func:`write_dataset`'s rows.

    DataArguments lowers ``cutoff_len`` by one when ``packing`` / ``neat_packing`` is set in the
    recipe (not when stage pt turns packing on by default, later); a packed sft row gets that one
    token back as padding."""
    cutoff = int(recipe.get("cutoff_len", 2048))
    if not (recipe.get("packing") or recipe.get("neat_packing")):
        return cutoff
    return cutoff if str(recipe.get("stage", "sft")) == "sft" else cutoff - 1


def _text(words: int, which: int = 0) -> str:
    return (WORDS[which] * words).strip()


def rows(recipe: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` rows in the format the recipe's stage reads (sharegpt messages; pt: text; dpo: pairs)."""
    words = int(recipe.get("cutoff_len", 2048)) + 16
    stage = str(recipe.get("stage", "sft"))
    user = {"role": "user", "content": _text(words)}
    if stage == "pt":
        return [{"text": _text(words)} for _ in range(count)]
    if stage == "dpo":
        chosen = {"role": "assistant", "content": _text(words)}
        rejected = {"role": "assistant", "content": _text(words, 1)}
        return [{"messages": [user], "chosen": chosen, "rejected": rejected} for _ in range(count)]
    return [{"messages": [user, {"role": "assistant", "content": _text(words)}]} for _ in range(count)]


def dataset_info(recipe: dict[str, Any]) -> dict[str, Any]:
    stage = str(recipe.get("stage", "sft"))
    entry: dict[str, Any] = {"file_name": f"{DATASET}.jsonl"}
    if stage == "pt":
        entry["columns"] = {"prompt": "text"}
    elif stage == "dpo":
        entry.update(formatting="sharegpt", ranking=True, tags=TAGS,
                     columns={"messages": "messages", "chosen": "chosen", "rejected": "rejected"})
    else:
        entry.update(formatting="sharegpt", tags=TAGS, columns={"messages": "messages"})
    return {DATASET: entry}


def write_dataset(folder: str | Path, recipe: dict[str, Any], count: int) -> Path:
    """``folder/dataset_info.json`` + ``folder/plan_measure.jsonl``: pass ``dataset_dir=folder dataset=plan_measure``."""
    folder = ensure_dir(folder, "measurement data folder")
    write_jsonl(folder / f"{DATASET}.jsonl", rows(recipe, count))
    atomic_write_json(folder / "dataset_info.json", dataset_info(recipe))
    return folder
