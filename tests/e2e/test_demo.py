"""`llamafactory-ext demo` for real: tiny Qwen3 fixture, sample data through `prepare`, a
full-parameter warm-up and the shipped recipes/v3_mixed.yaml through real `llamafactory-cli
train` subprocesses, the evaluator on base and tuned model in both modes, and the report.
The slowest test of the suite (a few minutes on 2 CPU cores)."""

from __future__ import annotations

import json
import shlex

import pytest

from llamafactory_ext.demo import compare, metrics_from_predictions
from tests.conftest import output_tail, run_cmd

pytestmark = pytest.mark.e2e


def test_demo_end_to_end(tmp_path, ext_cli, repo_root):
    out = tmp_path / "demo"
    proc = run_cmd([*ext_cli, "demo", f"output_dir={out}"], cwd=repo_root, timeout=1500)
    assert proc.returncode == 0, output_tail(proc)
    for stage in ("fixture", "data", "warm-up", "train", "eval", "report"):
        assert f"] {stage}:" in proc.stdout, stage

    # the report folder
    report = (out / "report.md").read_text(encoding="utf-8")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for f in ("base_vs_tuned.png", "training_loss.png", "eval/base/results.json", "eval/tuned/results.json",
              "eval/tuned/results.md", "models/v3_mixed_lora/adapter_model.safetensors"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    for who in ("base", "tuned"):
        results = json.loads((out / "eval" / who / "results.json").read_text())
        assert set(results["modes"]) == {"think", "nothink"}, who
        assert all(results["modes"][m]["total"] > 0 for m in ("think", "nothink"))
    assert "| think |" in report and "| nothink |" in report

    # the commands file holds the real commands, the shipped recipe among them
    commands = (out / "commands.sh").read_text(encoding="utf-8")
    lines = [ln for ln in commands.splitlines() if ln and not ln.startswith(("#", "export", "set "))]
    assert any(ln.startswith("llamafactory-cli train recipes/v3_mixed.yaml ") for ln in lines), commands
    assert any(ln.startswith("llamafactory-cli train recipes/v1_nothink.yaml ") and "finetuning_type=full" in ln for ln in lines)
    assert sum(ln.startswith("llamafactory-ext eval ") for ln in lines) == 2
    assert sum(ln.startswith("llamafactory-ext prepare ") for ln in lines) >= 2
    train_line = next(ln for ln in lines if ln.startswith("llamafactory-cli train recipes/v3_mixed.yaml"))
    keys = [tok.split("=", 1)[0] for tok in shlex.split(train_line)[3:]]
    # only the tiny/CPU overrides of llamafactory_ext.testing plus the ones the report lists
    allowed = {"model_name_or_path", "dataset_dir", "output_dir", "max_steps", "bf16", "fp16", "quantization_bit",
               "deepspeed", "flash_attn", "optim", "report_to", "learning_rate", "cutoff_len",
               "gradient_accumulation_steps", "logging_steps", "save_steps"}
    assert set(keys) <= allowed, set(keys) - allowed
    for key in ("learning_rate", "cutoff_len", "gradient_accumulation_steps"):
        assert key in report

    # tuned differs from base, and the report says so with the numbers the predictions give
    base = metrics_from_predictions(out / "eval" / "base" / "predictions.jsonl")
    tuned = metrics_from_predictions(out / "eval" / "tuned" / "predictions.jsonl")
    diffs = compare(base, tuned)
    assert diffs == summary["differences"]
    assert summary["differs"] is True and any(d["items_changed"] > 0 for d in diffs)
    assert "The tuned model differs from the base" in report
    base_out = {(r["id"], r["mode"]): r["output"] for r in map(json.loads, (out / "eval/base/predictions.jsonl").open())}
    tuned_out = {(r["id"], r["mode"]): r["output"] for r in map(json.loads, (out / "eval/tuned/predictions.jsonl").open())}
    assert base_out.keys() == tuned_out.keys() and base_out != tuned_out
    # the last lines tell what to run next on a GPU
    tail = proc.stdout.strip().splitlines()[-6:]
    assert tail[0].startswith("Next, on a GPU") and any("llamafactory-cli train recipes/v3_mixed.yaml" in t for t in tail)

    # a re-run reuses every finished stage and rewrites the same report
    again = run_cmd([*ext_cli, "demo", f"output_dir={out}"], cwd=repo_root, timeout=600)
    assert again.returncode == 0, output_tail(again)
    assert again.stdout.count("reused (finished earlier in") == 5
    assert json.loads((out / "summary.json").read_text())["differences"] == summary["differences"]


def test_demo_dry_run_for_the_real_model(tmp_path, ext_cli, repo_root):
    """`demo model=Qwen/Qwen3-8B dry_run=true`: no fixture, no warm-up, the recipe unchanged but
    for data set dir and output dir; nothing runs (a GPU and the Hub are needed for real)."""
    out = tmp_path / "real"
    proc = run_cmd([*ext_cli, "demo", "model=Qwen/Qwen3-8B", "dry_run=true", f"output_dir={out}"], cwd=repo_root)
    assert proc.returncode == 0, output_tail(proc)
    commands = (out / "commands.sh").read_text()
    assert "fixture" not in commands and "finetuning_type=full" not in commands
    train = next(ln for ln in commands.splitlines() if ln.startswith("llamafactory-cli train"))
    assert train == (f"llamafactory-cli train recipes/v3_mixed.yaml model_name_or_path=Qwen/Qwen3-8B "
                     f"dataset_dir={out / 'data'} output_dir={out / 'models' / 'v3_mixed_lora'}")
    assert not (out / "models").exists()
