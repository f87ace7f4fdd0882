"""A real lora_rank sweep: the shipped recipes/sweeps/lora_rank.yaml (over recipes/v3_mixed.yaml) on the
small-vocabulary tiny Qwen3 on CPU (Qwen3's real ids are not the point here), three ranks, real ``llamafactory-cli train`` subprocesses and the real evaluator on
ITALIC-shaped rows in both thinking modes; interrupted after the first trial (``max_trials=1``) and
resumed on the Ray backend (a local Ray instance on CPU: each remaining trial is a Ray task with a
``num_gpus`` request, here 0) so both schedulers run real trials in one sweep."""

from __future__ import annotations

import csv
import json
import os

import pytest

from llamafactory_ext.config import load_yaml

pytestmark = pytest.mark.e2e

ITALIC_ROWS = [
    {"question": "Qual è la capitale d'Italia?", "options": [{"A": "Roma"}, {"B": "Milano"}, {"C": "Napoli"}],
     "answer": "A", "category": "geography", "macro_category": "culture and commonsense"},
    {"question": "Qual è il plurale di 'uovo'?", "options": [{"A": "uovi"}, {"B": "uova"}, {"C": "uove"}, {"D": "uovie"}],
     "answer": "B", "category": "morphology", "macro_category": "language capability"},
]


def write_sweep(tmp_path, repo_root, model, ranks, fixed_extra=(), **extra):
    """The shipped sweep file with a small grid, the tiny-model CPU overrides and a 2-item evaluation."""
    import yaml

    from llamafactory_ext.data.samples import prepare_samples
    from llamafactory_ext.runtime import tiny_train_overrides

    dataset_dir = prepare_samples(tmp_path / "ds", ["multit_mixed"])
    italic = tmp_path / "italic.jsonl"
    italic.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ITALIC_ROWS), encoding="utf-8")
    sweep = load_yaml(repo_root / "recipes/sweeps/lora_rank.yaml")
    assert sweep["base"] == "../v3_mixed.yaml" and sweep["derived"] == {"lora_alpha": "2 * lora_rank"}
    # paths in a sweep file are relative to its folder: this copy lives elsewhere, so it names them in full
    sweep["base"], sweep["eval"]["config"] = str(repo_root / "recipes/v3_mixed.yaml"), str(repo_root / "recipes/eval/italic_zeroshot.yaml")
    fixed = [o for o in tiny_train_overrides(model, dataset_dir, "unused", max_steps=1) if not o.startswith("output_dir=")]
    fixed += ["per_device_train_batch_size=2", "gradient_accumulation_steps=1", "cutoff_len=256", "logging_steps=1", *fixed_extra]
    sweep.update(
        grid={"lora_rank": ranks}, fixed=fixed, output_dir=str(tmp_path / "sweep"), gpus_per_trial=0,
        env={"CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}, **extra,
    )
    sweep["eval"]["overrides"].update(source=str(italic), limit=2, max_new_tokens=6, device="cpu", progress=False)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_lora_rank_sweep_interrupted_and_resumed(tmp_path, repo_root, small_model, monkeypatch, capsys, local_ray):
    from llamafactory_ext import sweep

    monkeypatch.chdir(repo_root)  # the recipes use dataset_dir: . and repo-relative paths, like llamafactory-cli
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    path = write_sweep(tmp_path, repo_root, small_model, [4, 8, 12], fixed_extra=["report_to=tensorboard"])
    out = tmp_path / "sweep"

    # First run stops after one trial (what an interruption leaves behind).
    assert sweep.main([str(path), "max_trials=1"]) == 0
    first = capsys.readouterr().out
    assert "lora_rank-4: done" in first and "2 trial(s) not run yet" in first
    done = out / "lora_rank-4"
    assert (done / "adapter_model.safetensors").is_file() and (done / "eval" / "results.json").is_file()
    assert not (out / "lora_rank-8").exists()
    cmd = json.loads((done / "trial.json").read_text())["train_cmd"]
    assert "recipes/v3_mixed.yaml" in cmd and "lora_rank=4 lora_alpha=8" in cmd and f"output_dir={done}" in cmd
    log_mtime = os.path.getmtime(done / "train.log")

    # Ray refuses a GPU request the cluster cannot meet up front instead of hanging.
    with pytest.raises(sweep.SweepError, match="num_gpus=1 but the Ray cluster has 0 GPU"):
        sweep.main([str(path), "backend=ray", "gpus_per_trial=1"])

    # Resume on Ray: the finished trial is skipped, the two others run as Ray tasks and reuse the
    # tokenized data.
    assert sweep.main([str(path), "backend=ray", "cpus_per_trial=1"]) == 0
    second = capsys.readouterr().out
    assert "skip lora_rank-4: already done" in second
    assert second.count("as a Ray task (num_gpus=0)") == 2
    assert os.path.getmtime(done / "train.log") == log_mtime
    tokenized = list((out / "tokenized").iterdir())
    assert len(tokenized) == 1  # one tokenization for the whole sweep
    assert "Tokenized dataset is saved" in (done / "train.log").read_text()
    for name in ("lora_rank-8", "lora_rank-12"):
        assert "Loaded tokenized dataset" in (out / name / "train.log").read_text()

    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["trial"] for r in rows] == ["lora_rank-4", "lora_rank-8", "lora_rank-12"]
    assert all(r["status"] == "done" for r in rows)
    assert [int(r["lora_alpha"]) for r in rows] == [8, 16, 24]
    ranks = [int(r["lora_rank"]) for r in rows]
    params = [int(r["trainable_params"]) for r in rows]
    # LoRA adds r * (d_in + d_out) per target module: exactly proportional to the rank.
    assert params[0] > 0 and all(p * ranks[0] == params[0] * r for p, r in zip(params, ranks))
    for r in rows:
        assert float(r["final_loss"]) > 0 and float(r["train_runtime_s"]) > 0 and float(r["peak_rss_gb"]) > 0
        # ITALIC in both modes (v3_mixed trains both): an accuracy per mode, from the evaluator.
        assert 0.0 <= float(r["accuracy/think"]) <= 1.0 and 0.0 <= float(r["accuracy/nothink"]) <= 1.0
        assert float(r["mean_output_tokens/think"]) > 0
    adapter = json.loads((out / "lora_rank-12" / "adapter_config.json").read_text())
    assert adapter["r"] == 12 and adapter["lora_alpha"] == 24
    md = (out / "summary.md").read_text()
    assert f"| lora_rank-12 | lora_rank=12, lora_alpha=24 | {params[2]:,} |" in md and "3 done, 0 failed" in md
    for png in ("accuracy.png", "trainable_params.png", "final_loss.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Each trial's evaluation is in TensorBoard, in the run folder LLaMA-Factory's training wrote
    # (report_to: tensorboard), beside its loss curve, equal to the evaluator's results.json.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for name in ("lora_rank-4", "lora_rank-12"):
        (run,) = (out / name / "runs").iterdir()
        acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
        acc.Reload()
        results = json.loads((out / name / "eval" / "results.json").read_text())
        assert "train/loss" in acc.Tags()["scalars"]
        for mode in ("think", "nothink"):
            (event,) = acc.Scalars(f"eval/accuracy/{mode}")
            assert event.value == __import__("numpy").float32(results["modes"][mode]["accuracy"])

    # A third run has nothing left to do.
    assert sweep.main([str(path)]) == 0
    assert capsys.readouterr().out.count("already done") == 3
