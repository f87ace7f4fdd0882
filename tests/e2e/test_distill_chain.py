"""distill end to end.

1. Plumbing on the real tiny Qwen3 (random weights, CPU, hf backend): prompts, sampling, filters,
   rows, rejects, progress bar, resume. A random model is almost never right, so this checks the
   plumbing, not the yield.
2. The whole chain: distill -> ``prepare multit_think traces=...`` -> ``llamafactory-cli train
   recipes/v2_think.yaml`` with the tiny-model CPU overrides. The teacher outputs in this chain come
   from a scripted generator (see tests/test_distill.py) so that rows are kept; everything after
   generation is real (filters, traces file, converter, LLaMA-Factory training process).

Both use the small-vocabulary tiny Qwen3 (``small_model``): the same Qwen BPE strings, so prompts and
logged labels read the same; Qwen3's real ids are not what these tests check, and its 151,936-row
output layer made each training step ~20 times slower."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from llamafactory_ext.eval.engine import Generation
from tests.helpers import output_tail

pytestmark = pytest.mark.e2e


def test_real_tiny_teacher_plumbing(tmp_path, small_model, capsys):
    from transformers import AutoTokenizer

    from llamafactory_ext import distill
    from llamafactory_ext.data.mcq import SYSTEM_PROMPT, build_messages
    from llamafactory_ext.data.multit import item_key, load_multit
    from llamafactory_ext.data.samples import sample_path
    from llamafactory_ext.prompts import PromptEncoder

    quiz = sample_path("multit_quiz.json")
    out = tmp_path / "traces.jsonl"
    argv = [f"source={quiz}", f"output={out}", f"teacher.model={small_model}", "backend=hf", "limit=3",
            "samples_per_question=2", "max_new_tokens=12", "batch_size=2", "engine.device=cpu"]
    assert distill.main(argv) == 0
    err = capsys.readouterr()
    assert re.search(r"distill: 100%.*3/3 \[[0-9:]+<[0-9:]+, +[0-9.]+(q/s|s/q)", err.err)  # tqdm: elapsed<ETA, rate
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    items = load_multit(str(quiz), limit=3)
    assert [r["key"] for r in rows] == [item_key(i) for i in items]
    encoder = PromptEncoder(AutoTokenizer.from_pretrained(str(small_model)), "qwen3", "think")
    for row, item in zip(rows, items):
        assert row["prompt_tokens"] == len(encoder.encode(build_messages(item, variant="fast"), SYSTEM_PROMPT))
        assert 0 < row["completion_tokens"] <= 12
        assert row["reason"] in ("kept", *distill.REASONS) and row["gold"] == item.answer
        if row["reason"] != "kept":
            assert row["sample"] == 1 and len(row["rejected"]) == 1  # two samples tried
    rejects = [json.loads(line) for line in (tmp_path / "traces.jsonl.rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == sum(1 + len(r["rejected"]) for r in rows if r["reason"] != "kept")
    assert all(r["completion_tokens"] <= 12 and isinstance(r["text"], str) for r in rejects)
    assert "| **all** | **3** |" in err.out

    # resume: everything is done, the model is not even loaded
    assert distill.main(argv) == 0
    assert "3 question(s) already done, 0 to go" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 3


class CorrectTeacher:
    """Scripted teacher: answers every question right with a short Italian trace naming the letter."""

    def __init__(self, tokenizer, items):
        self.tokenizer = tokenizer
        self.items = items

    def generate(self, prompts, params, **_):
        out = []
        for ids in prompts:
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            (item,) = [i for i in self.items if i.question in text]
            reply = (f"<think>\nLa domanda chiede: {item.question} L'opzione giusta è "
                     f"{item.option_text(item.answer)}, quindi la risposta è {item.answer}.\n</think>\n\n{item.answer}")
            out.append(Generation(text=reply, token_ids=[], num_tokens=40, finished=True))
        return out


def test_distill_prepare_train_chain(tmp_path, small_model, repo_root, monkeypatch, forks):
    from transformers import AutoTokenizer

    from llamafactory_ext import distill
    from llamafactory_ext.cli import main as ext_main
    from llamafactory_ext.data.multit import load_multit
    from llamafactory_ext.data.samples import sample_path
    from llamafactory_ext.runtime import tiny_train_overrides
    from llamafactory_ext.thinking import format_thinking

    quiz = sample_path("multit_quiz.json")
    items = load_multit(str(quiz), limit=8)
    traces = tmp_path / "traces.jsonl"
    cfg = distill.DistillConfig(source=str(quiz), output=str(traces), teacher={"model": "scripted"}, limit=8,
                                progress=False)
    stats = distill.run(cfg, engine=CorrectTeacher(AutoTokenizer.from_pretrained(str(small_model)), items))
    assert stats.as_dict()["kept"] == 8

    dataset_dir = tmp_path / "ds"
    (dataset_dir / "data").mkdir(parents=True)
    shutil.copy(repo_root / "dataset_info.json", dataset_dir / "dataset_info.json")
    assert ext_main(["prepare", "multit_think", f"source={quiz}", f"traces={traces}", f"out_dir={dataset_dir / 'data'}",
                     f"dataset_info={dataset_dir / 'dataset_info.json'}"]) == 0
    rows = [json.loads(line) for line in (dataset_dir / "data" / "multit_think.jsonl").read_text().splitlines()]
    assert len(rows) == 8  # only the 8 questions with kept traces (the sample has 60)
    kept = [json.loads(line) for line in traces.read_text().splitlines()]
    assert rows[0]["messages"][-1]["content"] == format_thinking(kept[0]["trace"], kept[0]["gold"])

    monkeypatch.chdir(repo_root)
    out = tmp_path / "v2"
    overrides = tiny_train_overrides(small_model, dataset_dir, out, max_steps=1)
    proc = forks.run("llamafactory-cli", ["train", "recipes/v2_think.yaml", *overrides, "per_device_train_batch_size=2",
                                          "gradient_accumulation_steps=1", "cutoff_len=512"], cwd=repo_root)
    assert proc.returncode == 0, output_tail(proc)
    assert (out / "adapter_model.safetensors").is_file()
    # LLaMA-Factory trained on the distilled trace (its first encoded example is logged)
    assert "\nlabels:\n<think>\nLa domanda chiede: " in proc.stdout
    trained = proc.stdout.split("\nlabels:\n", 1)[1][:3000]
    assert "quindi la risposta è" in trained and "\n</think>\n\n" in trained
