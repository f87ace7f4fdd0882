"""Fixtures of the evaluator tests: a LoRA adapter trained on the tiny Qwen3 by a real
``llamafactory-cli train`` subprocess (once per session), and its training recipe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llamafactory_ext.data.mcq import SYSTEM_PROMPT, MCQItem, build_messages
from llamafactory_ext.thinking import format_thinking
from tests.conftest import output_tail, run_cmd

QUIZ = [
    MCQItem(id=str(i), question=q, options=list(zip("ABCD", opts)), answer=a, category="geography")
    for i, (q, opts, a) in enumerate([
        ("Qual è la capitale d'Italia?", ["Milano", "Roma", "Napoli", "Torino"], "B"),
        ("Quale fiume attraversa Firenze?", ["Arno", "Po", "Tevere", "Adige"], "A"),
        ("In quale regione si trova Bari?", ["Sicilia", "Calabria", "Puglia", "Molise"], "C"),
        ("Qual è il monte più alto d'Italia?", ["Etna", "Cervino", "Gran Sasso", "Monte Bianco"], "D"),
    ])
]


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory, tiny_model, repo_root) -> dict:
    """A mixed (enable_thinking: null) LoRA recipe on tiny Qwen3, its data dir and output dir."""
    root = tmp_path_factory.mktemp("eval-recipe")
    dataset_dir = root / "ds"
    (dataset_dir / "data").mkdir(parents=True)
    shutil.copy(repo_root / "dataset_info.json", dataset_dir / "dataset_info.json")
    info = json.loads((dataset_dir / "dataset_info.json").read_text())
    rows = []
    for n, item in enumerate(QUIZ * 2):
        answer = item.answer if n % 2 else format_thinking(f"La risposta giusta è {item.answer}.", item.answer)
        rows.append({"messages": [{"role": "system", "content": SYSTEM_PROMPT}, *build_messages(item),
                                  {"role": "assistant", "content": answer}]})
    with open(dataset_dir / info["multit_mixed"]["file_name"], "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = root / "adapter"
    recipe = root / "tiny_mixed.yaml"
    recipe.write_text(
        f"model_name_or_path: {tiny_model}\nstage: sft\ndo_train: true\nfinetuning_type: lora\nlora_rank: 4\n"
        "lora_alpha: 8\nlora_target: all\ndataset: multit_mixed\ntemplate: qwen3\nenable_thinking: null\n"
        f"cutoff_len: 256\nper_device_train_batch_size: 2\nlearning_rate: 5.0e-2\nlogging_steps: 1\n"
        f"save_steps: 100\noutput_dir: {out}\n"
    )
    return {"recipe": recipe, "dataset_dir": dataset_dir, "output_dir": out}


@pytest.fixture(scope="session")
def tiny_adapter(tiny_recipe, tiny_model) -> Path:
    """LoRA adapter trained in this session by a real ``llamafactory-cli train`` (2 steps, CPU)."""
    from llamafactory_ext.testing import llamafactory_cli, tiny_train_overrides

    out = tiny_recipe["output_dir"]
    proc = run_cmd([llamafactory_cli(), "train", tiny_recipe["recipe"],
                    *tiny_train_overrides(tiny_model, tiny_recipe["dataset_dir"], out, max_steps=2)])
    assert proc.returncode == 0, output_tail(proc)
    assert (out / "adapter_config.json").is_file()
    return out


# A small ITALIC-shaped sample in the GitHub layout with the odd rows of the real set
# (2, 3 and 5 options, only the letters A and C, ALL CAPS).
ITALIC_SAMPLE = [
    {"question": "Qual è la capitale d'Italia?", "options": [{"A": "Milano"}, {"B": "Roma"}, {"C": "Napoli"}, {"D": "Torino"}],
     "answer": "B", "category": "geography", "macro_category": "culture and commonsense"},
    {"question": "QUALE PAROLA È SCRITTA CORRETTAMENTE?", "options": [{"A": "Qualcuno"}, {"C": "Qualcunno"}],
     "answer": "C", "category": "orthography", "macro_category": "language capability"},
    {"question": "Chi ha scritto la Divina Commedia?", "options": [{"A": "Dante"}, {"B": "Petrarca"}, {"C": "Boccaccio"}],
     "answer": "A", "category": "literature", "macro_category": "culture and commonsense"},
    {"question": "Il contrario di 'alto' è:", "options": [{"A": "basso"}, {"B": "lungo"}, {"C": "largo"}, {"D": "corto"}, {"E": "stretto"}],
     "answer": "A", "category": "synonyms_and_antonyms", "macro_category": "language capability"},
    {"question": "In quale regione si trova Bari?", "options": [{"A": "Sicilia"}, {"B": "Calabria"}, {"C": "Puglia"}, {"D": "Molise"}],
     "answer": "C", "category": "geography", "macro_category": "culture and commonsense"},
]


def write_italic_sample(path: Path) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ITALIC_SAMPLE), encoding="utf-8")
    return path


@pytest.fixture
def italic_file(tmp_path) -> Path:
    """The ITALIC-shaped sample as a jsonl file (tests that must not depend on ../shared)."""
    return write_italic_sample(tmp_path / "italic.jsonl")
